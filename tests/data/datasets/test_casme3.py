from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from micronbert.data.datasets import get_scheme, load, load_with_report
from micronbert.data.frames import frame_number
from tests.data.fixture_trees import (
    CASME3_ROWS,
    CASME3C_ROWS,
    PART_C_FIRST_FRAME,
    build_casme3,
    build_casme3_part_c,
)

pytestmark = pytest.mark.filterwarnings("ignore::micronbert.data.datasets.DatasetWarning")
REAL_SHEET = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"


def test_fixture_samples_keyed_by_onset_with_both_frame_layouts(tmp_path: Path) -> None:
    table, report = load_with_report("casme3", build_casme3(tmp_path))
    located = [row for row in CASME3_ROWS if row[8] is not None]
    assert len(table) == len(located)
    two = table[(table["subject"] == "casme3/spNO.1") & (table["clip"] == "a")]
    assert sorted(two["onset"]) == [355, 362]
    precut = table[table["subject"] == "casme3/spNO.3"].iloc[0]
    assert [frame_number(p) for p in precut["frames"]] == [5, 6, 7, 8, 9]
    assert "spNo.3_c_5" in precut["frames"][0]
    assert "j" in set(table[table["subject"] == "casme3/spNO.14"]["clip"])
    assert set(item.key.split()[1] for item in report.dropped) == {"casme3/spNO.216", "casme3/spNO.5"}


def test_fixture_quirks_without_frames(tmp_path: Path) -> None:
    table = load("casme3", build_casme3(tmp_path), check_frames=False)
    assert len(table) == len(CASME3_ROWS)
    by_subject = table.set_index("subject")
    assert by_subject.loc["casme3/spNO.2", "emotion"] == "others"
    assert by_subject.loc["casme3/spNO.40", "offset"] == 1814  # offset 0 -> apex
    assert pd.isna(by_subject.loc["casme3/spNO.216", "onset"])  # onset after apex and offset
    assert by_subject.loc["casme3/spNO.3", "action_units"] == [28, 14]


def test_v1_sheet(tmp_path: Path) -> None:
    table, report = load_with_report("casme3", build_casme3(tmp_path, version="v1"), check_frames=False, version="v1")
    assert len(table) == len(CASME3_ROWS)
    assert any("_v1.xlsx" in note for note in report.notes)


def test_part_c_positions_become_frame_numbers(tmp_path: Path) -> None:
    root = build_casme3_part_c(tmp_path)
    table = load("casme3c", root, "casme3-4class")
    assert len(table) == len(CASME3C_ROWS)
    for (_, _, onset, offset, _, _), (_, row) in zip(CASME3C_ROWS, table.iterrows()):
        assert (row["onset"], row["offset"]) == (PART_C_FIRST_FRAME + onset - 1, PART_C_FIRST_FRAME + offset - 1)
        assert row["apex_source"] == "estimated"
    assert table.iloc[2]["action_units"] == [4, 7]  # full-width comma
    assert list(table["label"]) == [0, 1, 2, 3]
    raw = load("casme3c", root, check_frames=False)
    assert list(raw["onset"]) == [row[2] for row in CASME3C_ROWS]
    assert (raw["apex_source"] == "midpoint").all()


def test_real_v2_sheet_counts(shared_annotations: Path) -> None:
    table, report = load_with_report("casme3", shared_annotations, annotation=shared_annotations / REAL_SHEET,
                                     check_frames=False)
    assert len(table) == 860
    assert table["subject"].nunique() == 94
    assert table["emotion"].value_counts().to_dict() == {"disgust": 250, "surprise": 187, "others": 161, "fear": 86,
                                                         "anger": 64, "sad": 57, "happy": 55}
    assert not report.dropped
    assert not table.duplicated(["subject", "clip", "onset"]).any()


@pytest.mark.parametrize(("scheme", "counts"), [
    ("casme3-7class", {"disgust": 250, "surprise": 187, "others": 161, "fear": 86, "anger": 64, "sad": 57,
                       "happy": 55}),
    ("casme3-4class", {"negative": 457, "surprise": 187, "others": 161, "positive": 55}),
    ("casme3-3class", {"negative": 457, "surprise": 187, "positive": 55}),
])
def test_real_v2_sheet_schemes(shared_annotations: Path, scheme: str, counts: dict[str, int]) -> None:
    table = load("casme3", shared_annotations, scheme, check_frames=False)
    names = get_scheme(scheme).classes
    assert {names[label]: n for label, n in table["label"].value_counts().items()} == counts


def test_real_v2_sheet_defects_are_repaired_or_reported(shared_annotations: Path) -> None:
    table, report = load_with_report("casme3", shared_annotations, check_frames=False)
    spno149 = table[(table["subject"] == "casme3/spNO.149") & (table["clip"] == "d")]
    assert spno149["apex_source"].tolist() == ["midpoint"]
    spno40 = table[(table["subject"] == "casme3/spNO.40") & (table["clip"] == "e")].set_index("onset")
    assert (spno40.loc[1812, "offset"], spno40.loc[2327, "offset"]) == (1824, 2363)  # offset 0 -> apex
    assert "casme3/spNO.14" in set(table[table["clip"] == "j"]["subject"])
    assert "J" not in set(table["clip"])
    assert sum("onset 3647 after apex 2668" in w for w in report.warnings) == 1
    assert len(table) == 860
