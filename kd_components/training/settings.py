"""Checks of a bundle's settings, run by its ``initialize`` step so that bad values stop it with one line.

This is the config boundary: the library raises ``ValueError``; here the same checks become ``InputError``
naming the override to change.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from kd_components import brats, options, subsets
from kd_components.data.datalist import missing_data
from kd_components.errors import InputError
from kd_components.losses import KD_REGIONS, DistillationLoss, FeatureDistillationLoss

__all__ = [
    "as_bool",
    "check_distillation_settings",
    "check_inputs",
    "check_pixdim",
    "missing_teacher",
    "student_channel",
]


def cached_features_message(feature_weight: float) -> str:
    """The one line that refuses the feature term with cached teacher outputs (the settings check and the trainer)."""
    return (
        f"cached teacher outputs carry logits only, but feature_weight is {feature_weight}: set --feature_weight 0 "
        f"with configs/cached_teacher.json, or distil online for the feature term."
    )


def check_distillation_settings(
    seg_weight: float,
    kd_weight: float,
    feature_weight: float,
    kd_temperature: float,
    kd_region: str | None = None,
    feature_distance: str = "cosine",
    kd_balanced: bool | None = None,
    cached_logits_key: str | None = None,
    kd_channel_weights: list[float] | None = None,
    unlabelled_split: str | None = None,
    kd_follow_margin: bool = False,
    kd_agreement: bool = False,
    unlabelled_pseudo_labels: bool = False,
) -> None:
    """Refuse distillation settings the loss could not use, naming the override to change. A setting left None is
    not checked here: its default lives in the loss (``SigmoidKLDivLoss``, ``RegionClassKLDivLoss``), in one place.

    Raises:
        InputError: a negative or non-numeric weight, a temperature <= 0, an unknown region or distance, a
            ``kd_balanced`` that is not a boolean, the feature term with cached teacher logits (they hold no
            features), cases with withheld labels (``unlabelled_split``) without a teacher term or with cached
            logits (the cache holds the labelled training split only), a ``kd_follow_margin``, ``kd_agreement``
            or ``unlabelled_pseudo_labels`` that is not a boolean, pseudo-labels without an ``unlabelled_split``
            (nothing to label) or without the output term (they are the teacher's thresholded logits).
    """
    for name, value in (("seg_weight", seg_weight), ("kd_weight", kd_weight), ("feature_weight", feature_weight)):
        try:
            options.at_least(value, 0, name)
        except ValueError:
            raise InputError(
                f"--{name} {value!r}: a loss weight must be a number >= 0 (0 switches the term off)."
            ) from None
    try:
        options.at_least(kd_temperature, 0, "kd_temperature", strict=True)
    except ValueError:
        raise InputError(
            f"--kd_temperature {kd_temperature!r}: the temperature must be a number > 0 (typically 1-4)."
        ) from None
    if kd_region is not None and kd_region not in KD_REGIONS:
        raise InputError(f"--kd_region {kd_region!r}: use one of {', '.join(KD_REGIONS)}.")
    if feature_distance not in FeatureDistillationLoss.DISTANCES:
        raise InputError(
            f"--feature_distance {feature_distance!r}: use one of {', '.join(FeatureDistillationLoss.DISTANCES)}."
        )
    if kd_balanced is not None:
        as_bool(kd_balanced, "kd_balanced")
    as_bool(kd_follow_margin, "kd_follow_margin")
    as_bool(kd_agreement, "kd_agreement")
    if as_bool(unlabelled_pseudo_labels, "unlabelled_pseudo_labels"):
        if unlabelled_split is None:
            raise InputError(
                "--unlabelled_pseudo_labels true labels the cases of --unlabelled_split with the teacher's map, but "
                "--unlabelled_split is null: name the datalist key of the unlabelled cases, or set it false."
            )
    if kd_channel_weights is not None:
        try:
            weights = [float(w) for w in kd_channel_weights]
        except (TypeError, ValueError):
            weights = []
        if len(weights) != len(brats.REGIONS) or min(weights) < 0 or max(weights) == 0:
            raise InputError(
                f"--kd_channel_weights {kd_channel_weights!r}: give one weight >= 0 per region "
                f"({', '.join(brats.REGIONS)}), not all zero, e.g. [1, 0.5, 1]; or null for equal weights."
            )
    if unlabelled_split is not None:
        pseudo = as_bool(unlabelled_pseudo_labels, "unlabelled_pseudo_labels")
        if float(kd_weight) == 0 and float(feature_weight) == 0 and not pseudo:
            raise InputError(
                f"--unlabelled_split {unlabelled_split!r}: cases without labels are learnt from the teacher only, but "
                f"kd_weight = feature_weight = 0 (the baseline): set --unlabelled_split null, give a teacher term, or "
                f"label them with the teacher's map (--unlabelled_pseudo_labels true)."
            )
        if cached_logits_key is not None:
            raise InputError(
                f"--unlabelled_split {unlabelled_split!r} with cached teacher logits: the cache holds the training "
                f"split only; distil online (drop configs/cached_teacher.json) to use unlabelled cases."
            )
    if cached_logits_key is not None and float(feature_weight) > 0:
        raise InputError(cached_features_message(feature_weight))


def missing_teacher(checkpoint: str | os.PathLike) -> str:
    """The problem of a teacher checkpoint that does not exist, with how to fix it."""
    return (
        f"teacher checkpoint '{checkpoint}' does not exist: pass --teacher_ckpt with the teacher's models/model.pt "
        f"(train it with bundles/teacher, or use model-zoo brats_mri_segmentation's)"
    )


def check_inputs(
    dataset_dir: str | os.PathLike,
    data_list_file_path: str | os.PathLike,
    teacher_ckpt: str | os.PathLike | None = None,
    loss: DistillationLoss | None = None,
    cached_logits_key: str | None = None,
    data: Sequence | None = None,
) -> None:
    """Refuse a run whose inputs are missing, naming every missing one at once (data folder or datalist, teacher).

    The teacher checkpoint is needed when ``loss`` has a teacher term and no cached logits replace it. ``data`` is
    the training items the run will use (the bundles pass ``@train#dataset#data``): when it is not empty the data
    folder and datalist are not needed, as when MONAI Label gives its datastore's items in place of the datalist.

    Raises:
        InputError: all missing inputs, in one line.
    """
    problems = [] if data else missing_data(dataset_dir, data_list_file_path)
    needs_teacher = teacher_ckpt is not None and loss is not None and loss.needs_teacher and cached_logits_key is None
    if needs_teacher and not Path(teacher_ckpt).is_file():
        problems.append(missing_teacher(teacher_ckpt))
    if problems:
        raise InputError("; ".join(problems) + ".")


def check_pixdim(
    pixdim,
    cached_logits_key: str | None = None,
    teacher_ckpt: str | os.PathLike | None = None,
    loss: DistillationLoss | None = None,
) -> None:
    """Refuse a malformed ``--pixdim`` in one line before any work (the transform would raise deep in the run), a
    voxel size with cached teacher logits (``tools.cache`` writes them at the images' own spacing), and a teacher
    trained at another voxel size than the student's (it would see every structure at another size).

    Args:
        pixdim: the run's voxel size setting.
        cached_logits_key: the batch key of cached teacher logits, or None.
        teacher_ckpt: the teacher's weights; the voxel size recorded beside them (``model_settings.json``) is
            compared when ``loss`` has a teacher term (weights without the record, e.g. the model zoo's, are not).
        loss: the student's loss (None: no teacher check).

    Raises:
        InputError: ``pixdim`` neither null nor one or three voxel sizes > 0, with an example; set together with
            ``configs/cached_teacher.json``; or another than the teacher's.
    """
    from kd_components.deploy.weights import SETTINGS_NAME, read_model_settings
    from kd_components.transforms import pixdim_setting

    try:
        value = pixdim_setting(pixdim)
    except ValueError as e:
        raise InputError(f"--pixdim: {e}") from None
    if value is not None and cached_logits_key is not None:
        raise InputError(
            f"--pixdim {value} with configs/cached_teacher.json: cached teacher logits exist only at the images' own "
            f"spacing; train this student with the online teacher (leave out configs/cached_teacher.json)."
        )
    if teacher_ckpt is None or loss is None or not loss.needs_teacher or cached_logits_key is not None:
        return
    settings = read_model_settings(Path(teacher_ckpt).parent) or {}
    if "pixdim" not in settings:
        return
    trained = pixdim_setting(settings["pixdim"])
    if trained != value:
        said = "each image's own spacing (null)" if trained is None else str(trained)
        raise InputError(
            f"--pixdim {value} but the teacher '{teacher_ckpt}' was trained at {said} ({SETTINGS_NAME} beside it): "
            f"give --pixdim {_json_value(trained)}, or a teacher trained at {_json_value(value)}."
        )


def _json_value(value) -> str:
    """A setting as it is written on the command line (``null``, ``[3.0, 3.0, 3.0]``)."""
    import json

    return json.dumps(value)


def as_bool(value, name: str) -> bool:
    """:func:`kd_components.options.as_bool` for a setting ``--name``.

    Raises:
        InputError: a value that is not a boolean, 0/1 or true/false/yes/no (any case).
    """
    try:
        return options.as_bool(value, name)
    except ValueError:
        raise InputError(f"--{name} is {value!r}: give true or false.") from None


def student_channel(modality: str) -> list[int]:
    """The teacher-input channels of the student's modality or combination (``--student_modality t1ce`` -> ``[0]``,
    ``t1ce+flair`` -> ``[0, 3]``), in the teacher's channel order.

    ``any`` (the one student for every subset) -> ``[0, 1, 2, 3]``: it reads all four, the absent ones zeroed.

    Raises:
        InputError: a name that is not a BraTS modality, or a combination that names one twice.
    """
    if subsets.is_any(modality):
        return list(range(len(brats.TEACHER_CHANNELS)))
    try:
        return brats.combination_indices(modality)
    except ValueError as e:
        raise InputError(f"--student_modality: {e}") from None


def student_in_channels(modality: str) -> int:
    """The student network's input channels: one per sequence of its modality or combination; for ``any``, the
    four sequences and their four presence maps (``kd_components.subsets``): 8.

    Raises:
        InputError: as ``student_channel``.
    """
    if subsets.is_any(modality):
        return 2 * len(brats.TEACHER_CHANNELS)
    return len(student_channel(modality))


def student_modality_name(modality: str) -> str:
    """The canonical name of the student's modality or combination (``T2F+t1c`` -> ``t1ce+flair``).

    Raises:
        InputError: as ``student_channel``.
    """
    try:
        return subsets.canonical_student_modality(modality)
    except ValueError as e:
        raise InputError(f"--student_modality: {e}") from None


def input_subset(modality: str, input_modalities: str | None = None) -> str | None:
    """The sequences a student is evaluated on (``--input_modalities``), checked against its modality.

    Args:
        modality: ``--student_modality``.
        input_modalities: a subset (``flair``, ``t1ce+flair``); None: the student's own sequences (for ``any``:
            each validation case's fixed subset, ``kd_components.subsets.case_subset``).

    Returns:
        the canonical subset name, or None.

    Raises:
        InputError: a malformed subset, or one other than a dedicated student's own sequences.
    """
    if input_modalities is None:
        return None
    try:
        subset = brats.canonical_combination(input_modalities)
    except ValueError as e:
        raise InputError(f"--input_modalities: {e}") from None
    if not subsets.is_any(modality) and subset != student_modality_name(modality):
        raise InputError(
            f"--input_modalities {input_modalities}: a {student_modality_name(modality)} student reads "
            f"{student_modality_name(modality)} only; train a --student_modality any student to choose the inputs."
        )
    return subset


def student_batch(modality: str, input_modalities: str | None = None):
    """The ``prepare_batch`` of the student's validation and evaluation: its channels sliced from the 4-channel
    batch (``SelectChannelsBatch``), or for ``any`` the subset's 8-channel input (``SubsetInputBatch``).

    Raises:
        InputError: as ``student_channel`` and ``input_subset``.
    """
    from kd_components.training.batch import SelectChannelsBatch, SubsetInputBatch

    subset = input_subset(modality, input_modalities)
    if subsets.is_any(modality):
        return SubsetInputBatch(subset)
    return SelectChannelsBatch(student_channel(modality))


def student_input(modality: str):
    """What the trainer feeds the student from the 4-channel batch: None (its channels sliced) for a dedicated
    student, ``ModalityDropout`` (one random subset of the 15 per case and iteration) for ``any``.

    Raises:
        InputError: as ``student_channel``.
    """
    student_channel(modality)
    return subsets.ModalityDropout() if subsets.is_any(modality) else None


def check_absent_sequences(allow: object, modality: str) -> bool:
    """``--allow_absent_sequences``, checked against the student: only the ``any`` student reads a case that lacks
    sequences (a dedicated student would be handed a zero channel as if it were a scan).

    Raises:
        InputError: a value that is not a boolean, or true for a dedicated student.
    """
    allowed = as_bool(allow, "allow_absent_sequences")
    if allowed and not subsets.is_any(modality):
        raise InputError(
            f"--allow_absent_sequences true with --student_modality {modality}: only a --student_modality any student "
            "trains on cases that lack sequences; leave it unset, or train an any student."
        )
    return allowed


def evaluation_subset(modality: str, input_modalities: str | None) -> str | None:
    """The subset an evaluation scores, checked: the ``any`` student is scored from a named subset only (each
    validation case's fixed subset would read as a headline number it is not).

    Raises:
        InputError: an ``any`` student without ``--input_modalities``; as ``input_subset``.
    """
    if subsets.is_any(modality) and input_modalities is None:
        raise InputError(
            "the any student is scored from one subset of the sequences: pass --input_modalities (e.g. flair, "
            "t1ce+flair, or t1ce+t1+t2+flair for all four); the ablation (--modalities any) scores all 15."
        )
    return input_subset(modality, input_modalities)


def check_absent_teacher(data: Sequence[dict], teacher_ckpt: str | os.PathLike | None, loss=None) -> None:
    """Refuse online distillation from training cases that lack sequences when the teacher never saw such cases: it
    would be distilled from zero-filled inputs it was not trained on (``model_settings.json`` beside the teacher
    records ``absent_sequences``).

    Raises:
        InputError: a teacher term with weight, items with absent sequences (``present`` flags), and a teacher
            trained on complete cases only (or without a settings record).
    """
    from kd_components.data.datalist import PRESENT_KEY
    from kd_components.deploy.weights import read_model_settings

    if loss is None or not getattr(loss, "needs_teacher", False) or teacher_ckpt is None:
        return
    lacking = [d for d in data or [] if isinstance(d, dict) and not all(d.get(PRESENT_KEY) or [True])]
    if not lacking:
        return
    settings = read_model_settings(Path(teacher_ckpt).parent) or {}
    if settings.get("absent_sequences"):
        return
    first = lacking[0]
    absent = [brats.CHANNEL_NAMES[m] for m, p in zip(brats.TEACHER_CHANNELS, first[PRESENT_KEY]) if not p]
    raise InputError(
        f"{len(lacking)} training case(s) lack sequences (e.g. '{first.get('case', '?')}' lacks {', '.join(absent)}) "
        f"but the teacher '{teacher_ckpt}' was trained on complete cases only: it would be distilled from zero-filled "
        "inputs it never saw; train the teacher on this datalist with --allow_absent_sequences true, or leave those "
        "cases out."
    )
