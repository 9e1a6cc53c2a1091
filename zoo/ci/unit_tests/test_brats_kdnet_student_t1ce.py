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

"""Unit test of the KD-Net student bundle (one modality -> TC, WT, ET), in the model zoo's form: it distils from the
teacher bundle beside it (``models/brats_kdnet_teacher``). The modality is the bundle name's suffix; for another
published modality copy this file to ``test_brats_kdnet_student_<modality>.py`` and change ``bundle_root``."""

import glob
import os
import unittest

from brats_kdnet_common import BundleTests


class TestBratsKDNetStudent(BundleTests, unittest.TestCase):
    bundle_root = os.environ.get("KD_ZOO_BUNDLE_ROOT_STUDENT", "models/brats_kdnet_student_t1ce")

    def infer_override(self):
        modality = self.bundle_root.rstrip("/").rsplit("_", 1)[-1]
        return {"input_image": sorted(glob.glob(os.path.join(self.dataset_dir, "*", f"*_{modality}.nii.gz")))[-1]}

    def test_teacher_beside(self):
        teacher = os.path.join(os.path.dirname(self.bundle_root), "brats_kdnet_teacher", "models", "model.pt")
        self.assertTrue(os.path.isfile(teacher), f"the student distils from {teacher}: unzip the teacher bundle there")


if __name__ == "__main__":
    unittest.main()
