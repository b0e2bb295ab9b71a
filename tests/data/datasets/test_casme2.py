from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from micronbert.data.datasets import load, load_with_report
from micronbert.data.frames import frame_number
from tests.data.fixture_trees import CASME2_HIDDEN_APEX, CASME2_LAYOUTS, CASME2_ROWS, CASME2_SHEET_NAMES, build_casme2

pytestmark = pytest.mark.filterwarnings("ignore::micronbert.data.datasets.DatasetWarning")
FIVE_CLASS = ("happiness", "surprise", "disgust", "repression", "others")


@pytest.mark.parametrize("layout", list(CASME2_LAYOUTS))
def test_layouts_give_onset_to_offset_frames(tmp_path: Path, layout: str) -> None:
    table, report = load_with_report("casme2", build_casme2(tmp_path, layout=layout))
    with_frames = [row for row in CASME2_ROWS if row[7]]
    assert len(table) == len(with_frames)
    first = table.set_index("clip").loc["EP02_01f"]
    assert [frame_number(p) for p in first["frames"]] == list(range(97, 104))  # img100 sorted after img99
    prefix = CASME2_LAYOUTS[layout][1].split("{")[0]
    assert all(Path(p).name.startswith(prefix) for p in first["frames"])
    assert [item.reason.split(" under ")[0] for item in report.dropped] == ["clip folder sub07/EP08_1 not found"]


def test_slash_apex_is_estimated_from_frames_or_midpoint(tmp_path: Path) -> None:
    root = build_casme2(tmp_path)
    table = load("casme2", root).set_index("clip")
    assert table.loc["EP19_05f", "apex"] == CASME2_HIDDEN_APEX
    assert table.loc["EP19_05f", "apex_source"] == "estimated"
    assert table.loc["EP02_01f", "apex_source"] == "annotated"
    mid = load("casme2", root, missing_apex="midpoint").set_index("clip")
    assert (mid.loc["EP19_05f", "apex"], mid.loc["EP19_05f", "apex_source"]) == (13, "midpoint")
    dropped, report = load_with_report("casme2", root, missing_apex="drop")
    assert "EP19_05f" not in set(dropped["clip"])
    assert report.drop_reasons()["apex missing (missing_apex='drop')"] == 1


def test_annotation_only_keeps_every_sheet_row(tmp_path: Path) -> None:
    table = load("casme2", build_casme2(tmp_path), check_frames=False)
    assert len(table) == len(CASME2_ROWS)
    assert table["frames"].map(len).eq(0).all()
    assert set(table["subject"]) == {f"casme2/sub{row[0]:02d}" for row in CASME2_ROWS}
    assert table.set_index("clip").loc["EP19_05f", "action_units"] == [4, 7]
    assert table.set_index("clip").loc["EP01_2", "action_units"] == [14]


def test_five_class_scheme(tmp_path: Path) -> None:
    table, report = load_with_report("casme2", build_casme2(tmp_path), "casme2-5class", check_frames=False)
    expected = [row for row in CASME2_ROWS if row[6] in FIVE_CLASS]
    assert len(table) == len(expected)
    assert sorted(table["label"]) == sorted(FIVE_CLASS.index(row[6]) for row in expected)
    assert report.drop_reasons() == {"emotion 'fear' not in scheme casme2-5class": 1,
                                     "emotion 'sadness' not in scheme casme2-5class": 1}


@pytest.mark.parametrize("sheet_name", CASME2_SHEET_NAMES + ["CASME2_label_Ver_2.xls", "CASME2_label_Ver_2.csv"])
def test_sheet_versions_are_found_by_pattern(tmp_path: Path, sheet_name: str) -> None:
    table, report = load_with_report("casme2", build_casme2(tmp_path, sheet_name=sheet_name), check_frames=False)
    assert len(table) == len(CASME2_ROWS)
    assert any(sheet_name in note for note in report.notes)


def test_missing_frames_folder_is_a_clear_error(tmp_path: Path) -> None:
    root = build_casme2(tmp_path)
    shutil.rmtree(root / "CASME2_RAW_selected")
    with pytest.raises(FileNotFoundError, match="check_frames=False"):
        load("casme2", root)
