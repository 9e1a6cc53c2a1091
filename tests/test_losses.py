from __future__ import annotations

import pytest
import torch
from monai.losses import DiceLoss

from kd_components.losses import (
    DistillationLoss,
    FeatureDistillationLoss,
    RegionClassKLDivLoss,
    SigmoidKLDivLoss,
    region_class_probabilities,
    tumour_neighbourhood,
)
from kd_components.networks import FeatureAdapter, FeatureHook


def _vox(values, channels=1):
    """Logits of shape (1, C, N, 1, 1) from a list per channel."""
    return torch.tensor(values, dtype=torch.float32).reshape(1, channels, -1, 1, 1)


# hand-computed: p = sigmoid(t / T), q = sigmoid(s / T), KL = p ln(p/q) + (1-p) ln((1-p)/(1-q)), times T^2
# teacher 2, student 0, T 1: p = 0.880797, q = 0.5 -> 0.880797 ln 1.761594 + 0.119203 ln 0.238406 = 0.327813
# teacher 2, student 0, T 2: p = sigmoid(1) = 0.731059 -> KL 0.110944, x 4 = 0.443776
# teacher -1, student 1, T 2: p = sigmoid(-0.5), q = sigmoid(0.5) -> KL 0.122459, x 4 = 0.489837
SIGMOID_CASES = [(2.0, 0.0, 1.0, 0.327813), (2.0, 0.0, 2.0, 0.443776), (-1.0, 1.0, 2.0, 0.489837)]


@pytest.mark.parametrize("t, s, temperature, expected", SIGMOID_CASES)
def test_sigmoid_kl_hand_computed(t, s, temperature, expected):
    loss = SigmoidKLDivLoss(temperature, region="all", balanced=False)
    assert loss(_vox([s]), _vox([t])).item() == pytest.approx(expected, abs=1e-5)


def test_t_squared_scaling():
    """The result is T^2 times the mean KL of the softened outputs."""
    s, t = torch.randn(2, 3, 4, 4, 4), torch.randn(2, 3, 4, 4, 4)
    for temperature in (1.0, 2.0, 4.0):
        p, q = torch.sigmoid(t / temperature), torch.sigmoid(s / temperature)
        kl = (p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()).mean()
        got = SigmoidKLDivLoss(temperature, region="all", balanced=False)(s, t)
        assert got.item() == pytest.approx(temperature**2 * kl.item(), rel=1e-4)


@pytest.mark.parametrize("region, balanced", [("all", False), ("all", True), ("tumour", True), ("tumour", False)])
@pytest.mark.parametrize("cls", [SigmoidKLDivLoss, RegionClassKLDivLoss])
def test_zero_when_student_equals_teacher(cls, region, balanced):
    x = torch.randn(2, 3, 8, 8, 8) * 3
    target = (torch.rand(2, 3, 8, 8, 8) > 0.5).float()
    assert cls(2.0, region=region, balanced=balanced)(x.clone(), x, target).item() == pytest.approx(0.0, abs=1e-6)


def test_gradients_reach_student_not_teacher():
    s = torch.randn(1, 3, 6, 6, 6, requires_grad=True)
    t = torch.randn(1, 3, 6, 6, 6, requires_grad=True)
    SigmoidKLDivLoss(2.0)(s, t, (torch.rand(1, 3, 6, 6, 6) > 0.7).float()).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_tumour_region_ignores_far_voxels():
    target = torch.zeros(1, 3, 16, 1, 1)
    target[:, :, 2] = 1  # tumour at voxel 2
    t = torch.full((1, 3, 16, 1, 1), -5.0)
    s = torch.zeros(1, 3, 16, 1, 1)
    loss = SigmoidKLDivLoss(2.0, region="tumour", margin=1, balanced=False)
    before = loss(s, t, target)
    s2 = s.clone()
    s2[:, :, 10:] = 7.0  # far from the tumour (beyond the 1-voxel margin)
    assert loss(s2, t, target).item() == pytest.approx(before.item())
    mask = tumour_neighbourhood(target, t, margin=1)
    assert mask[0, 0, :, 0, 0].nonzero().flatten().tolist() == [1, 2, 3]


