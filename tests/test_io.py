import json

import numpy as np
import pytest

from micronbert.io import json_safe, write_json_atomically, write_text_atomically


def test_json_safe_turns_nan_and_numpy_into_plain_json():
    value = {"a": float("nan"), "b": np.int64(3), "c": [np.float32(0.5), np.array([1, 2])], "d": (1, "x")}
    assert json_safe(value) == {"a": None, "b": 3, "c": [0.5, [1, 2]], "d": [1, "x"]}


def test_atomic_writes_leave_no_temporary_files(tmp_path):
    target = write_json_atomically(tmp_path / "sub" / "r.json", {"uar": float("nan"), "n": np.int32(2)})
    assert json.loads(target.read_text()) == {"uar": None, "n": 2}
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    target = write_text_atomically(tmp_path / "a.txt", "old")
    with pytest.raises(TypeError):
        write_text_atomically(target, 5)  # not text: fails while writing the temporary file
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_path_renames_on_success_and_cleans_up_on_failure(tmp_path):
    from micronbert.io import atomic_path

    target = tmp_path / "out.bin"
    with atomic_path(target) as temporary:
        assert temporary.parent == tmp_path and temporary != target
        temporary.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("crash")
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["out.bin"]
