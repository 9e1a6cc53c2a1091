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

"""Unit test of the KD-Net teacher bundle (4 modalities -> TC, WT, ET), in the model zoo's form."""

import os
import unittest

from brats_kdnet_common import BundleTests


class TestBratsKDNetTeacher(BundleTests, unittest.TestCase):
    bundle_root = os.environ.get("KD_ZOO_BUNDLE_ROOT_TEACHER", "models/brats_kdnet_teacher")

    def infer_override(self):
        return {"data_list_file_path": self.datalist}  # its test split


if __name__ == "__main__":
    unittest.main()
