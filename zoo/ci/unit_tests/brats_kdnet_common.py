# Copyright (c) MONAI Consortium
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""What both KD-Net bundles' unit tests share: a random BraTS-layout dataset with its datalist, and the tests
themselves (train one epoch, evaluate, infer, each through ``ConfigWorkflow`` with ``check_properties``, as the
zoo's ``test_brats_mri_segmentation.py``)."""

import glob
import os
import shutil
import subprocess
import sys
import tempfile

import nibabel as nib
import numpy as np
from monai.bundle import ConfigWorkflow
from utils import check_workflow


def write_random_brats(dataset_dir: str, bundle_root: str, num_cases: int = 8, shape=(48, 48, 48)) -> str:
    """``num_cases`` cases ``BraTS2021_0000N/BraTS2021_0000N_{t1,t1ce,t2,flair,seg}.nii.gz`` of random values inside
    a central box and 0 outside it, as a skull-stripped BraTS scan (the bundles refuse a scan without a zero
    background), labels 0, 1, 2, 4, and their datalist written by the bundle's ``scripts/prepare_datalist.py``; its
    path."""
    rng = np.random.default_rng(0)
    brain = np.zeros(shape, dtype=bool)
    brain[tuple(slice(s // 6, s - s // 6) for s in shape)] = True
    for s in range(num_cases):
        case = f"BraTS2021_{s:05d}"
        os.makedirs(os.path.join(dataset_dir, case))
        for suffix in ("t1", "t1ce", "t2", "flair"):
            image = np.where(brain, rng.integers(1, 100, size=shape), 0).astype(np.float32)
            nib.save(nib.Nifti1Image(image, np.eye(4)), os.path.join(dataset_dir, case, f"{case}_{suffix}.nii.gz"))
        label = rng.choice(np.array([0, 1, 2, 4], dtype=np.uint8), size=shape)
        nib.save(nib.Nifti1Image(label, np.eye(4)), os.path.join(dataset_dir, case, f"{case}_seg.nii.gz"))
    datalist = os.path.join(dataset_dir, "datalist.json")
    script = os.path.join(bundle_root, "scripts", "prepare_datalist.py")
    subprocess.run([sys.executable, script, "--path", dataset_dir, "--output", datalist], check=True)
    return datalist


class BundleTests:
    """The tests of one bundle at ``bundle_root`` (a ``unittest.TestCase`` mixes this in and sets ``bundle_root``).

    The bundle's runtime code (``kd_components/`` inside it) is imported from the bundle folder, which goes first
    on ``sys.path``; training writes into a temporary ``ckpt_dir``, never over the bundle's own weights.
    """

    bundle_root = ""

    def infer_override(self) -> dict:
        """Settings of inference beyond the data folder (which images to segment)."""
        return {}

    def setUp(self):
        if os.path.abspath(self.bundle_root) not in sys.path:
            sys.path.insert(0, os.path.abspath(self.bundle_root))
        self.dataset_dir, self.output_dir, self.ckpt_dir = (tempfile.mkdtemp() for _ in range(3))
        self.datalist = write_random_brats(self.dataset_dir, self.bundle_root)

    def tearDown(self):
        for folder in (self.dataset_dir, self.output_dir, self.ckpt_dir):
            shutil.rmtree(folder)

    def _workflow(self, workflow_type, config_files, override):
        return ConfigWorkflow(
            workflow_type=workflow_type,
            config_file=[os.path.join(self.bundle_root, "configs", f) for f in config_files],
            logging_file=os.path.join(self.bundle_root, "configs", "logging.conf"),
            meta_file=os.path.join(self.bundle_root, "configs", "metadata.json"),
            **override,
        )

    def test_train_eval_config(self):
        override = {
            "bundle_root": self.bundle_root,
            "epochs": 1,
            "num_workers": 0,
            "roi_size": [32, 32, 32],
            "dataset_dir": self.dataset_dir,
            "output_dir": self.output_dir,
            "ckpt_dir": self.ckpt_dir,
        }
        check_workflow(self._workflow("train", ["train.json"], override), check_properties=True)
        # evaluate.json on top of train.json, thus the workflow type of train.json
        check_workflow(self._workflow("train", ["train.json", "evaluate.json"], override), check_properties=True)
        self.assertTrue(os.path.isfile(os.path.join(self.output_dir, "metrics_summary.json")))

    def test_infer_config(self):
        override = {
            "bundle_root": self.bundle_root,
            "num_workers": 0,
            "roi_size": [32, 32, 32],
            "dataset_dir": self.dataset_dir,
            "output_dir": self.output_dir,
            **self.infer_override(),
        }
        check_workflow(self._workflow("infer", ["inference.json"], override), check_properties=True)
        self.assertTrue(glob.glob(os.path.join(self.output_dir, "**", "*.nii.gz"), recursive=True))
