"""The one student for every subset: its 8-channel input, the modality dropout, the fixed validation subsets, the
transform that builds the input at inference, and the settings that name it."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor

from kd_components import subsets
from kd_components.errors import InputError
from kd_components.training import settings
from kd_components.training.batch import SelectChannelsBatch, SubsetInputBatch
from kd_components.transforms import PresenceInputd, listed_sequences, named_sequences


def test_fifteen_subsets_by_size_in_the_teachers_order():
    names = [subsets.subset_name(s) for s in subsets.ALL_SUBSETS]
    assert len(names) == len(set(names)) == 15
    assert names[:4] == ["t1ce", "t1", "t2", "flair"]
    assert names[4] == "t1ce+t1" and names[-1] == "t1ce+t1+t2+flair"
    assert subsets.subset_present("flair+t1c") == [True, False, False, True]


@pytest.mark.parametrize(
    "present, expected_channels",
    [
        # hand-checked: channel c of the image is kept where present[c], zero elsewhere; then the flags as maps
        ([1, 0, 0, 1], [10.0, 0.0, 0.0, 40.0, 1.0, 0.0, 0.0, 1.0]),
        ([0, 1, 0, 0], [0.0, 20.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]),
        ([1, 1, 1, 1], [10.0, 20.0, 30.0, 40.0, 1.0, 1.0, 1.0, 1.0]),
    ],
)
def test_presence_input_by_hand(present, expected_channels):
    image = torch.tensor([10.0, 20.0, 30.0, 40.0]).reshape(1, 4, 1, 1, 1).expand(1, 4, 2, 2, 2)
    out = subsets.presence_input(image, torch.tensor([present]))
    assert out.shape == (1, 8, 2, 2, 2)
    assert out[0, :, 1, 1, 1].tolist() == expected_channels
    # one case without the batch axis, flags as a plain list: the same values
    assert subsets.presence_input(image[0], present)[:, 0, 0, 0].tolist() == expected_channels


def test_ill_presence_input():
    image = torch.zeros(2, 4, 2, 2, 2)
    with pytest.raises(ValueError, match=r"flags of shape \(2, 3\) do not fit an image of shape \(2, 4, 2, 2, 2\)"):
        subsets.presence_input(image, torch.ones(2, 3))
    with pytest.raises(ValueError, match="a case with no sequence present"):
        subsets.presence_input(image, torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0]]))


def test_modality_dropout_reaches_every_subset_and_keeps_the_image():
    """Every one of the 15 subsets is drawn (the full set included), roughly uniformly, and the kept channels are
    the image's own values."""
    dropout = subsets.ModalityDropout(generator=torch.Generator().manual_seed(0))
    flags = dropout.draw(3000)
    counts = {tuple(r.tolist()): 0 for r in flags}
    for r in flags:
        counts[tuple(r.tolist())] += 1
    assert len(counts) == 15 and (True, True, True, True) in counts
    assert min(counts.values()) > 3000 / 15 * 0.7, "uniform over the 15 subsets"
    image = torch.randn(4, 4, 3, 3, 3)
    out = dropout(image)
    present = out[:, 4:, 0, 0, 0].bool()
    assert torch.equal(out[:, :4][present], image[present]) and (out[:, :4][~present] == 0).all()


def test_modality_dropout_only_among_what_a_case_has():
    dropout = subsets.ModalityDropout(generator=torch.Generator().manual_seed(1))
    available = torch.tensor([[True, False, False, True]] * 200)  # a case without T1 and T2
    flags = dropout.draw(200, available)
    assert not flags[:, 1:3].any()
    assert {tuple(r.tolist()) for r in flags} == {(1, 0, 0, 0), (0, 0, 0, 1), (1, 0, 0, 1)}
    named = subsets.ModalityDropout(["flair", "t1c+t2f"], generator=torch.Generator().manual_seed(0))
    assert named.names == ["flair", "t1ce+flair"]


def test_ill_modality_dropout():
    with pytest.raises(ValueError, match="unknown modality 't3'"):
        subsets.ModalityDropout(["t3"])
    with pytest.raises(ValueError, match="at least one subset"):
        subsets.ModalityDropout([])
    with pytest.raises(ValueError, match="case 0 of the batch has none"):
        subsets.ModalityDropout(["flair"]).draw(1, torch.tensor([[True, False, False, False]]))


def test_validation_subset_is_fixed_per_case_and_spread():
    names = [f"/data/Case_{i:03d}/Case_{i:03d}_t1ce.nii.gz" for i in range(60)]
    first = [subsets.case_subset(n) for n in names]
    assert first == [subsets.case_subset(n) for n in names], "the same inputs at every validation"
    assert len({tuple(f) for f in first}) >= 10, "spread over the subsets across cases"
    only_flair = subsets.case_subset(names[0], [False, False, False, True])
    assert only_flair == [False, False, False, True]