def test_balanced_weighs_positives_like_negatives():
    # 1 channel, 4 voxels: teacher positive on one voxel; per-voxel KL k0..k3 -> (k0 + mean(k1..k3)) / 2
    t, s = _vox([3.0, -3.0, -3.0, -3.0]), _vox([0.0, 0.0, -3.0, -3.0])
    per_voxel = [
        SigmoidKLDivLoss(1.0, region="all", balanced=False)(s[:, :, i : i + 1], t[:, :, i : i + 1]).item()
        for i in range(4)
    ]
    got = SigmoidKLDivLoss(1.0, region="all", balanced=True)(s, t).item()
    assert got == pytest.approx(0.5 * (per_voxel[0] + sum(per_voxel[1:]) / 3), rel=1e-5)


@pytest.mark.parametrize("distance, expected", [("l2", 2.5), ("l1", 1.5), ("cosine", 1.0)])
def test_feature_distances_hand_computed(distance, expected):
    # student (1, 2) and teacher (0, 0) on one voxel: squared errors 1 and 4 -> 2.5; abs 1 and 2 -> 1.5;
    # cosine similarity with a zero vector is 0 -> 1 - 0 = 1
    s = torch.tensor([1.0, 2.0]).reshape(1, 2, 1, 1, 1)
    t = torch.zeros(1, 2, 1, 1, 1)
    assert FeatureDistillationLoss(distance)(s, t).item() == pytest.approx(expected)


def test_feature_cosine_zero_for_equal_direction():
    f = torch.randn(2, 8, 3, 3, 3)
    assert FeatureDistillationLoss("cosine")(f * 3.0, f).item() == pytest.approx(0.0, abs=1e-5)


def test_adapter_bridges_widths_and_trains():
    adapter = FeatureAdapter(8, 16)
    assert adapter.trainable and adapter.conv.weight.shape[:2] == (16, 8)
    s = torch.randn(1, 8, 2, 2, 2, requires_grad=True)
    FeatureDistillationLoss("l2")(adapter(s), torch.randn(1, 16, 2, 2, 2)).backward()
    assert adapter.conv.weight.grad is not None and s.grad is not None
    same = FeatureAdapter(16, 16)
    x = torch.randn(1, 16, 2, 2, 2)
    assert not same.trainable and not list(same.parameters()) and same(x) is x


def test_distillation_loss_total_and_terms():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 4, 1), torch.nn.Conv3d(4, 3, 1))
    seg = DiceLoss(sigmoid=True)
    kd = SigmoidKLDivLoss(2.0, region="all", balanced=False)
    feat = FeatureDistillationLoss("l2")
    loss = DistillationLoss(seg, kd, feat, seg_weight=1.0, kd_weight=0.5, feature_weight=0.1)
    x, label = torch.randn(1, 1, 4, 4, 4), (torch.rand(1, 3, 4, 4, 4) > 0.5).float()
    t_logits, t_feat = torch.randn(1, 3, 4, 4, 4), torch.randn(1, 4, 4, 4, 4)
    hook = FeatureHook(net, "0")
    pred = net(x)
    terms = loss(pred, label, t_logits, t_feat, hook.pop())
    expected = seg(pred, label) + 0.5 * kd(pred, t_logits) + 0.1 * feat(net[0](x), t_feat)
    assert set(terms) == {"loss_seg", "loss_kd", "loss_feat", "loss"}
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert terms["loss_kd"].item() == pytest.approx(kd(pred, t_logits).item(), rel=1e-6)
    assert all(not terms[k].requires_grad for k in ("loss_seg", "loss_kd", "loss_feat")), "terms are for logging"
    terms["loss"].backward()
    assert all(p.grad is not None for p in net.parameters())
    # stateless: the same call gives the same terms, and a call without teacher outputs is refused
    again = loss(pred.detach(), label, t_logits, t_feat, net[0](x).detach())
    assert again["loss"].item() == pytest.approx(terms["loss"].item(), rel=1e-6)
    with pytest.raises(ValueError, match="no teacher_logits were given"):
        loss(net(x), label)


def test_distillation_loss_without_teacher_terms_is_the_seg_loss():
    seg = DiceLoss(sigmoid=True)
    loss = DistillationLoss(seg)
    pred, label = torch.randn(1, 3, 4, 4, 4), (torch.rand(1, 3, 4, 4, 4) > 0.5).float()
    assert not loss.needs_teacher
    terms = loss(pred, label)
    assert terms["loss"].item() == pytest.approx(seg(pred, label).item())
    assert terms["loss_kd"].item() == 0.0 and terms["loss_feat"].item() == 0.0


