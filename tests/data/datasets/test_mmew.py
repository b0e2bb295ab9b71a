from __future__ import annotations

from pathlib import Path

import pytest

from micronbert.data.datasets import load_with_report
from micronbert.data.frames import frame_number
from tests.data.fixture_trees import MMEW_ROWS, build_mmew

pytestmark = pytest.mark.filterwarnings("ignore::micronbert.data.datasets.DatasetWarning")


def test_sheet_labels_cross_checked_with_folders(tmp_path: Path) -> None:
    table, report = load_with_report("mmew", build_mmew(tmp_path))
    assert len(table) == len(MMEW_ROWS)
    by_clip = table.set_index("clip")
    for subject, clip, onset, apex, offset, _, emotion, folder in MMEW_ROWS:
        row = by_clip.loc[clip]
        assert (row["subject"], row["emotion"], row["apex"]) == (f"mmew/{subject}", emotion, apex)
        assert [frame_number(p) for p in row["frames"]] == list(range(onset, offset + 1))
        assert Path(row["frames"][0]).parents[1].name == folder
    mismatched = [row[1] for row in MMEW_ROWS if row[6] != row[7]]
    folder_warnings = [w for w in report.warnings if "sheet says" in w]
    assert len(folder_warnings) == len(mismatched) == 1 and mismatched[0] in folder_warnings[0]
    assert by_clip.loc["S01-05-002", "action_units"] == [4, 7]
    assert any("90 fps is unconfirmed" in w for w in report.warnings)


def test_annotation_only_and_fps_override(tmp_path: Path) -> None:
    table, report = load_with_report("mmew", build_mmew(tmp_path), check_frames=False, fps=100.0)
    assert len(table) == len(MMEW_ROWS) and set(table["fps"]) == {100.0}
    assert not any("unconfirmed" in w for w in report.warnings)
