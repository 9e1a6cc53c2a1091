"""Cases used without their labels (the datalist's unlabelled split): loader, transform, loss, trainer, bundle."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import REPO, run_workflow
from monai.data import MetaTensor
from monai.losses import DiceLoss

from kd_components.data import load_training_items
from kd_components.errors import InputError
from kd_components.losses import DistillationLoss, SigmoidKLDivLoss
from kd_components.training.settings import check_distillation_settings
from kd_components.transforms import WithheldLabeld

STUDENT = REPO / "bundles" / "student_kd" / "configs"


def _split(tiny_phantom, tmp_path, n_labelled=2) -> tuple:
    content = json.loads((tiny_phantom / "datalist.json").read_text())
    training = content["training"]
    content["training"], content["training_unlabelled"] = training[:n_labelled], training[n_labelled:]
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps(content))
    return path, content


# ------------------------------------------------------------------------------------------------ datalist
def test_unlabelled_items_lose_their_label_and_are_marked(tiny_phantom, tmp_path):
    path, content = _split(tiny_phantom, tmp_path)
    items = load_training_items(path, tiny_phantom, "training_unlabelled")
    assert [i["labelled"] for i in items] == [True, True, False]
    assert "label" in items[0] and "label" not in items[2], "the withheld label never reaches the loader"
    assert items[2]["case"] == content["training_unlabelled"][0]["case"]
    plain = load_training_items(path, tiny_phantom, None)
    assert len(plain) == 2 and all("labelled" not in i for i in plain), "no unlabelled split: items as before"


def test_ill_case_in_both_training_and_unlabelled(tiny_phantom, tmp_path):
    path, content = _split(tiny_phantom, tmp_path)
    content["training_unlabelled"].append(dict(content["training"][0], case="renamed"))  # same files, other name
    path.write_text(json.dumps(content))
    with pytest.raises(InputError, match="in 'training' and 'training_unlabelled'"):
        load_training_items(path, tiny_phantom, "training_unlabelled")


# ------------------------------------------------------------------------------------------------ transform
def test_withheld_label_becomes_background_on_the_image_grid():
    image = MetaTensor(torch.rand(4, 5, 6, 7), affine=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
    out = WithheldLabeld("label")({"image": image, "labelled": False, "case": "c"})
    assert out["label"].shape == (1, 5, 6, 7) and int(out["label"].sum()) == 0
    assert torch.equal(out["label"].affine, image.affine)
    assert out["labelled"] is False
    label = torch.ones(1, 5, 6, 7)
    kept = WithheldLabeld("label")({"image": image, "label": label})
    assert kept["labelled"] is True and kept["label"] is label


def test_ill_label_missing_without_the_mark():
    with pytest.raises(ValueError, match="case 'c' has no 'label' and is not marked 'labelled: false'"):
        WithheldLabeld("label")({"image": torch.zeros(4, 2, 2, 2), "case": "c"})


# ------------------------------------------------------------------------------------------------ loss
def _loss(kd_weight=1.0):
    return DistillationLoss(
        DiceLoss(sigmoid=True, squared_pred=True), SigmoidKLDivLoss(region="all", balanced=False), kd_weight=kd_weight
    )


def test_supervised_term_skips_withheld_items_teacher_term_uses_all():
    torch.manual_seed(0)
    pred, teacher = torch.randn(3, 3, 4, 4, 4), torch.randn(3, 3, 4, 4, 4)
    target = (torch.rand(3, 3, 4, 4, 4) > 0.5).float()
    loss = _loss()
    terms = loss(pred, target, teacher, labelled=torch.tensor([True, False, True]))
    expected_seg = DiceLoss(sigmoid=True, squared_pred=True)(pred[[0, 2]], target[[0, 2]])
    assert terms["loss_seg"] == pytest.approx(float(expected_seg), rel=1e-6)
    assert terms["loss_kd"] == pytest.approx(float(loss.kd_loss(pred, teacher)), rel=1e-6), "KD on every item"
    none = loss(pred, target, teacher, labelled=torch.tensor([False, False, False]))
    assert float(none["loss_seg"]) == 0 and none["loss"] == pytest.approx(float(none["loss_kd"]))
    everything = loss(pred, target, teacher, labelled=torch.tensor([True, True, True]))
    assert everything["loss_seg"] == pytest.approx(float(loss(pred, target, teacher)["loss_seg"]))


def test_pseudo_labels_supervise_withheld_items_with_the_teachers_thresholded_map():
    # item 0 labelled, item 1 withheld: its target becomes teacher logit > 0 (sigmoid > 0.5), per region
    teacher = torch.tensor([-3.0, 2.0, -0.5, 0.5]).reshape(1, 1, 4, 1, 1).repeat(2, 3, 1, 1, 1)
    target = torch.zeros(2, 3, 4, 1, 1)
    target[0, :, 0] = 1  # the labelled item's own label (not the teacher's map)
    pred = torch.randn(2, 3, 4, 1, 1, generator=torch.Generator().manual_seed(1))
    loss = DistillationLoss(
        DiceLoss(sigmoid=True, squared_pred=True), SigmoidKLDivLoss(region="all"), kd_weight=1.0, pseudo_labels=True
    )
    terms = loss(pred, target, teacher, labelled=torch.tensor([True, False]))
    hand = target.clone()
    hand[1, :, 1] = hand[1, :, 3] = 1  # voxels 1 and 3 have teacher logits 2.0 and 0.5 > 0
    expected = DiceLoss(sigmoid=True, squared_pred=True)(pred, hand)
    assert terms["loss_seg"] == pytest.approx(float(expected), rel=1e-6)
    skipped = DiceLoss(sigmoid=True, squared_pred=True)(pred[:1], target[:1])
    assert float(terms["loss_seg"]) != pytest.approx(float(skipped)), "the withheld item is supervised, not skipped"
    assert terms["loss_kd"] == pytest.approx(float(loss.kd_loss(pred, teacher)), rel=1e-6), "KD on every item"
    # a fully labelled batch is untouched by the option
    full = loss(pred, target, teacher, labelled=torch.tensor([True, True]))
    assert full["loss_seg"] == pytest.approx(float(DiceLoss(sigmoid=True, squared_pred=True)(pred, target)), rel=1e-6)


def test_pseudo_labels_alone_run_the_teacher_as_labeller():
    """Every teacher term off, pseudo-labels on: the teacher still runs (it labels the withheld items), no KD is
    computed, and the withheld item is supervised with its map; the settings accept it, without pseudo-labels not."""
    teacher = torch.tensor([-3.0, 2.0, -0.5, 0.5]).reshape(1, 1, 4, 1, 1).repeat(2, 3, 1, 1, 1)
    target = torch.zeros(2, 3, 4, 1, 1)
    target[0, :, 0] = 1
    pred = torch.randn(2, 3, 4, 1, 1, generator=torch.Generator().manual_seed(1))
    loss = DistillationLoss(DiceLoss(sigmoid=True, squared_pred=True), pseudo_labels=True)
    assert loss.needs_teacher and not DistillationLoss(DiceLoss(sigmoid=True)).needs_teacher
    terms = loss(pred, target, teacher, labelled=torch.tensor([True, False]))
    hand = target.clone()
    hand[1, :, 1] = hand[1, :, 3] = 1
    assert terms["loss_seg"] == pytest.approx(float(DiceLoss(sigmoid=True, squared_pred=True)(pred, hand)), rel=1e-6)
    assert float(terms["loss_kd"]) == 0 and float(terms["loss"]) == pytest.approx(float(terms["loss_seg"]))
    settings = {"kd_weight": 0, "feature_weight": 0, "unlabelled_split": "training_unlabelled"}
    common = {"seg_weight": 1, "kd_temperature": 2, "kd_region": "all"}
    check_distillation_settings(**common, unlabelled_pseudo_labels=True, **settings)
    with pytest.raises(InputError, match="or label them with the teacher's map"):
        check_distillation_settings(**common, **settings)


def test_ill_pseudo_labels_arguments():
    with pytest.raises(ValueError, match="pseudo_labels"):
        DistillationLoss(DiceLoss(sigmoid=True), SigmoidKLDivLoss(region="all"), kd_weight=1.0, pseudo_labels="maybe")
    loss = DistillationLoss(DiceLoss(sigmoid=True), SigmoidKLDivLoss(region="all"), kd_weight=1.0, pseudo_labels=True)
    pred = torch.zeros(2, 3, 4, 4, 4)
    with pytest.raises(ValueError, match=r"teacher_logits \(2, 1, 4, 4, 4\) and target \(2, 3, 4, 4, 4\)"):
        loss(pred, pred, torch.zeros(2, 1, 4, 4, 4), labelled=torch.tensor([True, False]))


def test_ill_withheld_labels_without_teacher_term():
    pred = torch.zeros(2, 3, 4, 4, 4)
    with pytest.raises(ValueError, match="withheld labels need a teacher term"):
        _loss(kd_weight=0.0)(pred, pred, labelled=torch.tensor([True, False]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kd_weight": 0, "feature_weight": 0}, "--unlabelled_split 'training_unlabelled': cases without labels"),
        ({"kd_weight": 0.25, "feature_weight": 0, "cached_logits_key": "t"}, "with cached teacher logits"),
    ],
)
def test_ill_unlabelled_split_settings(kwargs, message):
    with pytest.raises(InputError, match=message):
        check_distillation_settings(
            seg_weight=1, kd_temperature=2, kd_region="all", unlabelled_split="training_unlabelled", **kwargs
        )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"unlabelled_split": None}, "--unlabelled_pseudo_labels true .* but --unlabelled_split is null"),
        ({"unlabelled_pseudo_labels": "often"}, "--unlabelled_pseudo_labels is 'often': give true or false"),
    ],
)
def test_ill_pseudo_label_settings(kwargs, message):
    settings = {"kd_weight": 0.25, "feature_weight": 0.1, "unlabelled_split": "training_unlabelled"}
    settings["unlabelled_pseudo_labels"] = True
    settings.update(kwargs)
    with pytest.raises(InputError, match=message):
        check_distillation_settings(seg_weight=1, kd_temperature=2, kd_region="all", **settings)
    settings.update(unlabelled_pseudo_labels=False)
    check_distillation_settings(seg_weight=1, kd_temperature=2, kd_region="all", **settings)  # off: accepted


# ------------------------------------------------------------------------------------------------ bundle
@pytest.mark.slow
@pytest.mark.parametrize("pseudo_labels, kd_weight", [(False, 0.25), (True, 0.25), (True, 0.0)])
def test_student_learns_from_unlabelled_cases_through_the_teacher(
    tiny_phantom, teacher_ckpt, tmp_path, pseudo_labels, kd_weight
):
    """Through the teacher's outputs, its maps as labels beside them, or its maps alone (every teacher term off:
    the teacher runs as the labeller only)."""
    path, _ = _split(tiny_phantom, tmp_path)
    wf = run_workflow(
        [STUDENT / "train.json"],
        "training",
        meta_file=STUDENT / "metadata.json",
        bundle_root=str(tmp_path / "student"),
        dataset_dir=str(tiny_phantom),
        data_list_file_path=str(path),
        unlabelled_split="training_unlabelled",
        unlabelled_pseudo_labels=pseudo_labels,
        teacher_ckpt=str(teacher_ckpt),
        kd_weight=kd_weight,
        feature_weight=0.1 if kd_weight else 0.0,
        epochs=1,
    )
    state = wf.parser.get_parsed_content("train#trainer").state
    assert state.iteration == 3, "2 labelled + 1 unlabelled item per epoch"
    assert (state.metrics["train_loss_kd"] > 0) is (kd_weight > 0)
    loss = wf.parser.get_parsed_content("loss")
    assert loss.pseudo_labels is pseudo_labels and loss.needs_teacher
    assert wf.parser.get_parsed_content("train#trainer").teacher is not None, "the labeller ran"