def test_feature_hook_names_and_ddp_prefix():
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 1))
    wrapped = torch.nn.Module()
    wrapped.module = net  # what DistributedDataParallel looks like from outside
    hook = FeatureHook(wrapped, "0")
    wrapped.module(torch.randn(1, 1, 2, 2, 2))
    assert hook.pop().shape == (1, 2, 2, 2, 2) and hook.pop() is None


# ------------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_ill_temperature(temperature):
    with pytest.raises(ValueError, match="temperature must be a number > 0"):
        SigmoidKLDivLoss(temperature)
    with pytest.raises(ValueError, match="temperature must be a number > 0"):
        RegionClassKLDivLoss(temperature)


@pytest.mark.parametrize("weights", [{"seg_weight": -1.0}, {"kd_weight": -0.1}, {"feature_weight": -2}])
def test_ill_negative_weights(weights):
    with pytest.raises(ValueError, match="must be a number >= 0"):
        DistillationLoss(DiceLoss(sigmoid=True), SigmoidKLDivLoss(), FeatureDistillationLoss(), **weights)


def test_ill_arguments():
    with pytest.raises(ValueError, match="Unsupported option 'brain'|'brain' is not a valid value"):
        SigmoidKLDivLoss(region="brain")
    with pytest.raises(ValueError, match="margin must be >= 0"):
        SigmoidKLDivLoss(margin=-1)
    with pytest.raises(ValueError, match="'kl' is not a valid value"):
        FeatureDistillationLoss("kl")
    with pytest.raises(ValueError, match="kd_weight > 0 needs a kd_loss"):
        DistillationLoss(DiceLoss(), kd_weight=1.0)
    with pytest.raises(ValueError, match="feature_weight > 0 needs a feature_loss"):
        DistillationLoss(DiceLoss(), feature_weight=1.0)
    with pytest.raises(ValueError, match="feature channels must be >= 1"):
        FeatureAdapter(0, 16)
    with pytest.raises(ValueError, match=r"expects 8 student feature channels, got shape \(1, 4, 2, 2, 2\)"):
        FeatureAdapter(8, 16)(torch.zeros(1, 4, 2, 2, 2))
    with pytest.raises(ValueError, match=r"feature layer 'nope' is not a module of Sequential"):
        FeatureHook(torch.nn.Sequential(torch.nn.Conv3d(1, 1, 1)), "nope")


def test_ill_shapes_print_both():
    with pytest.raises(
        ValueError, match=r"student shape \(1, 3, 4, 4, 4\) differs from teacher shape \(1, 2, 4, 4, 4\)"
    ):
        SigmoidKLDivLoss()(torch.zeros(1, 3, 4, 4, 4), torch.zeros(1, 2, 4, 4, 4))
    with pytest.raises(
        ValueError,
        match=r"student features \(1, 8, 2, 2, 2\) do not match teacher features "
        r"\(1, 16, 2, 2, 2\)",
    ):
        FeatureDistillationLoss("l2")(torch.zeros(1, 8, 2, 2, 2), torch.zeros(1, 16, 2, 2, 2))


@pytest.mark.parametrize("margin,channel", [(1, None), (2, None), (4, None), (2, 1)])
def test_tumour_neighbourhood_separable_dilation_equals_cube(margin, channel):
    torch.manual_seed(margin)
    teacher = torch.randn(2, 3, 20, 17, 13) - 2.0
    target = (torch.rand(2, 3, 20, 17, 13) > 0.98).float()
    c = slice(None) if channel is None else slice(channel, channel + 1)
    fg = (teacher[:, c] > 0).any(1, keepdim=True) | (target[:, c] > 0.5).any(1, keepdim=True)
    cube = torch.nn.functional.max_pool3d(fg.float(), 2 * margin + 1, stride=1, padding=margin) > 0
    assert torch.equal(tumour_neighbourhood(target, teacher, margin=margin, foreground_channel=channel), cube)


def test_tumour_neighbourhood_of_nested_regions_is_the_whole_tumour():
    """Generic default (the union of the channels) = BraTS's WT channel when the regions nest (ET in TC in WT)."""
    label = torch.zeros(1, 3, 9, 1, 1)
    label[:, 1, 2:7] = 1  # WT: voxels 2..6
    label[:, 0, 3:6] = 1  # TC inside it
    label[:, 2, 4] = 1  # ET inside TC
    teacher = torch.full_like(label, -3.0)
    union = tumour_neighbourhood(label, teacher, margin=1)
    assert union[0, 0, :, 0, 0].nonzero().flatten().tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert torch.equal(union, tumour_neighbourhood(label, teacher, margin=1, foreground_channel=1))
    assert tumour_neighbourhood(label, teacher, margin=0, foreground_channel=2).sum() == 1


