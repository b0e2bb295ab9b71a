from __future__ import annotations

import math
from pathlib import Path

import pytest

from micronbert.data.datasets import load_with_report
from micronbert.data.frames import frame_number
from tests.data.fixture_trees import FOURDME_ROWS, build_fourdme

pytestmark = pytest.mark.filterwarnings("ignore::micronbert.data.datasets.DatasetWarning")


def test_float_frame_numbers_and_k_marks(tmp_path: Path) -> None:
    table, report = load_with_report("4dme", build_fourdme(tmp_path))
    assert len(table) == len(FOURDME_ROWS)
    for (subject, fold, emotion, onset, apex, offset, _), (_, row) in zip(FOURDME_ROWS, table.iterrows()):
        assert (row["subject"], row["clip"], row["emotion"]) == (f"4dme/{subject}", fold, emotion.lower())
        assert (row["onset"], row["apex"], row["offset"]) == (int(onset), int(apex), int(offset))
        assert [frame_number(p) for p in row["frames"]] == list(range(int(onset), int(offset) + 1))
    assert table.iloc[0]["action_units"] == [6, 12]
    assert math.isnan(table.iloc[0]["fps"])
    assert any("frame rate is not established" in w for w in report.warnings)


def test_extras_sheet_is_not_taken_for_the_labels(tmp_path: Path) -> None:
    table, report = load_with_report("4dme", build_fourdme(tmp_path), check_frames=False, fps=60.0)
    assert len(table) == len(FOURDME_ROWS) and set(table["fps"]) == {60.0}
    assert any("Micro_release v1.xlsx" in note for note in report.notes)
