"""Features at several layers: the student's feature maps pulled toward the teacher's, layer by layer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from monai.utils import look_up_option

from kd_components.terms.base import DistillationTerm, NetworkOutputs

__all__ = ["FeatureMatching"]


class FeatureMatching(DistillationTerm):
    """The mean over layer pairs of a distance between the student's and the teacher's feature maps (FitNets; KD-Net's
    latent term at any number of layers).

    ``1/L * sum_l d(f^s_l, f^t_l)``; ``cosine``: 1 - cosine similarity of the channel vectors, averaged over voxels
    (scale-free); ``l2``: mean squared error. Widths must match (the same architecture at the same width: the
    student and teacher SegResNets of the bundles do at every layer).

    Example (student bundle)::

        "kd_terms": [{"_target_": "kd_components.terms.FeatureMatching", "weight": 0.1,
                      "layers": ["down_layers.2", "down_layers.3"]}]

    Args:
        weight: the term's weight (>= 0).
        layers: module paths read on both networks, or ``{student_path: teacher_path}``.
        distance: ``cosine`` or ``l2``.
        name: the log name (``loss_features``).

    Raises:
        ValueError: no layer, an unknown distance; at call, maps of different shapes (both printed, with the layer).
    """

    DISTANCES = ("cosine", "l2")

    def __init__(
        self,
        weight: float = 0.1,
        layers: Sequence[str] | Mapping[str, str] = ("down_layers.3",),
        distance: str = "cosine",
        name: str = "features",
    ):
        pairs = (
            dict(layers)
            if isinstance(layers, Mapping)
            else {str(p): str(p) for p in ([layers] if isinstance(layers, str) else layers)}
        )
        if not pairs:
            raise ValueError("FeatureMatching: give at least one layer.")
        super().__init__(weight, name, student_layers=tuple(pairs), teacher_layers=tuple(pairs.values()))
        self.pairs = pairs
        self.distance = look_up_option(distance, self.DISTANCES)

    def forward(
        self,
        student: NetworkOutputs,
        teacher: NetworkOutputs | None,
        target: torch.Tensor,
        labelled: torch.Tensor | None = None,
    ) -> torch.Tensor:
        values = []
        for s_path, t_path in self.pairs.items():
            s, t = self._maps(student, teacher, s_path, t_path)
            s, t = s.float(), t.float()
            if self.distance == "cosine":
                values.append((1 - F.cosine_similarity(s, t, dim=1, eps=1e-6)).mean())
            else:
                values.append(F.mse_loss(s, t))
        return torch.stack(values).mean()
