from __future__ import annotations

from pathlib import Path

import pytest

from micronbert.data.datasets import load, load_with_report
from tests.data.fixture_trees import build_casme2, build_samm, build_smic, megc_gt_rows, write_megc_gt

pytestmark = pytest.mark.filterwarnings("ignore::micronbert.data.datasets.DatasetWarning")
REAL_GT = "megc2019_combined_3class_gt.csv"


def _sources(tmp_path: Path) -> dict[str, Path]:
    return {"casme2": build_casme2(tmp_path), "samm": build_samm(tmp_path), "smic": build_smic(tmp_path),
            "gt": write_megc_gt(tmp_path / "gt" / "combined_3class_gt.csv", megc_gt_rows())}


def test_gt_joined_with_source_readers(tmp_path: Path) -> None:
    table, report = load_with_report("megc2019", _sources(tmp_path))
    gt = megc_gt_rows()
    assert len(table) == len(gt) and not report.dropped
    assert list(table["label"]) == [row[3] for row in gt]
    samm = table[table["dataset"] == "samm"]
    assert list(samm["subject"]) == ["samm/006", "samm/009", "samm/026"]  # GT writes 6, 9, 26
    assert table["frames"].map(len).gt(0).all()
    assert table.set_index("clip").loc["EP02_01f", "emotion"] == "happiness"
    assert set(table["dataset"]) == {"casme2", "samm", "smic"}


def test_gt_rows_missing_from_a_source_are_dropped(tmp_path: Path) -> None:
    roots = _sources(tmp_path)
    roots["gt"] = write_megc_gt(tmp_path / "gt2" / "combined_3class_gt.csv",
                                megc_gt_rows() + [("casme2", "sub07", "EP08_1", 0)])
    table, report = load_with_report("megc2019", roots)
    assert len(table) == len(megc_gt_rows())
    missing_row = len(megc_gt_rows()) + 1
    assert [item.reason for item in report.dropped] == [f"GT row {missing_row} not found in the casme2 table"]


def test_gt_alone_and_scheme_lock(tmp_path: Path) -> None:
    gt = write_megc_gt(tmp_path / "combined_3class_gt.csv", megc_gt_rows())
    table, report = load_with_report("megc2019", gt)
    assert len(table) == len(megc_gt_rows()) and table["onset"].isna().all()
    assert any("GT file alone" in note for note in report.notes)
    with pytest.raises(ValueError, match="ground truth"):
        load("megc2019", gt, "casme2-5class")


def test_bad_gt_rows_are_named(tmp_path: Path) -> None:
    gt = write_megc_gt(tmp_path / "combined_3class_gt.csv", [("casme2", "sub01", "EP02_01f", 3)])
    with pytest.raises(ValueError, match="line 1: label '3'"):
        load("megc2019", gt)


def test_bad_database_and_roots_are_named(tmp_path: Path) -> None:
    gt = write_megc_gt(tmp_path / "combined_3class_gt.csv", [("casme3", "sub01", "EP02_01f", 1)])
    with pytest.raises(ValueError, match="line 1: database 'casme3' is not one of"):
        load("megc2019", gt)
    with pytest.raises(ValueError, match=r"root keys must be among .*got \['mmew'\]"):
        load("megc2019", {"gt": gt, "mmew": tmp_path})
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"combined_3class_gt.csv\) not found in .*empty"):
        load("megc2019", {"casme2": empty})


def test_old_gt_and_disagreeing_source_emotion_are_warned(tmp_path: Path) -> None:
    roots = _sources(tmp_path)
    rows = megc_gt_rows()
    rows[0] = ("casme2", "sub01", "EP02_01f", 0)  # the source codes this clip as happiness (positive, 1)
    roots["gt"] = write_megc_gt(tmp_path / "gt2" / "combined_3class_gt-2.csv", rows)
    table, report = load_with_report("megc2019", roots)
    assert table.set_index("clip").loc["EP02_01f", "label"] == 0
    assert any("looks like the 2018-11-30 GT" in warning for warning in report.warnings)
    assert any("EP02_01f" in warning and "'happiness' does not map to GT class 'negative'" in warning
               for warning in report.warnings)


def test_real_gt_counts(shared_annotations: Path) -> None:
    table, report = load_with_report("megc2019", {"gt": shared_annotations / REAL_GT}, "megc2019-3class")
    assert len(table) == 442 and not report.dropped
    assert table["subject"].nunique() == 68
    assert table["label"].value_counts().to_dict() == {0: 250, 1: 109, 2: 83}
    per_source = table.groupby("dataset")["label"].value_counts().unstack().to_dict(orient="index")
    assert per_source == {"smic": {0: 70, 1: 51, 2: 43}, "casme2": {0: 88, 1: 32, 2: 25}, "samm": {0: 92, 1: 26, 2: 15}}
    assert table.groupby("dataset")["subject"].nunique().to_dict() == {"smic": 16, "casme2": 24, "samm": 28}
    spots = {"smic/s03": [22, 11, 6], "casme2/sub17": [23, 7, 1], "samm/011": [13, 7, 0], "smic/s20": [14, 3, 5],
             "smic/s04": [10, 4, 5]}
    for subject, counts in spots.items():
        labels = table[table["subject"] == subject]["label"]
        assert [int((labels == k).sum()) for k in range(3)] == counts
    assert not {("casme2/sub10",), ("casme2/sub18",)} & set(zip(table["subject"]))
    kept = set(zip(table["subject"], table["clip"]))
    assert ("casme2/sub05", "EP12_03f") in kept and ("casme2/sub05", "EP09_05f") not in kept
