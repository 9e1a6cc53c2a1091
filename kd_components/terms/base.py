"""What every distillation term is: a weighted module that names the outputs it reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import torch
from torch import nn

__all__ = ["DistillationTerm", "NetworkOutputs", "RESERVED_NAMES"]

#: names the built-in parts of ``DistillationLoss`` log under (``loss_seg``, ``loss_kd``, ``loss_feat``).
RESERVED_NAMES = ("", "seg", "kd", "feat")


class NetworkOutputs(TypedDict):
    """One network's outputs for one batch, as the trainer hands them to the terms.

    ``logits``: the main output, BNHWD (or BNHW). ``features``: the output of every module a term named, by module
    path (``"down_layers.3"``), BCHWD.
    """

    logits: torch.Tensor
    features: dict[str, torch.Tensor]


class DistillationTerm(nn.Module):
    """A distillation term: ``weight * term(student, teacher, target, labelled)`` is added to the student's loss.

    Subclasses set what they read in ``__init__`` and implement ``forward``. The trainer hooks the union of every
    weighted term's ``student_layers`` / ``teacher_layers`` and runs the teacher only when a weighted term
    ``needs_teacher``. The value is logged as ``loss_<name>`` beside ``loss``.

    Args:
        weight: the term's weight (>= 0; 0 switches it off: it is neither computed nor are its layers hooked).
        name: its name in the logs (``loss_<name>``); letters, digits and ``_``; not ``seg``, ``kd`` or ``feat``.
        student_layers: student module paths whose outputs the term reads.
        teacher_layers: teacher module paths whose outputs the term reads.
        needs_teacher: whether the term reads the teacher's outputs.

    Raises:
        ValueError: a negative or non-numeric weight, a bad name, layer names that are not strings.
    """

    def __init__(
        self,
        weight: float,
        name: str,
        student_layers: Sequence[str] = (),
        teacher_layers: Sequence[str] = (),
        needs_teacher: bool = True,
    ):
        super().__init__()
        try:
            self.weight = float(weight)
        except (TypeError, ValueError):
            raise ValueError(f"{type(self).__name__}: weight must be a number >= 0, got {weight!r}.") from None
        if not self.weight >= 0:
            raise ValueError(f"{type(self).__name__}: weight must be a number >= 0, got {weight!r}.")
        if not isinstance(name, str) or not name.replace("_", "").isalnum() or name in RESERVED_NAMES:
            raise ValueError(
                f"{type(self).__name__}: name must be letters, digits and '_' and not one of {RESERVED_NAMES[1:]}, "
                f"got {name!r}."
            )
        self.name = name
        self.student_layers = self._layers(student_layers, "student_layers")
        self.teacher_layers = self._layers(teacher_layers, "teacher_layers")
        self.needs_teacher = bool(needs_teacher)

    @classmethod
    def _layer_pair(cls, layer: str, teacher_layer: str | None) -> dict[str, tuple[str, ...]]:
        """``student_layers`` / ``teacher_layers`` of a term that reads one layer on each network (the teacher's
        the student's unless named), for ``__init__``.

        Raises:
            ValueError: no layer.
        """
        if not layer:
            raise ValueError(f"{cls.__name__}: give the feature layer (a module path).")
        return {"student_layers": (layer,), "teacher_layers": (teacher_layer or layer,)}

    def _positive(self, value, what: str) -> float:
        """``value`` as a float > 0 (a temperature), else ``ValueError`` naming the term and the setting."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = -1.0
        if not number > 0:
            raise ValueError(f"{type(self).__name__}: {what} must be a number > 0, got {value!r}.")
        return number

    def _maps(
        self,
        student: NetworkOutputs,
        teacher: NetworkOutputs | None,
        student_layer: str | None,
        teacher_layer: str | None,
        same_width: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The student's and the teacher's (detached) map the term compares: ``logits`` for a layer of None, else
        the features of that module path.

        Raises:
            ValueError: no teacher outputs; maps of different batch or spatial sizes (or widths, ``same_width``),
                both shapes printed with their layers.
        """
        if teacher is None:
            raise ValueError(f"{type(self).__name__} needs the teacher's outputs.")
        s = student["features"][student_layer] if student_layer else student["logits"]
        t = (teacher["features"][teacher_layer] if teacher_layer else teacher["logits"]).detach()
        if s.shape[:1] + s.shape[2:] != t.shape[:1] + t.shape[2:] or (same_width and s.shape[1] != t.shape[1]):
            raise ValueError(
                f"{type(self).__name__}: student '{student_layer or 'logits'}' {tuple(s.shape)} and teacher "
                f"'{teacher_layer or 'logits'}' {tuple(t.shape)} maps must have the same "
                f"{'shape' if same_width else 'batch and spatial sizes'}."
            )
        return s, t

    def _layers(self, layers: Sequence[str], what: str) -> tuple[str, ...]:
        layers = (layers,) if isinstance(layers, str) else tuple(layers)
        if not all(isinstance(layer, str) and layer for layer in layers):
            raise ValueError(f"{type(self).__name__}: {what} must be module paths (strings), got {layers!r}.")
        return layers

    def forward(
        self,
        student: NetworkOutputs,
        teacher: NetworkOutputs | None,
        target: torch.Tensor,
        labelled: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The term's value, a scalar tensor.

        Args:
            student: the student's outputs (``logits`` and the ``features`` of ``student_layers``).
            teacher: the teacher's (None when ``needs_teacher`` is False); detached, computed under ``no_grad``.
            target: the label regions, BNHWD (all background where an item's label is withheld).
            labelled: B booleans, False where an item's label is withheld; None: all labelled.
        """
        raise NotImplementedError
