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

"""The random BraTS-layout dataset both KD-Net bundles' unit tests use, and its datalist."""

import os
import subprocess
import sys

import nibabel as nib
import numpy as np


def write_random_brats(dataset_dir: str, bundle_root: str, num_cases: int = 8, shape=(48, 48, 48)) -> str:
    """``num_cases`` cases ``BraTS2021_0000N/BraTS2021_0000N_{t1,t1ce,t2,flair,seg}.nii.gz`` of random values
    (labels 0, 1, 2, 4), and their datalist written by the bundle's ``scripts/prepare_datalist.py``; its path."""
    rng = np.random.default_rng(0)
    for s in range(num_cases):
        case = f"BraTS2021_{s:05d}"
        os.makedirs(os.path.join(dataset_dir, case))
        for suffix in ("t1", "t1ce", "t2", "flair"):
            image = rng.integers(1, 100, size=shape).astype(np.float32)
            nib.save(nib.Nifti1Image(image, np.eye(4)), os.path.join(dataset_dir, case, f"{case}_{suffix}.nii.gz"))
        label = rng.choice(np.array([0, 1, 2, 4], dtype=np.uint8), size=shape)
        nib.save(nib.Nifti1Image(label, np.eye(4)), os.path.join(dataset_dir, case, f"{case}_seg.nii.gz"))
    datalist = os.path.join(dataset_dir, "datalist.json")
    script = os.path.join(bundle_root, "scripts", "prepare_datalist.py")
    subprocess.run([sys.executable, script, "--path", dataset_dir, "--output", datalist], check=True)
    return datalist
