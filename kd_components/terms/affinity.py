"""Structured pairwise-affinity distillation (Liu, Chen, Liu, Qin, Luo, Wang; CVPR 2019, arXiv 1903.04197)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kd_components.terms.base import DistillationTerm, NetworkOutputs

__all__ = ["PairwiseAffinity"]


class PairwiseAffinity(DistillationTerm):
    """The student's voxel-to-voxel similarities matched to the teacher's: a structure term, indifferent to how each
    network encodes a voxel, so the widths may differ.

    Each map (optionally average-pooled by ``pool`` per axis into patches, as the paper groups pixels into nodes;
    border voxels that do not fill a patch are left out) becomes N nodes of unit-length
    channel vectors; the affinity is ``a_ij = <f_i, f_j>`` (cosine similarity); the term is the mean over items and
    node pairs of ``(a^s_ij - a^t_ij)^2``. N^2 entries per item: pool fine maps (a 64^3 crop's bottleneck, 8^3,
    is 512 nodes; its first layer would be 262144).

    Example (student bundle)::

        "kd_terms": [{"_target_": "kd_components.terms.PairwiseAffinity", "weight": 1.0, "layer": "down_layers.3"}]

    Args:
        weight: the term's weight (>= 0).
        layer: the module path read on both networks.
        teacher_layer: the teacher's, when it differs.
        pool: average-pooling kernel per axis before the affinities (1: every voxel a node).
        name: the log name (``loss_affinity``).

    Raises:
        ValueError: no layer, ``pool`` < 1; at call, maps of different spatial sizes (both shapes printed).
    """

    def __init__(
        self,
        weight: float = 1.0,
        layer: str = "down_layers.3",
        teacher_layer: str | None = None,
        pool: int = 1,
        name: str = "affinity",
    ):
        super().__init__(weight, name, **self._layer_pair(layer, teacher_layer))
        if not isinstance(pool, int) or pool < 1:
            raise ValueError(f"PairwiseAffinity: pool must be an integer >= 1, got {pool!r}.")
        self.layer, self.teacher_layer, self.pool = layer, teacher_layer or layer, pool

    def _affinity(self, f: torch.Tensor) -> torch.Tensor:
        if self.pool > 1:
            f = {3: F.avg_pool1d, 4: F.avg_pool2d, 5: F.avg_pool3d}[f.ndim](f, self.pool)
        nodes = F.normalize(f.float().flatten(2), dim=1, eps=1e-6)  # B x C x N
        return nodes.transpose(1, 2) @ nodes  # B x N x N

    def forward(
        self,
        student: NetworkOutputs,
        teacher: NetworkOutputs | None,
        target: torch.Tensor,
        labelled: torch.Tensor | None = None,
    ) -> torch.Tensor:
        s, t = self._maps(student, teacher, self.layer, self.teacher_layer, same_width=False)
        return (self._affinity(s) - self._affinity(t)).pow(2).mean()
