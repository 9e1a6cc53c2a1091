"""kd_components: multi-modal to mono-modal knowledge distillation (KD-Net) for BraTS, as MONAI Bundle parts.

Modules: ``data`` (phantom, datalists), ``transforms`` (BraTS labels <-> regions), ``losses``, ``handlers``
(Ignite handlers the bundles reference), ``distributed`` (torchrun helpers), ``cache`` (cached teacher logits),
``package`` (model-zoo / MONAI Label zips), ``bench``, ``errors`` (the one-line ``InputError``).
"""

from __future__ import annotations

from kd_components import checkpoints, checks, data, distributed, runinfo
from kd_components.errors import InputError

__version__ = "0.1.0"
__all__ = ["InputError", "checkpoints", "checks", "data", "distributed", "runinfo", "__version__"]
