"""One student for whatever sequences a scan has: the ``any`` student's input and its modality dropout.

The ``any`` student sees the teacher's four channels (T1c, T1, T2, FLAIR), the absent ones set to zero, followed by
four presence maps (1 where that sequence is given, 0 where it is absent): ``2 x 4 = 8`` input channels::

    channel   0    1    2    3      4        5        6        7
              T1c  T1   T2   FLAIR  has T1c  has T1   has T2   has FLAIR

Zero is the mean of a normalised image (``NormalizeIntensityd(nonzero=True, channel_wise=True)``), so a zero
channel alone is ambiguous; the presence maps say which channels are real (the "zero-filling plus mask" of HeMIS-
style models, with the network, loss and recipe of the dedicated students unchanged).

Training draws one subset per case and iteration, uniformly from the 15 non-empty subsets (``ModalityDropout``;
every subset, the full set included, is reachable), among the sequences the case has. Validation gives each case
one fixed subset, chosen from its file name (``case_subset``), so every validation is on the same inputs. Evaluation
and inference take a named subset (``t1ce+flair``) or the images a case has.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Sequence

import torch

from kd_components import brats

__all__ = [
    "ANY",
    "ALL_SUBSETS",
    "ModalityDropout",
    "canonical_student_modality",
    "case_subset",
    "input_channel_names",
    "is_any",
    "keep_meta",
    "place_channels",
    "presence_input",
    "subset_name",
    "subset_present",
]

#: the ``--student_modality`` of the one student for every subset.
ANY = "any"
#: every non-empty subset of the teacher's sequences, by size then in the teacher's channel order (15 of them):
#: ``t1ce``, ``t1``, ``t2``, ``flair``, ``t1ce+t1``, ..., ``t1ce+t1+t2+flair``.
ALL_SUBSETS: tuple[tuple[str, ...], ...] = tuple(
    c for k in range(1, len(brats.TEACHER_CHANNELS) + 1) for c in itertools.combinations(brats.TEACHER_CHANNELS, k)
)


def is_any(modality: object) -> bool:
    """Whether a ``--student_modality`` value names the one student for every subset (``any``, any case)."""
    return isinstance(modality, str) and modality.strip().lower() == ANY


def canonical_student_modality(modality: str) -> str:
    """The canonical name of a student's modality: ``any``, or the sequence / combination (``T2F+t1c`` ->
    ``t1ce+flair``).

    Raises:
        ValueError: as ``brats.canonical_combination``.
    """
    return ANY if is_any(modality) else brats.canonical_combination(modality)


def input_channel_names(modality: str | None) -> list[str]:
    """The display names of a network's input channels, as the model zoo's ``channel_def``: the teacher's four
    (None), a student's sequences (``t1ce+flair`` -> ``["T1c", "FLAIR"]``), or for ``any`` the four sequences
    (zero when absent) and their presence maps (``"T1c present"``, ...).

    Raises:
        ValueError: as ``brats.combination_members``.
    """
    if modality is None:
        return [brats.CHANNEL_NAMES[m] for m in brats.TEACHER_CHANNELS]
    if is_any(modality):
        names = [brats.CHANNEL_NAMES[m] for m in brats.TEACHER_CHANNELS]
        return [f"{n} (0 if absent)" for n in names] + [f"{n} present (1/0)" for n in names]
    return [brats.CHANNEL_NAMES[m] for m in brats.combination_members(modality)]


def subset_name(members: Sequence[str]) -> str:
    """The canonical name of a subset: ``["flair", "t1c"]`` -> ``"t1ce+flair"``.

    Raises:
        ValueError: as ``brats.canonical_combination``.
    """
    return brats.canonical_combination(list(members))


def subset_present(subset: str | Sequence[str]) -> list[bool]:
    """The presence flags (T1c, T1, T2, FLAIR order) of a subset: ``"t1ce+flair"`` -> ``[True, False, False, True]``.

    Raises:
        ValueError: an unknown name, a name given twice, or an empty subset.
    """
    members = brats.combination_members(subset if isinstance(subset, str) else list(subset))
    return [m in members for m in brats.TEACHER_CHANNELS]


def place_channels(image: torch.Tensor, channels: Sequence[int], num_channels: int = 4) -> torch.Tensor:
    """The ``num_channels``-channel image (``NHWD``) with channel ``c`` of ``image`` at ``channels[c]`` and zeros
    elsewhere: a case's loaded sequences put at their teacher channels. A ``MetaTensor`` keeps its metadata and its
    transform history (``Invertd`` still undoes the resampling before it).

    Raises:
        ValueError: one target channel per image channel is needed.
    """
    if len(channels) != image.shape[0]:
        raise ValueError(f"{len(channels)} target channels for an image of shape {tuple(image.shape)}.")
    full = torch.zeros((num_channels, *image.shape[1:]), dtype=image.dtype, device=image.device)
    full[list(channels)] = torch.as_tensor(image)
    return keep_meta(full, image)


def keep_meta(out: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``out`` with ``like``'s metadata and transform history when ``like`` is a ``MetaTensor`` (a new tensor made
    from it, e.g. with another channel count), else ``out``."""
    from monai.data import MetaTensor

    if not isinstance(like, MetaTensor):
        return out
    return MetaTensor(torch.as_tensor(out), meta=dict(like.meta), applied_operations=list(like.applied_operations))


