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

"""Unit test of the KD-Net student bundle (T1c only -> TC, WT, ET), in the model zoo's form: train one epoch
with distillation from the teacher bundle beside it (``models/brats_kdnet_teacher``), evaluate, infer, each
through ``ConfigWorkflow`` with ``check_properties``."""

import glob
import os
import shutil
import sys
import tempfile
import unittest

from brats_kdnet_data import write_random_brats
from monai.bundle import ConfigWorkflow
from utils import check_workflow

BUNDLE_ROOT = os.environ.get("KD_ZOO_BUNDLE_ROOT_STUDENT", "models/brats_kdnet_student_t1ce")
TEST_CASE_TRAIN = {"bundle_root": BUNDLE_ROOT, "epochs": 1, "num_workers": 0, "roi_size": [32, 32, 32]}
TEST_CASE_INFER = {"bundle_root": BUNDLE_ROOT, "num_workers": 0, "roi_size": [32, 32, 32]}


class TestBratsKDNetStudent(unittest.TestCase):
    def setUp(self):
        # the bundle's runtime code (kd_components/ inside it) is imported from the bundle folder
        if os.path.abspath(BUNDLE_ROOT) not in sys.path:
            sys.path.insert(0, os.path.abspath(BUNDLE_ROOT))
        self.dataset_dir = tempfile.mkdtemp()
        self.output_dir = tempfile.mkdtemp()
        self.ckpt_dir = tempfile.mkdtemp()  # training writes here, not over the bundle's own weights
        self.datalist = write_random_brats(self.dataset_dir, BUNDLE_ROOT)

    def tearDown(self):
        shutil.rmtree(self.dataset_dir)
        shutil.rmtree(self.output_dir)
        shutil.rmtree(self.ckpt_dir)

    def _workflow(self, workflow_type, config_files, override):
        return ConfigWorkflow(
            workflow_type=workflow_type,
            config_file=[os.path.join(BUNDLE_ROOT, "configs", f) for f in config_files],
            logging_file=os.path.join(BUNDLE_ROOT, "configs", "logging.conf"),
            meta_file=os.path.join(BUNDLE_ROOT, "configs", "metadata.json"),
            **override,
        )

    def test_train_eval_config(self):
        override = dict(
            TEST_CASE_TRAIN, dataset_dir=self.dataset_dir, output_dir=self.output_dir, ckpt_dir=self.ckpt_dir
        )
        check_workflow(self._workflow("train", ["train.json"], override), check_properties=True)
        # evaluate.json on top of train.json, thus the workflow type of train.json
        check_workflow(self._workflow("train", ["train.json", "evaluate.json"], override), check_properties=True)
        self.assertTrue(os.path.isfile(os.path.join(self.output_dir, "metrics_summary.json")))

    def test_infer_config(self):
        override = dict(TEST_CASE_INFER, dataset_dir=self.dataset_dir, output_dir=self.output_dir)
        override["input_image"] = sorted(glob.glob(os.path.join(self.dataset_dir, "*", "*_t1ce.nii.gz")))[-1]
        check_workflow(self._workflow("infer", ["inference.json"], override), check_properties=True)
        self.assertTrue(glob.glob(os.path.join(self.output_dir, "**", "*.nii.gz"), recursive=True))

    def test_teacher_beside(self):
        teacher = os.path.join(os.path.dirname(BUNDLE_ROOT), "brats_kdnet_teacher", "models", "model.pt")
        self.assertTrue(os.path.isfile(teacher), f"the student distils from {teacher}: unzip the teacher bundle there")


if __name__ == "__main__":
    unittest.main()
