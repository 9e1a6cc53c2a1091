"""One atomic writer for every file the package writes."""

from __future__ import annotations

import numpy as np
import pytest

from kd_components.files import atomic_path, atomic_write_text


@pytest.mark.parametrize("name, ending", [("case.nii.gz", ".nii.gz"), ("logits.npz", ".npz"), ("b.zip", ".zip")])
def test_temporary_name_keeps_the_ending(tmp_path, name, ending):
    with atomic_path(tmp_path / name) as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(ending) and tmp.name != name
        if ending == ".npz":
            np.savez(tmp, x=np.zeros(2))  # numpy would append .npz to a name without it
        else:
            tmp.write_bytes(b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    target = atomic_write_text(tmp_path / "sub" / "metrics.json", "old")
    with pytest.raises(OSError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise OSError("disk full")
    assert target.read_text() == "old" and sorted(p.name for p in target.parent.iterdir()) == ["metrics.json"]
