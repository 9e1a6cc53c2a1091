"""Distillation terms that plug into ``DistillationLoss`` by config: one class per file, each naming the outputs it
reads (``logits``, or features by module path), checking its own settings, returning its value.

A term is added, removed or weighted in a bundle by ``_target_`` alone: the student bundle's ``kd_terms`` list is
handed to ``DistillationLoss(terms=...)``; the trainer hooks every layer a term names, on the student and the
teacher, and hands both networks' outputs to the loss as dictionaries. A new method is one file plus a config entry
(``tests/test_terms.py`` trains a student with a term defined in the test file itself)::

    "kd_terms": [
        {"_target_": "kd_components.terms.ChannelWiseDistillation", "weight": 1.0, "temperature": 4.0},
        {"_target_": "kd_components.terms.FeatureMatching", "weight": 0.1, "layers": ["down_layers.2", "down_layers.3"]}
    ]

- ``base``: ``DistillationTerm``, what every term is (weight, name, the layers it reads).
- ``channel_wise``: ``ChannelWiseDistillation`` (Shu et al., ICCV 2021).
- ``features``: ``FeatureMatching``, features at several layers (FitNets / KD-Net's latent term, any layers).
- ``prototypes``: ``PrototypeDistillation``, pixel-to-class-prototype similarity maps (ProtoKD, ICASSP 2023).
- ``affinity``: ``PairwiseAffinity``, voxel-to-voxel similarities (structured KD, Liu et al., CVPR 2019).
"""

from __future__ import annotations

from kd_components.terms.affinity import PairwiseAffinity
from kd_components.terms.base import DistillationTerm, NetworkOutputs
from kd_components.terms.channel_wise import ChannelWiseDistillation
from kd_components.terms.features import FeatureMatching
from kd_components.terms.prototypes import PrototypeDistillation

__all__ = [
    "ChannelWiseDistillation",
    "DistillationTerm",
    "FeatureMatching",
    "NetworkOutputs",
    "PairwiseAffinity",
    "PrototypeDistillation",
]
