"""Distillation losses in MONAI's loss style: each term its own object, combined by ``DistillationLoss``.

``DistillationLoss`` computes

    loss = seg_weight * L_seg(student, label)
         + kd_weight * T^2 * D_T(teacher logits, student logits)      (output term, ``SigmoidKLDivLoss`` ...)
         + feature_weight * D_feat(student features, teacher features) (``FeatureDistillationLoss``)

and returns every term (``{"loss", "loss_seg", "loss_kd", "loss_feat"}``, as mdistiller's ``forward_train``).
The losses hold no state: the teacher's outputs are arguments of each call (as in torchdistill), handed over by
``kd_components.training.DistillationTrainer``, which runs the teacher inside the iteration.

Balance. The defaults are the bundles' recipe, chosen on validation (docs/results.md): the KL averaged over every
voxel of the crop (``region="all"``, ``balanced=False``) at ``kd_weight * T^2 = 1``. A KL term averaged over every
voxel is dominated by confident background voxels; at ``kd_weight * T^2 >= 2`` it can swamp a Dice term and a
student learns to predict empty TC and ET (the collapse guard of ``training.quality`` says so in one line). The
output terms offer two ways to keep the terms comparable at such weights:

- ``region="tumour"``: average only over a neighbourhood of the tumour (the ground-truth or teacher whole
  tumour, dilated by ``margin`` voxels), where the teacher's soft targets carry information;
- ``balanced=True``: per channel, average the voxels the teacher calls positive and those it calls negative
  separately and take the mean of the two, as Dice is insensitive to class imbalance.

Agreement (``agreement=True``): where labels are given, only the voxels whose teacher prediction agrees with the
label are distilled (per region for the sigmoid form, per class for the class form), so that a teacher that is wrong
somewhere (a missed enhancing rim, a false positive) never pulls the student away from the label there; the soft
targets' information (how sure, how close to the boundary) is kept wherever the teacher is right. Items whose labels
are withheld (``labelled`` False) are distilled everywhere: there the teacher is all there is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.utils import look_up_option
from torch import nn
from torch.nn.modules.loss import _Loss

from kd_components.options import as_bool, at_least
from kd_components.terms.base import DistillationTerm, NetworkOutputs

__all__ = [
    "KD_REGIONS",
    "SigmoidKLDivLoss",
    "RegionClassKLDivLoss",
    "region_class_probabilities",
    "FeatureDistillationLoss",
    "DistillationLoss",
    "teacher_agreement",
    "tumour_neighbourhood",
]

#: where the output term is averaged: every voxel of the crop, or the tumour neighbourhood.
KD_REGIONS = ("all", "tumour")


def _check_same_shape(student: torch.Tensor, teacher: torch.Tensor, what: str) -> None:
    if student.shape != teacher.shape:
        raise ValueError(
            f"{what}: student shape {tuple(student.shape)} differs from teacher shape {tuple(teacher.shape)}; "
            f"both networks must see the same crop and have the same output channels."
        )


def tumour_neighbourhood(
    target: torch.Tensor | None, teacher_logits: torch.Tensor, margin: int, foreground_channel: int | None = None
) -> torch.Tensor:
    """Mask (B1HWD, bool; B1HW for 2-D inputs) of voxels within ``margin`` voxels of the tumour seen by the label or
    the teacher.

    Args:
        target: label regions (BNHWD, binary) or None.
        teacher_logits: teacher logits (BNHWD).
        margin: dilation radius in voxels (a cube of side ``2 * margin + 1``).
        foreground_channel: the one channel that holds the whole foreground; ``None`` (default) takes the union of
            the channels (a voxel any channel calls positive). Both are the same for nested regions such as BraTS's
            TC / WT / ET, whose union is the whole tumour (channel 1).

    Raises:
        ValueError: ``foreground_channel`` is not a channel of ``teacher_logits``.
    """
    if foreground_channel is not None and not 0 <= foreground_channel < teacher_logits.shape[1]:
        raise ValueError(
            f"foreground_channel {foreground_channel} is not a channel of outputs of shape "
            f"{tuple(teacher_logits.shape)}: give 0..{teacher_logits.shape[1] - 1}, or None for their union."
        )
    chans = slice(None) if foreground_channel is None else slice(foreground_channel, foreground_channel + 1)
    teacher_fg = (teacher_logits[:, chans] > 0).any(1, keepdim=True)
    label_fg = (target[:, chans] > 0.5).any(1, keepdim=True) if target is not None else None
    fg = teacher_fg if label_fg is None else teacher_fg | label_fg
    if margin > 0:  # dilation by a cube (a square in 2-D), separably: one 1-D max pool per axis
        fg = fg.float()
        k, dims = 2 * margin + 1, fg.ndim - 2
        pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[dims]
        for axis in range(dims):
            size, pad = [1] * dims, [0] * dims
            size[axis], pad[axis] = k, margin
            fg = pool(fg, kernel_size=size, stride=1, padding=pad)
        fg = fg > 0
    return fg


def teacher_agreement(
    teacher_logits: torch.Tensor, target: torch.Tensor, labelled: torch.Tensor | None = None
) -> torch.Tensor:
    """Mask (BNHWD, bool) of the voxels and channels where the teacher's thresholded sigmoid output equals the label.

    Args:
        teacher_logits: BNHWD.
        target: binary label regions BNHWD, same shape.
        labelled: B booleans; items with False (labels withheld) are True everywhere. None: all labelled.

    Raises:
        ValueError: shapes differ (both printed).
    """
    _check_same_shape(teacher_logits, target, "teacher_agreement (teacher logits vs label)")
    agree = (teacher_logits > 0) == (target > 0.5)
    return _all_where_withheld(agree, labelled)


def _per_item(labelled: torch.Tensor | Sequence[bool], like: torch.Tensor) -> torch.Tensor:
    """The B labelled flags as a bool tensor that broadcasts over ``like`` (B1...1, on its device)."""
    return torch.as_tensor(labelled, dtype=torch.bool, device=like.device).reshape(-1, *([1] * (like.ndim - 1)))


def _all_where_withheld(mask: torch.Tensor, labelled: torch.Tensor | None) -> torch.Tensor:
    if labelled is None:
        return mask
    return mask | ~_per_item(labelled, mask)


def _combine_masks(region: torch.Tensor | None, agree: torch.Tensor | None) -> torch.Tensor | None:
    if region is None or agree is None:
        return agree if region is None else region
    return region & agree


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values`` (BCHWD) over the voxels of ``mask`` (B1HWD or BCHWD), 0 where the mask is empty."""
    if mask is None:
        return values.mean()
    mask = mask.to(values.dtype).expand_as(values)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def _balanced_mean(values: torch.Tensor, positive: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Per channel, mean of the positive and of the negative voxels, averaged (then over channels)."""
    m = torch.ones_like(values) if mask is None else mask.to(values.dtype).expand_as(values)
    pos, neg = positive.to(values.dtype) * m, (1 - positive.to(values.dtype)) * m
    dims = [0, *range(2, values.ndim)]
    pos_mean = (values * pos).sum(dims) / pos.sum(dims).clamp_min(1.0)
    neg_mean = (values * neg).sum(dims) / neg.sum(dims).clamp_min(1.0)
    has_pos, has_neg = pos.sum(dims) > 0, neg.sum(dims) > 0
    per_channel = torch.where(has_pos & has_neg, 0.5 * (pos_mean + neg_mean), torch.where(has_pos, pos_mean, neg_mean))
    return per_channel.mean()


#: MONAI's reductions: the batch mean (the training loss), the batch sum, or one value per item (B,).
REDUCTIONS = ("mean", "sum", "none")


def _reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)} (as MONAI's losses), got {reduction!r}.")
    return reduction


def _reduce(per_item: Callable[[slice], torch.Tensor], batch: int, whole: torch.Tensor | None, reduction: str):
    """``whole`` (the batch's value, as trained) for ``mean``; otherwise each item's value, summed for ``sum``."""
    if reduction == "mean" and whole is not None:
        return whole
    items = torch.stack([per_item(slice(b, b + 1)) for b in range(batch)])
    return items.sum() if reduction == "sum" else items


class _OutputKD(_Loss):
    def __init__(
        self,
        temperature: float,
        region: str,
        margin: int,
        balanced: bool,
        agreement: bool = False,
        reduction: str = "mean",
    ):
        super().__init__(reduction=_reduction(reduction))
        self.temperature = at_least(temperature, 0, "temperature", strict=True)
        self.region = look_up_option(region, KD_REGIONS)
        if int(margin) < 0:
            raise ValueError(f"margin must be >= 0 voxels, got {margin}.")
        self.margin, self.balanced = int(margin), as_bool(balanced, "balanced")
        self.agreement = as_bool(agreement, "agreement")

    def _needs_target(self, target: torch.Tensor | None, name: str) -> None:
        if self.agreement and target is None:
            raise ValueError(f"{name}(agreement=True) needs the label regions (target) to compare the teacher with.")


class SigmoidKLDivLoss(_OutputKD):
    """Per-channel binary KL divergence at temperature T, times T^2, for sigmoid (multi-label) outputs.

    For each voxel and channel, with p = sigmoid(teacher / T) and q = sigmoid(student / T):
    ``KL = p log(p / q) + (1 - p) log((1 - p) / (1 - q))``. The result is the mean over voxels and channels
    (restricted and balanced as configured), multiplied by T^2 so that gradients keep their size across
    temperatures (Hinton et al. 2015). BraTS regions TC/WT/ET overlap, so channels are independent binary
    problems rather than one softmax.

    Args:
        temperature: T > 0.
        region: ``all`` voxels of the crop, or the ``tumour`` neighbourhood (see module docstring).
        margin: dilation of the tumour neighbourhood, in voxels.
        balanced: average teacher-positive and teacher-negative voxels separately per channel.
        foreground_channel: the channel of the whole foreground for the neighbourhood (1, WT, for BraTS); ``None``
            (default): the union of the channels, the same for nested regions.
        channel_weights: one weight >= 0 per output channel (TC, WT, ET for BraTS): each channel's term is
            multiplied by its weight before the mean over channels, so ``[1, 0.5, 1]`` halves the whole tumour's
            share and ``[1, 0, 1]`` distils only TC and ET. ``None`` (default) weighs every channel 1.
        agreement: distil only the voxels, per channel, where the teacher's thresholded output equals the label
            (see module docstring); needs ``target`` at call.
        reduction: ``mean`` (the batch's value, as trained), ``sum`` (of the items' values) or ``none`` (one value
            per item, shape (B,)), as MONAI's losses.

    Raises:
        ValueError: T <= 0, unknown region, negative margin or foreground channel, a negative channel weight, an
            unknown reduction; at call, student and teacher shapes differ, the number of channel weights differs
            from the channels, the foreground channel is not one of them, or ``agreement`` without a target.
    """

    def __init__(
        self,
        temperature: float = 2.0,
        region: str = "all",
        margin: int = 4,
        balanced: bool = False,
        foreground_channel: int | None = None,
        channel_weights: list[float] | tuple[float, ...] | None = None,
        agreement: bool = False,
        reduction: str = "mean",
    ):
        super().__init__(temperature, region, margin, balanced, agreement, reduction)
        if foreground_channel is not None and int(foreground_channel) < 0:
            raise ValueError(f"foreground_channel must be a channel index >= 0 or None, got {foreground_channel}.")
        self.foreground_channel = None if foreground_channel is None else int(foreground_channel)
        self.channel_weights = None
        if channel_weights is not None:
            weights = [float(w) for w in channel_weights]
            if not weights or min(weights) < 0 or max(weights) == 0:
                raise ValueError(
                    f"channel_weights must be one weight >= 0 per channel, not all zero, got {list(channel_weights)}."
                )
            self.channel_weights = weights

    def forward(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor,
        target: torch.Tensor | None = None,
        labelled: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Args:
            student_logits: BNHWD.
            teacher_logits: BNHWD, same shape.
            target: label regions BNHWD, for the tumour neighbourhood and the agreement mask.
            labelled: B booleans, False where the item's label is withheld (distilled everywhere). None: all.
        """
        _check_same_shape(student_logits, teacher_logits, "SigmoidKLDivLoss")
        self._needs_target(target, "SigmoidKLDivLoss")
        t = self.temperature
        s, te = student_logits.float() / t, teacher_logits.detach().float() / t
        p = torch.sigmoid(te)
        # KL(p || q) = BCE(q, p) - H(p) per voxel, with q = sigmoid(s): two fused BCE-with-logits kernels instead of
        # four log-sigmoids (the entropy term carries no gradient)
        with torch.no_grad():
            entropy = F.binary_cross_entropy_with_logits(te, p, reduction="none")
        kl = F.binary_cross_entropy_with_logits(s, p, reduction="none") - entropy
        if self.channel_weights is not None:
            if len(self.channel_weights) != kl.shape[1]:
                raise ValueError(
                    f"SigmoidKLDivLoss: {len(self.channel_weights)} channel_weights for outputs of shape "
                    f"{tuple(student_logits.shape)} ({kl.shape[1]} channels): give one weight per channel."
                )
            kl = kl * kl.new_tensor(self.channel_weights).view(1, -1, *([1] * (kl.ndim - 2)))
        mask = (
            tumour_neighbourhood(target, teacher_logits.detach(), self.margin, self.foreground_channel)
            if self.region == "tumour"
            else None
        )
        if self.agreement:
            mask = _combine_masks(mask, teacher_agreement(teacher_logits.detach(), target, labelled))

        def value(items: slice | None = None) -> torch.Tensor:
            items = slice(None) if items is None else items
            m = None if mask is None else mask[items]
            return (
                (_balanced_mean(kl[items], (p > 0.5)[items], m) if self.balanced else _masked_mean(kl[items], m))
                * t
                * t
            )

        return _reduce(value, kl.shape[0], value() if self.reduction == "mean" else None, self.reduction)


def region_class_probabilities(logits: torch.Tensor, tc: int = 0, wt: int = 1, et: int = 2) -> torch.Tensor:
    """The four mutually exclusive BraTS classes from nested sigmoid region outputs.

    The regions are nested (ET inside TC inside WT), so reading each sigmoid as a conditional probability gives a
    distribution over background, oedema (WT outside TC), necrosis / non-enhancing core (TC outside ET) and
    enhancing tumour: ``[1 - w, w (1 - t), w t (1 - e), w t e]`` with ``w, t, e`` the sigmoids of WT, TC, ET.

    Args:
        logits: region logits BNHWD with the TC, WT and ET channels at ``tc``, ``wt``, ``et``.

    Returns:
        class probabilities B4HWD (background, oedema, necrosis, enhancing), summing to 1 over the class axis.
    """
    w, t, e = (torch.sigmoid(logits[:, i : i + 1]) for i in (wt, tc, et))
    return torch.cat([1 - w, w * (1 - t), w * t * (1 - e), w * t * e], dim=1)


class RegionClassKLDivLoss(_OutputKD):
    """KD-Net's form for region outputs: KL over the mutually exclusive classes, at temperature T, times T^2.

    KD-Net distils a softmax over the label classes. A model-zoo BraTS network outputs three overlapping sigmoid
    regions (TC, WT, ET); :func:`region_class_probabilities` turns both networks' tempered region logits into the
    four exclusive classes (background, oedema, necrosis, enhancing), and the loss is
    ``sum_c p_c log(p_c / q_c)`` per voxel (teacher ``p``, student ``q``), averaged over voxels as configured.

    Args:
        temperature: T > 0 (applied to the region logits before the sigmoids).
        region: ``all`` voxels or the ``tumour`` neighbourhood.
        margin: dilation of the tumour neighbourhood, in voxels.
        balanced: average teacher-tumour and teacher-background voxels separately.
        channels: the (TC, WT, ET) channel indices of the outputs.
        channel_weights: not used by this form (one KL over classes); must be ``None``. Present so that a bundle
            can switch ``_target_`` between this and :class:`SigmoidKLDivLoss` with the same arguments.
        agreement: distil only the voxels where the teacher's most likely class is the label's; needs ``target``.
        reduction: ``mean``, ``sum`` or ``none``, as ``SigmoidKLDivLoss``.

    Raises:
        ValueError: T <= 0, unknown region, negative margin, channel weights given; at call, student and teacher
            shapes differ or have fewer than 3 channels, or ``agreement`` without a target.
    """

    def __init__(
        self,
        temperature: float = 2.0,
        region: str = "tumour",
        margin: int = 4,
        balanced: bool = True,
        channels: tuple[int, int, int] = (0, 1, 2),
        channel_weights: None = None,
        agreement: bool = False,
        reduction: str = "mean",
    ):
        super().__init__(temperature, region, margin, balanced, agreement, reduction)
        if channel_weights is not None:
            raise ValueError(
                "RegionClassKLDivLoss takes no channel_weights (one KL over the 4 classes): leave them null, or use "
                "SigmoidKLDivLoss for per-region weights."
            )
        self.channels = tuple(int(c) for c in channels)

    def forward(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor,
        target: torch.Tensor | None = None,
        labelled: torch.Tensor | None = None,
    ) -> torch.Tensor:
        _check_same_shape(student_logits, teacher_logits, "RegionClassKLDivLoss")
        self._needs_target(target, "RegionClassKLDivLoss")
        if student_logits.shape[1] < 3:
            raise ValueError(
                f"RegionClassKLDivLoss needs TC, WT and ET outputs (3 channels), got {tuple(student_logits.shape)}."
            )
        t, (tc, wt, et) = self.temperature, self.channels
        eps = 1e-7
        p = region_class_probabilities(teacher_logits.detach().float() / t, tc, wt, et).clamp_min(eps)
        q = region_class_probabilities(student_logits.float() / t, tc, wt, et).clamp_min(eps)
        kl = (p * (p.log() - q.log())).sum(1, keepdim=True)
        mask = (
            tumour_neighbourhood(target, teacher_logits.detach(), self.margin, wt) if self.region == "tumour" else None
        )
        if self.agreement:
            _check_same_shape(teacher_logits, target, "RegionClassKLDivLoss (teacher logits vs label)")
            # the label's class from its nested regions: background, oedema (WT only), necrosis (TC, no ET), ET
            w, c, e = (target[:, i : i + 1] > 0.5 for i in (wt, tc, et))
            label = torch.where(~w, 0, torch.where(~c, 1, torch.where(~e, 2, 3)))
            agree = p.argmax(1, keepdim=True) == label
            mask = _combine_masks(mask, _all_where_withheld(agree, labelled))

        def value(items: slice | None = None) -> torch.Tensor:
            items = slice(None) if items is None else items
            m = None if mask is None else mask[items]
            v = _balanced_mean(kl[items], (p[:, :1] < 0.5)[items], m) if self.balanced else _masked_mean(kl[items], m)
            return v * t * t

        return _reduce(value, kl.shape[0], value() if self.reduction == "mean" else None, self.reduction)


class FeatureDistillationLoss(_Loss):
    """Distance between student and teacher feature maps (the student's after its ``FeatureAdapter``).

    Args:
        distance: ``l2`` (mean squared error), ``l1`` (mean absolute error) or ``cosine`` (1 - cosine similarity
            of the channel vectors, averaged over voxels; scale-free).
        normalize: L2-normalise the channel vectors of both maps before ``l2`` / ``l1`` distances.
        reduction: ``mean`` (over the batch), ``sum`` (of the items' values) or ``none`` (one value per item), as
            MONAI's losses.

    Raises:
        ValueError: unknown distance or reduction; at call, feature shapes that differ (both printed).
    """

    DISTANCES = ("l2", "l1", "cosine")

    def __init__(self, distance: str = "cosine", normalize: bool = False, reduction: str = "mean"):
        super().__init__(reduction=_reduction(reduction))
        self.distance = look_up_option(distance, self.DISTANCES)
        self.normalize = as_bool(normalize, "normalize")

    def forward(self, student_features: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
        """
        Args:
            student_features: BCHWD, already mapped to the teacher's width.
            teacher_features: BCHWD (detached here).
        """
        t = teacher_features.detach()
        if student_features.shape != t.shape:
            hint = (
                ": the widths differ, so pass the student's features through a FeatureAdapter (set feature_channels "
                "and teacher_feature_channels)"
                if student_features.shape[1] != t.shape[1]
                else ""
            )
            raise ValueError(
                f"FeatureDistillationLoss: student features {tuple(student_features.shape)} do not match teacher "
                f"features {tuple(t.shape)}{hint}."
            )
        s, t = student_features.float(), t.float()
        if self.distance == "cosine":
            per_voxel = 1 - F.cosine_similarity(s, t, dim=1, eps=1e-6)
        else:
            if self.normalize:
                s, t = F.normalize(s, dim=1), F.normalize(t, dim=1)
            per_voxel = (s - t).square() if self.distance == "l2" else (s - t).abs()
        if self.reduction == "mean":
            return per_voxel.mean()
        items = per_voxel.flatten(1).mean(1)
        return items.sum() if self.reduction == "sum" else items


class DistillationLoss(nn.Module):
    """Supervised loss + output distillation + feature distillation, each its own object with its own weight.

    Stateless: every input comes as an argument, every term goes back in the returned dict. A weight of 0 switches
    its term off (it is then neither computed nor needs its inputs), so the baseline is the same loss with
    ``kd_weight = feature_weight = 0``.

    Example (bundle config)::

        "loss": {
            "_target_": "kd_components.losses.DistillationLoss",
            "seg_loss": {"_target_": "DiceLoss", "sigmoid": true, "squared_pred": true},
            "kd_loss": {"_target_": "kd_components.losses.SigmoidKLDivLoss", "temperature": 2.0},
            "feature_loss": {"_target_": "kd_components.losses.FeatureDistillationLoss", "distance": "cosine"},
            "kd_weight": 0.25,
            "feature_weight": 0.1
        }

    Args:
        seg_loss: supervised loss ``seg_loss(pred, label)``, e.g. ``DiceLoss(sigmoid=True)``.
        kd_loss: output term ``kd_loss(student_logits, teacher_logits, label)`` (``SigmoidKLDivLoss``, with T^2
            inside); ``None`` for none.
        feature_loss: feature term ``feature_loss(student_features, teacher_features)``; ``None`` for none.
        seg_weight: weight of the supervised term (>= 0).
        kd_weight: weight of the output term (>= 0).
        feature_weight: weight of the feature term (>= 0).
        pseudo_labels: items whose label is withheld get the teacher's thresholded map (logit > 0, i.e. sigmoid >
            0.5, per region) as the supervised term's target, so an overlap loss keeps the student's boundary
            there; False: the supervised term skips those items and only the teacher terms learn from them (a
            per-voxel KL alone can pull a rare region below 0.5: docs/results.md, data efficiency). With every
            teacher term at weight 0 the teacher still runs, as the labeller only.
        terms: more terms, each a :class:`kd_components.terms.DistillationTerm` with its own weight (the bundle's
            ``kd_terms`` list): called with both networks' outputs as dictionaries (``logits``, ``features`` of
            the layers it names), logged as ``loss_<name>``.

    Raises:
        ValueError: a negative weight, a positive weight without its term, a ``pseudo_labels`` that is not a boolean,
            a term that is not a ``DistillationTerm`` or two terms of one name.
    """

    def __init__(
        self,
        seg_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        kd_loss: nn.Module | None = None,
        feature_loss: nn.Module | None = None,
        seg_weight: float = 1.0,
        kd_weight: float = 0.0,
        feature_weight: float = 0.0,
        pseudo_labels: bool = False,
        terms: Sequence[DistillationTerm] = (),
    ):
        super().__init__()
        terms = list(terms or ())
        bad = [type(t).__name__ for t in terms if not isinstance(t, DistillationTerm)]
        if bad:
            raise ValueError(f"terms must be kd_components.terms.DistillationTerm objects, got {', '.join(bad)}.")
        names = [t.name for t in terms]
        if len(set(names)) != len(names):
            raise ValueError(f"terms must have distinct names (they are logged as loss_<name>), got {names}.")
        self.terms = nn.ModuleList(terms)
        weights = {"seg_weight": seg_weight, "kd_weight": kd_weight, "feature_weight": feature_weight}
        self.seg_weight, self.kd_weight, self.feature_weight = (at_least(w, 0, name) for name, w in weights.items())
        if self.kd_weight > 0 and kd_loss is None:
            raise ValueError("kd_weight > 0 needs a kd_loss.")
        if self.feature_weight > 0 and feature_loss is None:
            raise ValueError("feature_weight > 0 needs a feature_loss.")
        self.seg_loss, self.kd_loss, self.feature_loss = seg_loss, kd_loss, feature_loss
        self.pseudo_labels = as_bool(pseudo_labels, "pseudo_labels")

    @property
    def active_terms(self) -> list[DistillationTerm]:
        """The plugged-in terms with weight (the others are neither computed nor hooked)."""
        return [t for t in self.terms if t.weight > 0]

    @property
    def needs_teacher(self) -> bool:
        """Whether any teacher term has weight, or the teacher labels withheld items (``pseudo_labels``: it runs even
        with every teacher term off, the pseudo-label-only student); else no teacher needs to run."""
        return (
            self.kd_weight > 0
            or self.feature_weight > 0
            or self.pseudo_labels
            or any(t.needs_teacher for t in self.active_terms)
        )

    @property
    def student_layers(self) -> tuple[str, ...]:
        """The student modules whose outputs the weighted plugged-in terms read, each once."""
        return tuple(dict.fromkeys(p for t in self.active_terms for p in t.student_layers))

    @property
    def teacher_layers(self) -> tuple[str, ...]:
        """The teacher modules whose outputs the weighted plugged-in terms read, each once."""
        return tuple(dict.fromkeys(p for t in self.active_terms if t.needs_teacher for p in t.teacher_layers))

    @property
    def needs_teacher_features(self) -> bool:
        """Whether the feature term has weight (the teacher's and student's feature maps are needed)."""
        return self.feature_weight > 0

    def forward(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        teacher_logits: torch.Tensor | None = None,
        teacher_features: torch.Tensor | None = None,
        student_features: torch.Tensor | None = None,
        labelled: torch.Tensor | None = None,
        student_outputs: NetworkOutputs | None = None,
        teacher_outputs: NetworkOutputs | None = None,
    ) -> dict[str, torch.Tensor]:
        """
        Args:
            pred: student logits, BNHWD.
            target: label regions, BNHWD (all background where the label is withheld).
            teacher_logits: teacher logits, BNHWD (needed when ``kd_weight > 0``).
            teacher_features: teacher feature map, BCHWD (needed when ``feature_weight > 0``).
            student_features: student feature map mapped to the teacher's width, BCHWD (idem).
            labelled: B booleans, False where the item's label is withheld: the supervised term is computed on the
                labelled items only (0 when there are none), or with ``pseudo_labels`` on every item with the
                teacher's thresholded map as the withheld items' target; the teacher terms on all. None: all labelled.
            student_outputs: the student's outputs for the plugged-in ``terms`` (``logits``: ``pred``; ``features``
                of ``student_layers``); None: ``{"logits": pred, "features": {}}``.
            teacher_outputs: the teacher's (``logits``, ``features`` of ``teacher_layers``); None when no teacher ran.

        Returns:
            ``{"loss": total, "loss_seg": .., "loss_kd": .., "loss_feat": .., "loss_<name>": ..}`` (one entry per
            plugged-in term); terms that are off are 0. Only ``loss`` carries gradients to use; the terms are for
            logging.

        Raises:
            ValueError: a weighted term whose inputs are missing, or inputs of different shapes (both printed);
                withheld labels without a teacher term to learn from them.
        """
        withheld = labelled is not None and not bool(torch.as_tensor(labelled).all())
        if withheld:
            keep = torch.as_tensor(labelled, dtype=torch.bool, device=pred.device).reshape(-1)
            if keep.numel() != pred.shape[0]:
                raise ValueError(
                    f"labelled has {keep.numel()} flags for a batch of {pred.shape[0]} (pred {tuple(pred.shape)})."
                )
            if not self.needs_teacher:
                raise ValueError(
                    "items with withheld labels need a teacher term (kd_weight or feature_weight > 0) or pseudo_labels."
                )
            if self.pseudo_labels:
                if teacher_logits is None:
                    raise ValueError("pseudo_labels: items with withheld labels need the teacher_logits of the batch.")
                if teacher_logits.shape != target.shape:
                    raise ValueError(
                        f"pseudo_labels: teacher_logits {tuple(teacher_logits.shape)} and target "
                        f"{tuple(target.shape)} must have the same shape."
                    )
                pseudo = (teacher_logits.detach() > 0).to(target.dtype)
                target = torch.where(_per_item(keep, target), target, pseudo)
                seg = self.seg_loss(pred, target)
            else:
                seg = self.seg_loss(pred[keep], target[keep]) if keep.any() else pred.new_zeros(())
        else:
            seg = self.seg_loss(pred, target)
        total: Any = self.seg_weight * seg
        zero = seg.new_zeros(())
        kd, feat = zero, zero
        if self.kd_weight > 0:
            if teacher_logits is None:
                raise ValueError("kd_weight > 0 but no teacher_logits were given for this batch.")
            # the labelled flags go to the KD term only when some label is withheld (a custom kd_loss without a
            # ``labelled`` argument keeps working on fully labelled batches)
            extra = (labelled,) if withheld else ()
            kd = self.kd_loss(pred, teacher_logits, target, *extra)
            total = total + self.kd_weight * kd
        if self.feature_weight > 0:
            if teacher_features is None or student_features is None:
                raise ValueError("feature_weight > 0 but the student's or the teacher's features were not given.")
            feat = self.feature_loss(student_features, teacher_features)
            total = total + self.feature_weight * feat
        out = {"loss": total, "loss_seg": seg.detach(), "loss_kd": kd.detach(), "loss_feat": feat.detach()}
        student_outputs = student_outputs or {"logits": pred, "features": {}}
        for term in self.terms:
            if term.weight == 0:
                out[f"loss_{term.name}"] = zero
                continue
            if term.needs_teacher and teacher_outputs is None:
                raise ValueError(f"term '{term.name}' needs the teacher's outputs, but none were given for this batch.")
            # terms in float32 whatever autocast says: similarity sums and softmaxes over every voxel overflow float16
            with torch.autocast(pred.device.type, enabled=False):
                value = term(student_outputs, teacher_outputs, target, labelled)
            total = total + term.weight * value
            out[f"loss_{term.name}"] = value.detach()
        out["loss"] = total
        return out