def test_ill_foreground_channel():
    with pytest.raises(ValueError, match="foreground_channel must be a channel index >= 0 or None, got -1"):
        SigmoidKLDivLoss(foreground_channel=-1)
    loss = SigmoidKLDivLoss(region="tumour", foreground_channel=3)
    with pytest.raises(ValueError, match=r"foreground_channel 3 is not a channel of outputs of shape \(1, 3, 2"):
        loss(torch.zeros(1, 3, 2, 2, 2), torch.zeros(1, 3, 2, 2, 2), torch.zeros(1, 3, 2, 2, 2))


@pytest.mark.parametrize(
    "given,expected", [("false", False), ("False", False), ("0", False), ("true", True), (True, True)]
)
def test_balanced_flag_from_the_command_line(given, expected):
    # `--kd_balanced false` reaches the config as the string 'false', which bool() would call True
    assert SigmoidKLDivLoss(balanced=given).balanced is expected


def test_ill_balanced_flag():
    # the library raises ValueError; the bundle's settings check turns it into the one-line InputError
    with pytest.raises(ValueError, match="balanced is 'maybe': give true or false."):
        SigmoidKLDivLoss(balanced="maybe")


# RegionClassKLDivLoss, T 1. Teacher logits TC 0, WT 0, ET 0: w = t = e = 0.5 -> classes (bg, ED, NCR, ET) =
# (0.5, 0.25, 0.125, 0.125). Student TC 0, WT 2, ET 0: w = sigmoid(2) = 0.880797 -> (0.119203, 0.440399, 0.220199,
# 0.220199). KL = 0.5 ln(0.5 / 0.119203) + 0.25 ln(0.25 / 0.440399) + 2 x 0.125 ln(0.125 / 0.220199)
# = 0.716890 - 0.141551 - 0.141551 = 0.433788
def test_region_class_kl_hand_computed():
    loss = RegionClassKLDivLoss(1.0, region="all", balanced=False)
    teacher = torch.zeros(1, 3, 1, 1, 1)
    student = torch.tensor([0.0, 2.0, 0.0]).reshape(1, 3, 1, 1, 1)
    assert loss(student, teacher).item() == pytest.approx(0.433788, abs=1e-5)


def test_region_class_probabilities_follow_the_label_map():
    """Saturated region logits of a BraTS label map give its exclusive classes (bg 0, ED 2 -> 1, NCR 1 -> 2, ET)."""
    label = torch.tensor([0, 2, 1, 4]).reshape(1, 1, 4, 1, 1)
    regions = torch.cat([(label == 1) | (label == 4), label > 0, label == 4], dim=1).float()  # TC, WT, ET
    probs = region_class_probabilities((regions * 2 - 1) * 20)
    assert probs.sum(1).allclose(torch.ones(1, 4, 1, 1))
    assert probs.argmax(1).flatten().tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("region, balanced", [("all", False), ("tumour", True)])
def test_region_class_kl_zero_for_equal_outputs_and_gradient_to_student(region, balanced):
    t = torch.randn(2, 3, 6, 6, 6) * 3
    target = (torch.rand(2, 3, 6, 6, 6) > 0.5).float()
    loss = RegionClassKLDivLoss(2.0, region=region, balanced=balanced)
    assert loss(t.clone(), t, target).item() == pytest.approx(0.0, abs=1e-6)
    s = torch.randn(2, 3, 6, 6, 6, requires_grad=True)
    loss(s, t, target).backward()
    assert s.grad.abs().sum() > 0


def test_channel_weights_scale_each_region():
    """[1, 0, 1]: the mean over channels of (KL_TC, 0, KL_ET); [1, 1, 1] is the unweighted loss."""
    s, t = torch.randn(1, 3, 4, 4, 4), torch.randn(1, 3, 4, 4, 4)
    per_channel = [
        SigmoidKLDivLoss(1.0, region="all", balanced=False)(s[:, c : c + 1], t[:, c : c + 1]) for c in range(3)
    ]
    weighted = SigmoidKLDivLoss(1.0, region="all", balanced=False, channel_weights=[1, 0, 1])(s, t)
    assert weighted.item() == pytest.approx((per_channel[0] + per_channel[2]).item() / 3, rel=1e-5)
    plain = SigmoidKLDivLoss(1.0, region="all", balanced=False)(s, t)
    ones = SigmoidKLDivLoss(1.0, region="all", balanced=False, channel_weights=[1, 1, 1])(s, t)
    assert ones.item() == pytest.approx(plain.item(), rel=1e-6)