def presence_input(image: torch.Tensor, present: torch.Tensor | Sequence[bool]) -> torch.Tensor:
    """The ``any`` student's input: the absent channels of ``image`` zeroed, then one presence map per channel.

    Args:
        image: the four sequences, ``BNHWD`` (or ``NHWD`` for one case), N = 4 in the teacher's channel order; the
            absent channels' values are ignored.
        present: which channels are given: ``B x N`` (``N`` for one case, or for every case of the batch), bool or
            0/1.

    Returns:
        ``B(2N)HWD`` (``(2N)HWD``), the image's dtype and device (a ``MetaTensor`` keeps its metadata).

    Raises:
        ValueError: ``present`` whose shape does not fit the image's, or a case with no channel given.
    """
    batched = image.ndim == 5
    x = image if batched else image[None]
    n = x.shape[1]
    flags = torch.as_tensor(present, device=x.device).to(torch.bool)
    if flags.ndim == 1:
        flags = flags[None].expand(x.shape[0], -1)
    if flags.shape != (x.shape[0], n):
        raise ValueError(
            f"presence flags of shape {tuple(flags.shape)} do not fit an image of shape {tuple(image.shape)}: "
            f"give one flag per channel ({n}), per case."
        )
    if not bool(flags.any(dim=1).all()):
        raise ValueError("a case with no sequence present: give at least one of T1c, T1, T2, FLAIR.")
    mask = flags.to(x.dtype)[..., None, None, None]
    out = torch.cat([x * mask, mask.expand_as(x)], dim=1)
    return out if batched else out[0]


def case_subset(name: str, available: Sequence[bool] | None = None) -> list[bool]:
    """The fixed validation subset of a case: one of the 15, chosen from a checksum of its name (the same at every
    validation, spread over the subsets across cases), among the sequences the case has.

    Args:
        name: the case's file name (any stable string).
        available: the case's sequences (T1c, T1, T2, FLAIR flags); None: all four.
    """
    has = [True] * len(brats.TEACHER_CHANNELS) if available is None else [bool(a) for a in available]
    choices = [s for s in ALL_SUBSETS if all(has[brats.TEACHER_CHANNELS.index(m)] for m in s)]
    subset = choices[zlib.crc32(str(name).encode()) % len(choices)]
    return [m in subset for m in brats.TEACHER_CHANNELS]


class ModalityDropout:
    """The ``any`` student's training input: per case, one subset drawn uniformly from the non-empty subsets of
    the sequences it has (all 15 for a complete case), turned into ``presence_input``.

    Args:
        subsets: the subsets drawn from (names such as ``"t1ce+flair"``); None: all 15.
        generator: the ``torch.Generator`` drawn from; None: torch's global one (``set_determinism`` seeds it), or
            under torchrun one per rank seeded from it and the rank.

    Raises:
        ValueError: an unknown or empty subset name.
    """

    def __init__(self, subsets: Sequence[str] | None = None, generator: torch.Generator | None = None):
        given = ALL_SUBSETS if subsets is None else subsets
        names = [brats.canonical_combination(s if isinstance(s, str) else list(s)) for s in given]
        if not names:
            raise ValueError("subsets: give at least one subset (or None for all 15).")
        self.names = list(dict.fromkeys(names))
        self.subsets = torch.tensor([subset_present(s) for s in self.names], dtype=torch.bool)
        self.generator = generator

    def draw(self, batch_size: int, available: torch.Tensor | None = None) -> torch.Tensor:
        """``batch_size x 4`` presence flags, each row a subset drawn among those ``available`` allows.

        Raises:
            ValueError: a case for which no subset is allowed (none of its sequences is in any subset).
        """
        if self.generator is None and torch.distributed.is_available() and torch.distributed.is_initialized():
            # torchrun ranks share the seed: one generator per rank, so that they do not draw the same subsets
            rank = torch.distributed.get_rank()
            self.generator = torch.Generator().manual_seed(torch.initial_seed() + 1000003 * rank)
        rows = []
        for b in range(batch_size):
            allowed = self.subsets
            if available is not None:
                has = torch.as_tensor(available[b], dtype=torch.bool).cpu()
                allowed = allowed[(allowed & ~has).sum(dim=1) == 0]
            if len(allowed) == 0:
                raise ValueError(f"case {b} of the batch has none of the sequences of any allowed subset.")
            i = int(torch.randint(len(allowed), (1,), generator=self.generator))
            rows.append(allowed[i])
        return torch.stack(rows)

    def __call__(self, image: torch.Tensor, available: torch.Tensor | None = None) -> torch.Tensor:
        """``presence_input`` of ``image`` (``B4HWD``) with one drawn subset per case: ``B8HWD``."""
        flags = self.draw(image.shape[0], available)
        return presence_input(image, flags.to(image.device))
