from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from micronbert.data.table import (
    TABLE_COLUMNS,
    LoadReport,
    load_table,
    make_table,
    sample_key,
    save_table,
    validate_table,
)


def _row(**changes: object) -> dict:
    row = {
        "dataset": "casme2",
        "subject": "casme2/sub01",
        "clip": "EP02_01f",
        "frames": ["/d/img97.jpg", "/d/img98.jpg", "/d/img100.jpg"],
        "onset": 97,
        "apex": 98,
        "offset": 100,
        "fps": 200.0,
        "emotion": "happiness",
        "action_units": [12],
        "label": 0,
        "apex_source": "annotated",
    }
    row.update(changes)
    return row


def test_make_table_has_standard_columns_and_dtypes() -> None:
    table = make_table([_row(), _row(onset=None, apex=None, offset=None, frames=[], label=None, apex_source=None,
                                     clip="x")])
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert str(table["onset"].dtype) == "Int64" and str(table["label"].dtype) == "Int64"
    assert table["fps"].dtype == float
    assert table.loc[1, "onset"] is pd.NA and table.loc[1, "frames"] == []
    validate_table(table)


def test_make_table_rejects_unknown_columns() -> None:
    with pytest.raises(ValueError, match="unknown table columns"):
        make_table([_row(colour="red")])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"subject": "sub01"}, "not namespaced"),
        ({"apex": 120}, "apex 120 outside"),
        ({"onset": 101, "apex": None, "apex_source": None, "frames": []}, "onset 101 after offset 100"),
        ({"apex_source": "guessed"}, "apex_source"),
        ({"apex": None}, "given without an apex"),
        ({"frames": ["/d/img98.jpg", "/d/img97.jpg"]}, "not sorted"),
        ({"frames": ["/d/img96.jpg"]}, "outside"),
        ({"onset": None, "apex": None, "apex_source": None}, "no onset/offset"),
    ],
)
def test_validate_table_names_the_bad_sample(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_table(make_table([_row(**changes)]))


def test_validate_table_rejects_duplicate_keys_and_missing_columns() -> None:
    with pytest.raises(ValueError, match="duplicate sample key casme2 casme2/sub01 EP02_01f @97"):
        validate_table(make_table([_row(), _row()]))
    with pytest.raises(ValueError, match="lacks columns"):
        validate_table(make_table([_row()]).drop(columns=["label"]))


def test_same_clip_different_onsets_are_distinct_samples() -> None:
    validate_table(make_table([_row(frames=[]), _row(frames=[], onset=90, apex=91, offset=95)]))


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    table = make_table([_row(au_raw="AU12"), _row(clip="b", onset=None, apex=None, offset=None, frames=[], label=None,
                                                  apex_source=None, action_units=[], au_raw=None)])
    path = save_table(table, tmp_path / "out" / "table.csv")
    assert [p.name for p in path.parent.iterdir()] == ["table.csv"]
    loaded = load_table(path)
    pd.testing.assert_frame_equal(loaded, table)


def test_save_table_refuses_invalid_table(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        save_table(make_table([_row(apex=5)]), tmp_path / "t.csv")
    assert not (tmp_path / "t.csv").exists()


def test_load_table_reports_bad_json(tmp_path: Path) -> None:
    path = save_table(make_table([_row()]), tmp_path / "t.csv")
    raw = pd.read_csv(path, dtype=str)
    raw.loc[0, "frames"] = "[broken"
    raw.to_csv(path, index=False)
    with pytest.raises(ValueError, match="row 2, column frames"):
        load_table(path)


@pytest.mark.parametrize("column, value, message", [
    ("onset", "ninety-seven", "row 3, column onset: 'ninety-seven' is not an integer"),
    ("label", "2.5", "row 3, column label: '2.5' is not an integer"),
    ("fps", "fast", "row 3, column fps: 'fast' is not a number"),
    ("apex", "120", "casme2 casme2/sub01 EP02_01f @97: apex 120 outside"),
])
def test_load_table_names_the_file_row_and_column(tmp_path: Path, column: str, value: str, message: str) -> None:
    path = save_table(make_table([_row(clip="a"), _row()]), tmp_path / "t.csv")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    raw.loc[1, column] = value
    raw.to_csv(path, index=False)
    with pytest.raises(ValueError, match=f"t.csv:? {message}"):
        load_table(path)


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00 not text"])
def test_load_table_refuses_unreadable_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "table.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="table.csv: not a readable CSV sample table"):
        load_table(path)


def test_make_table_names_the_row_of_a_bad_cell() -> None:
    with pytest.raises(ValueError, match="row 1, column offset: 'end' is not an integer"):
        make_table([_row(), _row(clip="b", offset="end")])


def test_load_report_counts_and_summary() -> None:
    report = LoadReport("samm")
    report.drop("k1", "no frames")
    report.drop("k2", "no frames")
    report.warn("apex repaired")
    other = LoadReport("x")
    other.drop("k3", "bad emotion")
    report.extend(other)
    assert report.drop_reasons() == {"no frames": 2, "bad emotion": 1}
    assert "3 dropped, 1 warnings" in report.summary()
    assert sample_key("a", "a/s", "c", None) == "a a/s c @?"