def test_ill_channel_weights():
    with pytest.raises(ValueError, match="one weight >= 0 per channel"):
        SigmoidKLDivLoss(channel_weights=[1, -1, 1])
    with pytest.raises(ValueError, match="not all zero"):
        SigmoidKLDivLoss(channel_weights=[0, 0, 0])
    with pytest.raises(ValueError, match=r"2 channel_weights for outputs of shape \(1, 3, 2, 2, 2\)"):
        SigmoidKLDivLoss(channel_weights=[1, 1])(torch.zeros(1, 3, 2, 2, 2), torch.zeros(1, 3, 2, 2, 2))
    with pytest.raises(ValueError, match="takes no channel_weights"):
        RegionClassKLDivLoss(channel_weights=[1, 1, 1])
    with pytest.raises(ValueError, match=r"needs TC, WT and ET outputs \(3 channels\), got \(1, 2, 2, 2, 2\)"):
        RegionClassKLDivLoss()(torch.zeros(1, 2, 2, 2, 2), torch.zeros(1, 2, 2, 2, 2))


def test_defaults_are_the_bundles_recipe():
    """The loss classes' defaults are what the student bundle trains with (one recipe, stated once)."""
    import json
    from pathlib import Path

    config = json.loads((Path(__file__).parents[1] / "bundles" / "student_kd" / "configs" / "train.json").read_text())
    kd = SigmoidKLDivLoss()
    assert (kd.temperature, kd.region, kd.margin, kd.balanced) == (
        config["kd_temperature"],
        config["kd_region"],
        config["kd_margin"],
        config["kd_balanced"],
    )
    assert FeatureDistillationLoss().distance == config["feature_distance"]


# agreement, T 1, one channel, two voxels: teacher (2, -2), label (1, 1), student (0, 0). The teacher agrees with the
# label at voxel 0 only (2 > 0, label 1; -2 < 0, label 1). KL(voxel 0) = 0.327813 (SIGMOID_CASES); KL(voxel 1):
# p = sigmoid(-2) = 0.119203, q = 0.5 -> the same 0.327813 by symmetry, so the student is moved to (1, 0):
# voxel 0: p = 0.880797, q = sigmoid(1) = 0.731059 -> 0.880797 ln(1.204823) + 0.119203 ln(0.443230) = 0.067131
# voxel 1: p = 0.119203, q = 0.5 -> 0.327813. No agreement: (0.067131 + 0.327813) / 2 = 0.197472; agreement: 0.067131.
def test_agreement_distils_only_where_the_teacher_is_right():
    teacher, student, label = _vox([2.0, -2.0]), _vox([1.0, 0.0]), _vox([1.0, 1.0])
    plain = SigmoidKLDivLoss(1.0, region="all", balanced=False)
    agree = SigmoidKLDivLoss(1.0, region="all", balanced=False, agreement=True)
    assert plain(student, teacher, label).item() == pytest.approx(0.197472, abs=1e-5)
    assert agree(student, teacher, label).item() == pytest.approx(0.067131, abs=1e-5)
    # a withheld label: the teacher is all there is, every voxel is distilled
    assert agree(student, teacher, label, torch.tensor([False])).item() == pytest.approx(0.197472, abs=1e-5)
    # through DistillationLoss: the labelled flags reach the KD term
    total = DistillationLoss(DiceLoss(sigmoid=True), agree, kd_weight=1.0)
    out = total(torch.cat([student] * 2), torch.cat([label] * 2), torch.cat([teacher] * 2), labelled=[True, False])
    assert out["loss_kd"].item() == pytest.approx((0.067131 + 2 * 0.197472) / 3, abs=1e-5)


