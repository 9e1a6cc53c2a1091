from __future__ import annotations

import json

import pytest

from kd_components.tools import ablation


def _evals(dice_by_seed: dict[int, list[float]]) -> list[dict]:
    """Evaluations per seed with the same Dice for every region of a case."""
    return [
        {"seed": seed, "rows": [{"case": f"c{i}", "dice_et": d, "dice_tc": d, "dice_wt": d} for i, d in enumerate(ds)]}
        for seed, ds in dice_by_seed.items()
    ]


def test_summary_pairs_cases_and_ranks_by_the_stated_rule():
    base = _evals({0: [0.5, 0.6, 0.7, 0.8], 1: [0.5, 0.6, 0.7, 0.8]})
    results = {
        "baseline": {"t1": base},
        # +0.1 on every case and seed: interval [0.1, 0.1], above zero for all 3 regions
        "good": {"t1": _evals({0: [0.6, 0.7, 0.8, 0.9], 1: [0.6, 0.7, 0.8, 0.9]})},
        # -0.05 everywhere: below zero
        "bad": {"t1": _evals({0: [0.45, 0.55, 0.65, 0.75], 1: [0.45, 0.55, 0.65, 0.75]})},
        # mixed: +0.2, -0.2 alternating -> mean 0, interval across zero
        "mixed": {"t1": _evals({0: [0.7, 0.4, 0.9, 0.6], 1: [0.7, 0.4, 0.9, 0.6]})},
    }
    table = ablation.summarise(results, ["t1"])
    good = table["good"]["summary"]
    assert good["mean_gain"] == pytest.approx(0.1) and good["above"] == 3 and good["below"] == 0
    assert table["bad"]["summary"]["below"] == 3
    mixed = table["mixed"]["cells"]["t1/et"]["diff"]
    assert mixed["mean"] == pytest.approx(0.0) and mixed["low"] < 0 < mixed["high"] and mixed["n_better"] == 2
    assert table["baseline"]["cells"]["t1/wt"]["dice"] == pytest.approx(0.65)
    assert ablation.rank_variants(table) == ["good", "mixed", "bad"]


