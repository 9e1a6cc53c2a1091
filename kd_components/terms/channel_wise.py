"""Channel-wise distillation (Shu, Liu, Gao, Yan, Shen; ICCV 2021, arXiv 2011.13256)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kd_components.terms.base import DistillationTerm, NetworkOutputs

__all__ = ["ChannelWiseDistillation"]


class ChannelWiseDistillation(DistillationTerm):
    """Each channel's activation map as a distribution over the voxels (softmax over space at temperature T); the
    student's matched to the teacher's by KL divergence, times T^2, averaged over channels and items.

    ``T^2 / (N C) * sum_{n,c} sum_i p^t_{nci} log(p^t_{nci} / p^s_{nci})``, ``p_{nc} = softmax_i(y_{nci} / T)``.
    Where each channel puts its mass matters, not its level: for overlapping sigmoid regions (TC, WT, ET) each region
    is one distribution, so the term teaches the teacher's spatial layout of each region. On logits by default; on a
    feature layer pair (same widths) with ``layer``.

    Example (student bundle)::

        "kd_terms": [{"_target_": "kd_components.terms.ChannelWiseDistillation", "weight": 1.0, "temperature": 4.0}]

    Args:
        weight: the term's weight (>= 0).
        temperature: T > 0 (the paper: 4 for segmentation logits).
        layer: None for the logits, or one module path read on both networks.
        name: the log name (``loss_cwd``).

    Raises:
        ValueError: ``temperature`` <= 0; at call, student and teacher maps of different shapes (both printed).
    """

    def __init__(self, weight: float = 1.0, temperature: float = 4.0, layer: str | None = None, name: str = "cwd"):
        layers = (layer,) if layer else ()
        super().__init__(weight, name, student_layers=layers, teacher_layers=layers)
        self.temperature = self._positive(temperature, "temperature")
        self.layer = layer

    def forward(
        self,
        student: NetworkOutputs,
        teacher: NetworkOutputs | None,
        target: torch.Tensor,
        labelled: torch.Tensor | None = None,
    ) -> torch.Tensor:
        s, t = self._maps(student, teacher, self.layer, self.layer)
        temperature = self.temperature
        log_s = F.log_softmax(s.float().flatten(2) / temperature, dim=2)
        log_t = F.log_softmax(t.float().flatten(2) / temperature, dim=2)
        kl = (log_t.exp() * (log_t - log_s)).sum(dim=2)  # N x C
        return kl.mean() * temperature**2