def test_subset_batch_for_the_any_student_and_slices_for_the_others():
    image = torch.arange(4.0).reshape(1, 4, 1, 1, 1).expand(2, 4, 2, 2, 2).clone()
    batch = {"image": image, "label": torch.zeros(2, 3, 2, 2, 2)}
    x, _ = settings.student_batch("any", "t2w")(batch)
    assert x.shape == (2, 8, 2, 2, 2) and x[0, :, 0, 0, 0].tolist() == [0, 0, 2, 0, 0, 0, 1, 0]
    x, _ = settings.student_batch("any")(batch)  # each case's fixed validation subset
    assert x.shape == (2, 8, 2, 2, 2) and (x[:, 4:].sum(dim=1) >= 1).all()
    assert isinstance(settings.student_batch("flair"), SelectChannelsBatch)
    assert isinstance(settings.student_batch("any"), SubsetInputBatch)


@pytest.mark.parametrize(
    "modality, channels, in_channels, name",
    [("any", [0, 1, 2, 3], 8, "any"), ("ANY", [0, 1, 2, 3], 8, "any"), ("t2f+t1c", [0, 3], 2, "t1ce+flair")],
)
def test_student_settings_of_any(modality, channels, in_channels, name):
    assert settings.student_channel(modality) == channels
    assert settings.student_in_channels(modality) == in_channels
    assert settings.student_modality_name(modality) == name
    assert (settings.student_input(modality) is not None) == (name == "any")


def test_ill_input_modalities():
    with pytest.raises(InputError, match="--input_modalities: unknown modality 'pd'"):
        settings.input_subset("any", "pd")
    with pytest.raises(InputError, match="a flair student reads flair only; train a --student_modality any student"):
        settings.input_subset("flair", "t1ce")
    assert settings.input_subset("t2f", "flair") == "flair"
    assert settings.input_subset("any", "t2f+t1c") == "t1ce+flair"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("/d/C1/C1_flair.nii.gz", ["flair"]),
        ("/d/C1/C1-t1c.nii.gz", ["t1ce"]),
        ("/d/C1_t1ce+flair.nii.gz", ["t1ce", "flair"]),  # a stacked file, its channels in the name's order
        ("case-t2f+t1c.nrrd", ["flair", "t1ce"]),  # 2023 names, '-' as in that layout
        ("case_t2f+t1c.nrrd", None),  # 2023 names with the 2018-2021 separator: not a BraTS name
        (["/d/C1/C1_t1ce.nii.gz", "/d/C1/C1_t2.nii"], ["t1ce", "t2"]),
        ("/d/scan.nii.gz", None),
        ("/d/C1/C1_seg.nii.gz", None),
    ],
)
def test_sequences_a_file_name_says(value, expected):
    assert named_sequences(value) == expected


def test_presence_transform_places_each_channel_and_keeps_the_history():
    image = MetaTensor(torch.stack([torch.full((2, 2, 2), 5.0), torch.full((2, 2, 2), 7.0)]))
    image.meta["filename_or_obj"] = "/d/C1/C1_flair.nii.gz"
    image.push_applied_operation({"class": "Spacing"})
    out = PresenceInputd("image", modality="any")({"image": image, "modalities": "t2f+t1c"})["image"]
    assert isinstance(out, MetaTensor) and out.shape == (8, 2, 2, 2)
    assert out[:, 0, 0, 0].tolist() == [7.0, 0.0, 0.0, 5.0, 1.0, 0.0, 0.0, 1.0]
    assert len(out.applied_operations) == 1, "Invertd still finds the resampling to undo"
    single = MetaTensor(torch.full((1, 2, 2, 2), 3.0))
    single.meta["filename_or_obj"] = "/d/C1/C1-t2f.nii.gz"
    assert PresenceInputd("image", modality="any")({"image": single})["image"][:, 0, 0, 0].tolist() == [
        0.0,
        0.0,
        0.0,
        3.0,
        0.0,
        0.0,
        0.0,
        1.0,
    ]
    same = PresenceInputd("image", modality="flair")({"image": single})["image"]
    assert same is single, "the identity for a dedicated student"
    assert listed_sequences(["t1c", "t2w+t2f"]) == ["t1ce", "t2", "flair"]


def test_ill_presence_transform():
    unnamed = MetaTensor(torch.ones(1, 2, 2, 2))
    unnamed.meta["filename_or_obj"] = "/d/scan.nii.gz"
    with pytest.raises(ValueError, match=r"image '/d/scan.nii.gz': its sequences cannot be told; name each file"):
        PresenceInputd("image", modality="any")({"image": unnamed})
    with pytest.raises(ValueError, match=r"has 1 channel\(s\) \(shape \(1, 2, 2, 2\)\) for the sequences t1ce\+flair"):
        PresenceInputd("image", modality="any")({"image": unnamed, "modalities": "t1ce+flair"})


