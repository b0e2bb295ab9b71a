from __future__ import annotations

from pathlib import Path

import pytest

from micronbert.data.datasets import load, load_with_report
from micronbert.data.frames import frame_number
from tests.data.fixture_trees import build_manifest

pytestmark = pytest.mark.filterwarnings("ignore::micronbert.data.datasets.DatasetWarning")


def test_manifest_rows_with_and_without_intervals(tmp_path: Path) -> None:
    table, report = load_with_report("manifest", build_manifest(tmp_path))
    assert list(table["subject"]) == ["lab/p1", "lab/p2"] and not report.dropped
    first, second = table.iloc[0], table.iloc[1]
    assert [frame_number(p) for p in first["frames"]] == list(range(2, 8))
    assert (first["apex"], first["apex_source"], first["label"]) == (5, "annotated", 1)
    assert (second["onset"], second["offset"]) == (100, 110)  # from the folder
    assert (second["apex"], second["apex_source"]) == (104, "estimated")
    assert first["action_units"] == [6, 12] and first["emotion"] == "happiness"


def test_manifest_with_a_scheme_and_as_a_file_path(tmp_path: Path) -> None:
    root = build_manifest(tmp_path)
    table = load("manifest", root / "manifest.csv", "casme2-5class")
    assert list(table["label"]) == [0, 2]  # happiness, disgust in the CASME II 5-class order


def test_manifest_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="manifest file not found"):
        load("manifest", tmp_path)
    (tmp_path / "manifest.csv").write_text("subject,clip,emotion,fps\np1,c1,happy,fast\n")
    with pytest.raises(ValueError, match="row 2: fps 'fast'"):
        load("manifest", tmp_path, check_frames=False)
