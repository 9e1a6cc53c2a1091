"""Prototype distillation as in ProtoKD (Wang, Zhang, Ding, Wang, Zhou, Lin; ICASSP 2023, arXiv 2303.09830)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kd_components.terms.base import DistillationTerm, NetworkOutputs

__all__ = ["PrototypeDistillation"]


class PrototypeDistillation(DistillationTerm):
    """Pixel-to-prototype similarity maps matched between teacher and student.

    Each network's class prototypes are the mean feature vector of the voxels of each class (from the label, taken to
    the feature map's size by nearest neighbour); every voxel's cosine similarity to each prototype, softened at
    temperature T by a softmax over the classes, is a distribution over the classes; the term is the KL divergence of
    the student's from the teacher's, averaged over the voxels of each item, times T^2. The classes are the background
    (no region) and each region channel of the target (TC, WT, ET for BraTS: overlapping regions are classes each);
    a class absent from an item has no prototype and is left out of that item's softmax. Items whose label is
    withheld (``labelled`` False) take the teacher's thresholded logits (> 0) as their classes.

    Example (student bundle)::

        "kd_terms": [{"_target_": "kd_components.terms.PrototypeDistillation", "weight": 1.0,
                      "layer": "up_layers.2", "temperature": 1.0}]

    Args:
        weight: the term's weight (>= 0).
        layer: the module path read on both networks (a decoder layer keeps the tumour's detail).
        teacher_layer: the teacher's, when it differs (the widths may differ: each network is compared with its own
            prototypes).
        temperature: T > 0.
        name: the log name (``loss_prototypes``).

    Raises:
        ValueError: no layer, ``temperature`` <= 0; at call, maps of different spatial sizes (both shapes printed).
    """

    def __init__(
        self,
        weight: float = 1.0,
        layer: str = "up_layers.2",
        teacher_layer: str | None = None,
        temperature: float = 1.0,
        name: str = "prototypes",
    ):
        super().__init__(weight, name, **self._layer_pair(layer, teacher_layer))
        self.temperature = self._positive(temperature, "temperature")
        self.layer, self.teacher_layer = layer, teacher_layer or layer

    @staticmethod
    def _classes(regions: torch.Tensor, size: torch.Size) -> torch.Tensor:
        """B x (1 + C) x N class masks (background, then each region) at the feature map's spatial ``size``."""
        regions = (regions.float() > 0.5).float()
        if regions.shape[2:] != size:
            regions = F.interpolate(regions, size=tuple(size), mode="nearest")
        background = 1 - regions.amax(dim=1, keepdim=True)
        return torch.cat([background, regions], dim=1).flatten(2)

    def _log_similarity(self, f: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """B x N x K log-probabilities of each voxel over the classes present in its item."""
        f = f.float().flatten(2)  # B x C x N
        counts = classes.sum(dim=2)  # B x K
        # each class's mean feature, weights summing to 1 (a sum over millions of voxels first would overflow float16)
        prototypes = f @ (classes / counts.clamp(min=1)[..., None]).transpose(1, 2)  # B x C x K
        sim = F.normalize(f, dim=1, eps=1e-6).transpose(1, 2) @ F.normalize(prototypes, dim=1, eps=1e-6)  # B N K
        # an absent class: a logit far below any cosine / T (finite, so that no NaN reaches the gradients)
        sim = (sim / self.temperature).masked_fill((counts == 0)[:, None, :], -1e4)
        return F.log_softmax(sim, dim=2)

    def forward(
        self,
        student: NetworkOutputs,
        teacher: NetworkOutputs | None,
        target: torch.Tensor,
        labelled: torch.Tensor | None = None,
    ) -> torch.Tensor:
        s, t = self._maps(student, teacher, self.layer, self.teacher_layer, same_width=False)
        regions = target
        if labelled is not None:
            keep = torch.as_tensor(labelled, dtype=torch.bool, device=target.device).reshape(
                -1, *[1] * (target.ndim - 1)
            )
            regions = torch.where(keep, target, (teacher["logits"].detach() > 0).to(target.dtype))
        classes = self._classes(regions, s.shape[2:])
        log_s, log_t = self._log_similarity(s, classes), self._log_similarity(t, classes)
        present = (classes.sum(dim=2) > 0)[:, None, :]  # the classes of each item
        kl = torch.where(present, log_t.exp() * (log_t - log_s), torch.zeros_like(log_t)).sum(dim=2)  # B x N
        return kl.mean() * self.temperature**2