def test_agreement_per_region_and_per_class():
    """Per region (sigmoid): a region the teacher gets wrong is masked in that channel only. Per class: a voxel whose
    teacher class is not the label's (oedema called necrosis) is masked in the one KL over classes."""
    teacher = torch.tensor([[3.0, 3.0, -3.0], [3.0, 3.0, -3.0]]).T.reshape(1, 3, 2, 1, 1)  # TC, WT, no ET
    label = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]]).T.reshape(1, 3, 2, 1, 1)  # voxel 1: oedema
    student = torch.zeros(1, 3, 2, 1, 1)
    mask = SigmoidKLDivLoss(1.0, region="all", balanced=False, agreement=True)
    kl = SigmoidKLDivLoss(1.0, region="all", balanced=False)
    per_voxel = [kl(student[..., i : i + 1, :, :], teacher[..., i : i + 1, :, :]).item() * 3 for i in range(2)]
    # 5 of 6 (voxel, region) pairs agree; voxel 1's TC does not; KL of each channel is the same at both voxels
    tc = kl(student[:, :1, :1], teacher[:, :1, :1]).item()
    assert mask(student, teacher, label).item() == pytest.approx((sum(per_voxel) - tc) / 5, abs=1e-5)
    cls_plain = RegionClassKLDivLoss(1.0, region="all", balanced=False)
    cls_agree = RegionClassKLDivLoss(1.0, region="all", balanced=False, agreement=True)
    first = cls_plain(student[..., :1, :, :], teacher[..., :1, :, :]).item()
    assert cls_agree(student, teacher, label).item() == pytest.approx(first, abs=1e-5)  # voxel 1 masked


def test_ill_agreement_without_labels():
    with pytest.raises(ValueError, match=r"agreement=True\) needs the label regions"):
        SigmoidKLDivLoss(agreement=True)(torch.zeros(1, 3, 2, 2, 2), torch.zeros(1, 3, 2, 2, 2))
    with pytest.raises(ValueError, match="agreement"):
        SigmoidKLDivLoss(agreement="sometimes")


def test_two_dimensional_outputs_as_monai_losses_take_them():
    """The output terms, the tumour neighbourhood and the feature adapter take 2-D maps (BCHW) as they take 3-D:
    a 2-D slice gives the value of the same slice as a one-voxel-deep volume."""
    from kd_components.losses import FeatureDistillationLoss, SigmoidKLDivLoss, tumour_neighbourhood
    from kd_components.networks import FeatureAdapter

    torch.manual_seed(0)
    s, t = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    target = (torch.rand(2, 3, 8, 8) > 0.7).float()
    for kw in ({}, {"region": "tumour", "balanced": True}):
        loss = SigmoidKLDivLoss(**kw)
        assert torch.allclose(loss(s, t, target), loss(s[..., None], t[..., None], target[..., None]), atol=1e-6)
    mask = torch.zeros(1, 3, 9, 9)
    mask[0, 1, 4, 4] = 5.0
    hood = tumour_neighbourhood(None, mask, margin=1)
    assert hood.shape == (1, 1, 9, 9) and hood.sum() == 9, "a 3x3 square around the one tumour voxel"
    adapter = FeatureAdapter(4, 8, spatial_dims=2)
    assert adapter(torch.randn(1, 4, 5, 5)).shape == (1, 8, 5, 5)
    assert FeatureDistillationLoss()(torch.randn(1, 8, 5, 5), torch.randn(1, 8, 5, 5)).ndim == 0
    with pytest.raises(ValueError, match="spatial_dims must be 2 or 3, got 1"):
        FeatureAdapter(4, 8, spatial_dims=1)


@pytest.mark.parametrize("kind", ["sigmoid", "class", "feature"])
def test_reduction_as_monai_losses(kind):
    """``reduction="none"`` gives each item's value (B,), each equal to the loss of that item alone; ``sum`` their
    sum; ``mean`` (default) the batch's value as trained. Unknown reductions are refused."""
    from kd_components.losses import FeatureDistillationLoss, RegionClassKLDivLoss, SigmoidKLDivLoss

    torch.manual_seed(1)
    s, t = torch.randn(3, 3, 6, 6, 6), torch.randn(3, 3, 6, 6, 6)
    make = {
        "sigmoid": lambda r: SigmoidKLDivLoss(region="tumour", balanced=True, reduction=r),
        "class": lambda r: RegionClassKLDivLoss(reduction=r),
        "feature": lambda r: FeatureDistillationLoss(reduction=r),
    }[kind]
    items = make("none")(s, t)
    assert items.shape == (3,)
    for b in range(3):
        assert torch.allclose(items[b], make("mean")(s[b : b + 1], t[b : b + 1]), atol=1e-6)
    assert torch.allclose(make("sum")(s, t), items.sum(), atol=1e-5)
    assert make("mean")(s, t).ndim == 0
    with pytest.raises(ValueError, match="reduction"):
        make("average")
