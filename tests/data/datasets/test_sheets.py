"""The spreadsheet layer every reader uses: locating headers and columns, and parsing cells."""
from __future__ import annotations

from pathlib import Path

import pytest

from micronbert.data.datasets.sheets import (
    choose_sheet,
    column,
    parse_action_units,
    parse_frame_number,
    read_grid,
    read_table,
)
from tests.data.fixture_trees import write_workbook


@pytest.mark.parametrize("cell, zero_is_missing, value, problem", [
    ("46", False, 46, None),
    ("46.0", False, 46, None),
    (" 7 ", False, 7, None),
    ("46.5", False, 46, "fractional frame '46.5' truncated"),
    ("/", False, None, "'/' means missing"),
    (None, False, None, None),
    ("-3", False, None, "negative frame number '-3'"),
    ("0", False, 0, None),
    ("0", True, None, "0 means missing"),
    ("apex", False, None, "'apex' is not a frame number"),
])
def test_frame_number_cells(cell, zero_is_missing, value, problem) -> None:
    parsed = parse_frame_number(cell, zero_is_missing=zero_is_missing)
    assert (parsed.value, parsed.problem) == (value, problem)


def test_action_unit_cells() -> None:
    assert parse_action_units("R12 + R15") == ([12, 15], None)
    assert parse_action_units("4+4+7") == ([4, 7], None)
    assert parse_action_units("/") == ([], None)
    units, problem = parse_action_units("smile")
    assert units == [] and problem == "AU cell 'smile' holds no AU number"


def test_header_found_below_a_title_and_columns_by_alias(tmp_path: Path) -> None:
    path = write_workbook(tmp_path / "coding.xlsx", [
        ("Notes", [["read me"]]),
        ("Data", [["A coding sheet"], [], ["Subject", "Filename", "Onset Frame"], ["1", "EP01", "5"],
                  [None, None, None]]),
    ])
    assert choose_sheet(path, ["data"]) == "Data" and choose_sheet(path, ["absent"]) == 0
    sheet = read_table(path, [("Subject",), ("Filename", "File")], sheet="Data")
    assert sheet.header_row == 3 and len(sheet.frame) == 1
    assert column(sheet, ("OnsetFrame", "Onset Frame")) == "Onset Frame"
    assert column(sheet, ("Apex",), required=False) is None
    with pytest.raises(ValueError, match=r"coding.xlsx: no column named any of \['Apex'\]; columns are"):
        column(sheet, ("Apex",))
    with pytest.raises(ValueError, match=r"coding.xlsx: no header row with columns \[\['Emotion'\]\] in the first"):
        read_table(path, [("Emotion",)], sheet="Data")
    with pytest.raises(ValueError,
                       match=r"coding.xlsx: sheet 'Missing' not found; the workbook has \['Notes', 'Data'\]"):
        read_grid(path, "Missing")
    with pytest.raises(ValueError, match="coding.xlsx: sheet 2 not found"):
        read_grid(path, 2)


def test_unreadable_annotation_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="annotation file not found: .*gone.csv"):
        read_grid(tmp_path / "gone.csv")
    notes = tmp_path / "coding.txt"
    notes.write_text("Subject,Filename\n")
    with pytest.raises(ValueError, match="unsupported annotation file type '.txt'"):
        read_grid(notes)
    for name, content in [("damaged.xlsx", b"PK not a zip"), ("damaged.xls", b"\xd0\xcf garbage"),
                          ("latin1.csv", b"Subject,Emotion\n1,d\xe9go\xfbt\n")]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=f"{name}: not a readable"):
            read_grid(tmp_path / name)
    with pytest.raises(ValueError, match="damaged.xlsx: not a readable .xlsx file"):
        choose_sheet(tmp_path / "damaged.xlsx", ["data"])
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert read_grid(empty).empty
