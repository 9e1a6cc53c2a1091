"""kd_components: multi-modal to mono-modal knowledge distillation (KD-Net) for BraTS, as MONAI Bundle parts.

Modules: ``data`` (phantom, datalists), ``transforms`` (BraTS labels <-> regions), ``handlers`` (Ignite
handlers the bundles reference), ``errors`` (the one-line ``InputError``).
"""

from __future__ import annotations

from kd_components import checks, data
from kd_components.errors import InputError

__version__ = "0.1.0"
__all__ = ["InputError", "checks", "data", "__version__"]