def test_variants_state_every_kd_setting_explicitly():
    """A variant must mean the same thing after the bundle's defaults change."""
    keys = set(ablation.VARIANTS["tumour_balanced"])
    for name, overrides in ablation.VARIANTS.items():
        if overrides is not None:
            assert set(overrides) == keys, name
    assert set(ablation.TEACHER_VARIANTS) <= set(ablation.VARIANTS)
    assert ablation.UNLABELLED_VARIANTS == ["voxel_mean_unlabelled", "voxel_mean_pseudo", "pseudo_labels_only"]
    assert not set(ablation.UNLABELLED_VARIANTS) & set(ablation.DEFAULT_VARIANTS), "they need --labelled-fraction"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--variants", "nope"], "error: --variants: unknown nope; choose from baseline"),
        (["--jobs", "0"], "error: --jobs 0: give 1 or more."),
        (["--modalities", "dwi"], "error: --modalities: unknown modality 'dwi'"),
        (["--modalities", "t1ce+t1c"], "error: --modalities: modality 't1ce+t1c' names t1ce twice"),
        (
            ["--variants", "voxel_mean,voxel_mean_pseudo"],
            "error: --variants voxel_mean_pseudo needs --labelled-fraction below 1",
        ),
    ],
)
def test_ill_arguments(tmp_path, capsys, args, message):
    assert ablation.main(["--output", str(tmp_path / "a"), *args]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(message)
    assert not (tmp_path / "a").exists()  # refused before any work


@pytest.mark.slow
def test_quick_ablation_end_to_end(tmp_path):
    """Phantom, teacher, baseline and one variant trained by the bundles' commands, scored on validation."""
    out = tmp_path / "abl"
    variants = ["--variants", "class_kl,voxel_mean_cwd"]
    args = ["--output", str(out), "--quick", "--modalities", "t1ce", "--seeds", "1", *variants]
    assert ablation.main([*args, "--jobs", "2"]) == 0
    saved = json.loads((out / "ablation_validation.json").read_text())
    assert set(saved["ranked"]) == {"class_kl", "voxel_mean_cwd"} and saved["failed"] == []
    assert saved["table"]["class_kl"]["cells"]["t1ce/et"]["diff"]["n_cases"] >= 1
    record = json.loads((out / "class_kl" / "t1ce" / "seed0" / "train" / "run_record.json").read_text())
    assert record["config"]["loss"]["kd_loss"]["_target_"] == "kd_components.losses.RegionClassKLDivLoss"
    # a plugged-in term reaches the student's loss through the command line (--kd_terms)
    record = json.loads((out / "voxel_mean_cwd" / "t1ce" / "seed0" / "train" / "run_record.json").read_text())
    assert record["config"]["kd_terms"][0]["_target_"] == "kd_components.terms.ChannelWiseDistillation"
    assert (out / "teacher" / "models" / "validation.json").is_file()
    table = (out / "ablation_validation.md").read_text()
    assert f"First by the rule: **{saved['ranked'][0]}**" in table


def test_a_variant_cut_short_is_not_ranked():
    base = _evals({0: [0.5, 0.6, 0.7]})
    results = {
        "baseline": {"t1": base, "t2": base},
        "complete": {"t1": _evals({0: [0.6, 0.7, 0.5]}), "t2": _evals({0: [0.6, 0.7, 0.5]})},
        "cut_short": {"t1": _evals({0: [0.6, 0.7, 0.8]}), "t2": []},  # t2 never finished
    }
    table = ablation.summarise(results, ["t1", "t2"])
    assert table["cut_short"]["summary"]["pairs"] == 3 and table["complete"]["summary"]["pairs"] == 6
    assert ablation.rank_variants(table) == ["complete"]


def test_labelled_subset_moves_the_rest_to_the_unlabelled_split(tmp_path):
    from kd_components.tools.ablation import UNLABELLED_SPLIT, _student_sizes, labelled_subset

    datalist = tmp_path / "datalist.json"
    cases = [{"case": f"c{i}"} for i in range(8)]
    datalist.write_text(json.dumps({"training": cases, "validation": [{"case": "v"}], "test": [{"case": "t"}]}))
    subset = json.loads(labelled_subset(datalist, 0.25, tmp_path).read_text())
    assert [c["case"] for c in subset["training"]] == ["c0", "c1"]
    assert [c["case"] for c in subset[UNLABELLED_SPLIT]] == [f"c{i}" for i in range(2, 8)]
    assert subset["validation"] == [{"case": "v"}] and subset["test"] == [{"case": "t"}]
    assert len(json.loads(labelled_subset(datalist, 0.01, tmp_path).read_text())["training"]) == 1
    p = {"student_epochs": 4, "student_val_interval": 2}
    assert _student_sizes(p, 616, 6) == {"student_epochs": 103, "student_val_interval": 7}
    assert _student_sizes(p, 616, 22)["student_epochs"] == 28 and _student_sizes(p, None, 6) == p


def _per_case(path, rows):
    path.mkdir(parents=True, exist_ok=True)
    lines = ["case,dice_tc,hd95_tc,dice_wt,hd95_wt,dice_et,hd95_et"]
    lines += [f"C{i},{tc},1,{wt},1,{et},1" for i, (et, tc, wt) in enumerate(rows)]
    (path / "metrics_per_case.csv").write_text("\n".join(lines) + "\n")


def test_the_any_student_gets_a_row_per_subset_beside_the_dedicated_students(tmp_path):
    """The any students' evaluations from each subset become rows (no KD, KD, their paired difference), the dedicated
    students of a subset sit in its row, and the ranking weighs the dedicated pairs only. Hand-made cases: the KD
    any student is 0.1 better on every region from FLAIR (2 cases, 1 seed each of the two)."""
    from kd_components.tools.stages import SUBSET_NAMES, subset_folder

    for s in SUBSET_NAMES:
        _per_case(
            tmp_path / "baseline" / "any" / "seed0" / subset_folder("test", s), [(0.2, 0.3, 0.8), (0.4, 0.5, 0.6)]
        )
        _per_case(
            tmp_path / "voxel_mean" / "any" / "seed0" / subset_folder("test", s), [(0.3, 0.4, 0.9), (0.5, 0.6, 0.7)]
        )
    _per_case(tmp_path / "baseline" / "flair" / "seed0" / "test", [(0.1, 0.2, 0.9), (0.1, 0.2, 0.9)])
    _per_case(tmp_path / "voxel_mean" / "flair" / "seed0" / "test", [(0.1, 0.2, 0.9), (0.1, 0.2, 0.9)])
    keys = ablation.result_keys(["any", "flair"], "test")
    assert keys["any:t1ce+flair"] == ("any", "test_subsets/t1ce+flair") and keys["flair"] == ("flair", "test")
    results = {
        v: {k: ablation._evaluations(tmp_path / v / m, sp) for k, (m, sp) in keys.items()}
        for v in ("baseline", "voxel_mean")
    }
    table = ablation.summarise(results, list(keys))
    d = table["voxel_mean"]["cells"]["any:flair/et"]["diff"]
    assert d["mean"] == pytest.approx(0.1) and d["n_better"] == 2
    assert table["voxel_mean"]["summary"]["pairs"] == 3, "the ranking weighs the dedicated student's 3 pairs only"
    text = ablation._markdown(
        table,
        list(keys),
        "test",
        "cmd",
        {
            "data": "x",
            "n_cases": 2,
            "seeds": [0],
            "teacher_epochs": 1,
            "long_teacher_epochs": 1,
            "student_epochs": 1,
            "roi": "32",
        },
    )
    row = next(x for x in text.splitlines() if x.startswith("| FLAIR |"))
    assert row.startswith("| FLAIR | 0.300/0.400/0.700 | 0.400/0.500/0.800 | +0.100") and row.endswith(
        "| 0.100/0.200/0.900 | 0.100/0.200/0.900 |"
    )
    assert (
        sum(x.startswith("| T1c+T1+T2+FLAIR |") for x in text.splitlines()) == 1
        and "any:" not in text.split("## Per modality")[1].split("## One student")[0]
    )


def test_evaluations_hold_the_seeds_asked_and_recovered_runs(tmp_path):
    """A table of --seeds 1 reads seed 0 only where a longer study left seed 1 too; a run whose validation fell once
    and then beat its earlier best is kept, one that never did is left out and named."""
    import json

    for seed, dice in ((0, 0.2), (1, 0.6)):
        _per_case(tmp_path / f"seed{seed}" / "test", [(dice, dice, dice)])
        (tmp_path / f"seed{seed}" / "models").mkdir()
    assert [e["seed"] for e in ablation._evaluations(tmp_path, "test", seeds=range(1))] == [0]
    assert [e["seed"] for e in ablation._evaluations(tmp_path, "test")] == [0, 1]
    fell = {"epoch": 14, "val_mean_dice": 0.05, "best": 0.46}
    for seed, best_epoch in ((0, 28), (1, 12)):  # seed 0 recovered past its best; seed 1's best is before the fall
        record = {"collapsed": fell, "best": {"epoch": best_epoch, "val_mean_dice": 0.5}}
        (tmp_path / f"seed{seed}" / "models" / "validation.json").write_text(json.dumps(record))
    left_out: list[str] = []
    assert [e["seed"] for e in ablation._evaluations(tmp_path, "test", left_out)] == [0]
    assert left_out == [str(tmp_path / "seed1")]