def test_fill_absent_puts_each_channel_at_its_sequence():
    from kd_components.transforms import FillAbsentd

    image = MetaTensor(torch.stack([torch.full((2, 2, 2), 3.0), torch.full((2, 2, 2), 4.0)]))
    out = FillAbsentd("image")({"image": image, "present": [False, False, True, True]})
    assert out["image"].shape == (4, 2, 2, 2) and out["image"][:, 0, 0, 0].tolist() == [0.0, 0.0, 3.0, 4.0]
    assert out["present"].tolist() == [False, False, True, True] and isinstance(out["image"], MetaTensor)
    complete = FillAbsentd("image")({"image": torch.ones(4, 2, 2, 2)})
    assert complete["present"].tolist() == [True] * 4
    with pytest.raises(ValueError, match=r"presence flags \[True, False, False, False\] do not fit an image of shape"):
        FillAbsentd("image")({"image": image, "present": [True, False, False, False], "case": "C"})


def test_trainer_draws_only_among_the_sequences_a_case_has():
    """The trainer hands the datalist's presence flags to the any student's modality dropout, and refuses a case
    without a dedicated student's channel."""
    from types import SimpleNamespace

    from kd_components.training.trainer import DistillationTrainer

    image = torch.randn(64, 4, 2, 2, 2)
    present = torch.tensor([[False, True, False, True]] * 64)
    trainer = SimpleNamespace(student_input=subsets.ModalityDropout(), student_channels=[0])
    x = DistillationTrainer._student_view(trainer, image, present)
    assert not x[:, [4, 6]].any() and not x[:, [0, 2]].any(), "T1c and T2 never drawn for these cases"
    assert x[:, 5].any() and x[:, 7].any()
    dedicated = SimpleNamespace(student_input=None, student_channels=[0])
    with pytest.raises(InputError, match=r"a training case lacks one of the student's channels \[0\]"):
        DistillationTrainer._student_view(dedicated, image, present)
    assert DistillationTrainer._student_view(dedicated, image, None).shape == (64, 1, 2, 2, 2)


def test_ill_allow_absent_sequences_for_a_dedicated_student():
    with pytest.raises(InputError, match="--allow_absent_sequences true with --student_modality flair: only"):
        settings.check_absent_sequences(True, "flair")
    assert settings.check_absent_sequences("true", "any") is True
    assert settings.check_absent_sequences(False, "flair") is False


def test_presence_transform_refuses_a_list_its_name_contradicts():
    stacked = MetaTensor(torch.ones(2, 2, 2, 2))
    stacked.meta["filename_or_obj"] = "/d/C_t1ce+flair.nii.gz"
    with pytest.raises(ValueError, match=r"listed as flair\+t1ce but its name says t1ce\+flair"):
        PresenceInputd("image", modality="any")({"image": stacked, "modalities": "flair+t1ce"})
    same = PresenceInputd("image", modality="any")({"image": stacked, "modalities": "t1ce+flair"})["image"]
    assert same[4:, 0, 0, 0].tolist() == [1.0, 0.0, 0.0, 1.0]


def test_ill_any_student_evaluated_without_a_subset():
    with pytest.raises(InputError, match="the any student is scored from one subset of the sequences: pass"):
        settings.evaluation_subset("any", None)
    assert settings.evaluation_subset("any", "t2f") == "flair" and settings.evaluation_subset("t1ce", None) is None


def test_ill_distilling_cases_with_absent_sequences_from_a_teacher_that_never_saw_them(tmp_path):
    from types import SimpleNamespace

    from kd_components.deploy.weights import write_model_settings

    ckpt = tmp_path / "teacher" / "model.pt"
    write_model_settings(ckpt.parent, [32, 32, 32], 4)
    data = [{"case": "A", "present": [True, True, True, True]}, {"case": "B", "present": [True, True, False, True]}]
    loss = SimpleNamespace(needs_teacher=True)
    with pytest.raises(InputError, match=r"1 training case\(s\) lack sequences \(e.g. 'B' lacks T2\) but the teacher"):
        settings.check_absent_teacher(data, ckpt, loss)
    settings.check_absent_teacher(data, ckpt, SimpleNamespace(needs_teacher=False))  # the baseline: no teacher
    settings.check_absent_teacher(data[:1], ckpt, loss)  # complete cases only
    write_model_settings(ckpt.parent, [32, 32, 32], 4, absent_sequences=True)
    settings.check_absent_teacher(data, ckpt, loss)  # a teacher trained with absent sequences
