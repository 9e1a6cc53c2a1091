"""What the weights need travels with them: the settings file, the window and the modality inference uses."""

from __future__ import annotations

import json
import logging

import pytest

from kd_components.deploy.weights import (
    SETTINGS_NAME,
    check_channels,
    read_model_settings,
    trained_modality,
    trained_window,
    write_model_settings,
)
from kd_components.errors import InputError


def test_settings_written_beside_the_weights(tmp_path):
    path = write_model_settings(tmp_path / "models", [48, 48, 48], 1, "t2f")
    assert path == tmp_path / "models" / SETTINGS_NAME
    assert json.loads(path.read_text()) == {
        "roi_size": [48, 48, 48],
        "in_channels": 1,
        "modality": "flair",
        "channels": ["FLAIR"],
        "normalisation": "nonzero, channel-wise",
        "pixdim": None,
        "absent_sequences": False,
    }
    teacher = read_model_settings(write_model_settings(tmp_path / "t", [64, 64, 32], 4).parent)
    assert teacher["modality"] is None and teacher["channels"] == ["T1c", "T1", "T2", "FLAIR"]


@pytest.mark.parametrize(
    "trained, given, expected, warned",
    [
        ([48, 48, 48], None, [48, 48, 48], False),  # unset: the trained window
        ([48, 48, 48], [48, 48, 48], [48, 48, 48], False),
        ([48, 48, 48], [128, 128, 128], [128, 128, 128], True),  # explicit and different: used, with a warning
        (None, None, [128, 128, 128], False),  # weights without settings: the configs' old default
        (None, 96, [96, 96, 96], False),
    ],
)
def test_window_follows_the_weights(tmp_path, caplog, trained, given, expected, warned):
    if trained is not None:
        write_model_settings(tmp_path, trained, 1, "t1ce")
    with caplog.at_level(logging.INFO, logger="kd_components.weights"):
        assert trained_window(tmp_path, given) == expected
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert bool(warnings) is warned
    if warned:
        assert "differs from the window the weights" in warnings[0].getMessage()
        assert "can lower Dice sharply" in warnings[0].getMessage()


def test_modality_follows_the_weights(tmp_path):
    write_model_settings(tmp_path, [48, 48, 48], 1, "flair")
    assert trained_modality(tmp_path) == "flair"
    assert trained_modality(tmp_path, "t2f") == "flair"  # the 2023 name of the same sequence
    assert trained_modality(tmp_path / "no_settings") == "t1ce"
    assert trained_modality(tmp_path / "no_settings", "T2") == "t2"


def test_ill_modality_other_than_trained(tmp_path):
    write_model_settings(tmp_path, [48, 48, 48], 1, "flair")
    with pytest.raises(InputError, match="--student_modality t1ce but the weights in .* were trained on flair"):
        trained_modality(tmp_path, "t1ce")
    with pytest.raises(InputError, match="--student_modality: unknown modality 'dwi'"):
        trained_modality(tmp_path, "dwi")


def test_channels_follow_the_weights(tmp_path):
    write_model_settings(tmp_path / "t", [64, 64, 64], 4, None)  # the teacher
    write_model_settings(tmp_path / "s", [64, 64, 64], 2, "t1ce+flair")
    assert check_channels(tmp_path / "t", 4) == 4 and check_channels(tmp_path / "s", 2) == 2
    assert check_channels(tmp_path / "no_settings", 1) == 1  # the model zoo's weights: nothing recorded to check


def test_ill_channels_other_than_trained(tmp_path):
    write_model_settings(tmp_path / "t", [64, 64, 64], 4, None)
    write_model_settings(tmp_path / "s", [64, 64, 64], 2, "t1ce+flair")
    with pytest.raises(InputError, match=r"holds weights of the four-sequence teacher \(4 input channel\(s\), "):
        check_channels(tmp_path / "t", 1)
    with pytest.raises(
        InputError, match=r"holds weights of the t1ce\+flair student \(2 input channel\(s\), .* takes 4"
    ):
        check_channels(tmp_path / "s", 4)


def test_ill_window(tmp_path):
    with pytest.raises(ValueError, match=r"roi_size must be 3 sizes >= 1, got \[48, 48\]"):
        trained_window(tmp_path, [48, 48])


def test_ill_inference_without_weights_is_one_line(tmp_path):
    """The bundle's inference without a trained model.pt: one line naming the file and where weights usually are."""
    import nibabel as nib
    import numpy as np
    from conftest import REPO, refused

    data = np.zeros((8, 8, 8), np.float32)
    data[2:6, 2:6, 2:6] = np.linspace(1.0, 2.0, 64).reshape(4, 4, 4)
    image = tmp_path / "c_t1ce.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(image))  # a scan that passes its checks
    line = refused(
        "run",
        "--config_file",
        REPO / "bundles" / "student_kd" / "configs" / "inference.json",
        "--input_image",
        image,
        "--ckpt_dir",
        tmp_path / "models",
        "--output_dir",
        tmp_path / "out",
    )
    assert line.startswith(f"error: no weights to segment with: '{tmp_path / 'models' / 'model.pt'}' does not exist")
    assert not (tmp_path / "out").exists()
