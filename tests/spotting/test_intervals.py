"""Spotting readers: the interval table, video ids, the repair rules and their report, on fixture sheets in the real
layouts and on the real CAS(ME)^3 sheets when they are available."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from micronbert.spotting import (
    INTERVAL_COLUMNS,
    REPAIR_RULES,
    SpottingWarning,
    available_spotting_datasets,
    get_spotting_dataset,
    read_intervals,
    read_intervals_with_report,
    validate_intervals,
)
from tests.data.fixture_trees import write_workbook
from tests.spotting.sheet_fixtures import (
    CASME3_FILE,
    CASME3C_FILE,
    CASME_SQ_COUNTS,
    CASME_SQ_FILE,
    CASME_SQ_ROWS,
    SAMM_LV_COUNTS,
    SAMM_LV_LAYOUTS,
    SAMM_LV_ROWS,
    casme_sq_folder,
    casme_sq_rows_at_real_counts,
    samm_lv_rows_at_real_counts,
    write_casme3,
    write_casme3c,
    write_casme_sq,
    write_samm_lv,
)


def _repairs(report, rule: str) -> list:
    return [item for item in report.repairs if item.rule == rule]


def _drops(report) -> dict[int, str]:
    """Dropped rows by spreadsheet row number."""
    return {int(item.row.rsplit(" ", 1)[1]): item.reason for item in report.dropped}


def _row(table: pd.DataFrame, **where: object) -> pd.Series:
    mask = pd.Series(True, index=table.index)
    for name, value in where.items():
        mask &= table[name] == value
    assert mask.sum() == 1, f"{where} matches {int(mask.sum())} rows"
    return table[mask].iloc[0]


def test_registry_lists_the_four_readers_with_their_frame_rates() -> None:
    listed = available_spotting_datasets()
    assert list(listed) == ["casme_sq", "samm_lv", "casme3", "casme3c"]
    assert [get_spotting_dataset(name).fps for name in listed] == [30.0, 200.0, 30.0, 30.0]
    assert "200 fps" in listed["samm_lv"]
    with pytest.raises(ValueError, match="unknown spotting dataset 'casme2'.*casme_sq"):
        read_intervals("casme2", ".")


# --- CAS(ME)^2 -------------------------------------------------------------------------------------------------


def test_casme_sq_video_ids_types_and_repairs(tmp_path: Path) -> None:
    write_casme_sq(tmp_path / CASME_SQ_FILE, CASME_SQ_ROWS)
    table, report = read_intervals_with_report("casme_sq", tmp_path)
    assert list(table.columns) == list(INTERVAL_COLUMNS)
    assert len(table) == len(CASME_SQ_ROWS) and not report.dropped
    first = table.iloc[0]
    assert (first.video, first.subject, first.type, first.onset, first.apex, first.offset) == (
        "s15_0401", "s15", "macro", 557, 572, 608)
    assert (first.emotion, first.au, first.fps, first.apex_source) == ("negative", "4+10+14", 30.0, "annotated")
    assert _row(table, video=f"{casme_sq_folder(2)}_0101").type == "micro"
    assert _row(table, video=f"{casme_sq_folder(22)}_0503").offset == 2707
    # offset 0 -> apex
    assert _row(table, video="s15_0402").offset == 2163
    assert [(r.value, r.result) for r in _repairs(report, "offset-missing")] == [("0", "2163"), ("0", "2707")]
    # apex 0 -> midpoint of onset and offset
    row = _row(table, video=f"{casme_sq_folder(17)}_0401")
    assert (row.apex, row.apex_source) == ((1763 + 1787) // 2, "midpoint")
    # offset before apex: the interval as annotated, the apex clipped to the offset
    row = _row(table, video=f"{casme_sq_folder(11)}_0101")
    assert (row.onset, row.apex, row.offset, row.apex_source) == (1221, 1224, 1224, "clipped")
    assert report.rule_counts() == {"offset-missing": 2, "apex-missing": 1, "apex-outside": 3}
    assert _repairs(report, "apex-missing")[0].row == f"{CASME_SQ_FILE} [CASFEcode_final] row 4"


def test_casme_sq_sheet_at_the_real_counts_keeps_every_interval(tmp_path: Path) -> None:
    write_casme_sq(tmp_path / CASME_SQ_FILE, casme_sq_rows_at_real_counts())
    table, report = read_intervals_with_report("casme_sq", tmp_path / CASME_SQ_FILE)
    counts = CASME_SQ_COUNTS
    assert len(table) == counts["intervals"] and not report.dropped
    assert table["type"].value_counts().to_dict() == {"macro": counts["macro"], "micro": counts["micro"]}
    assert table["video"].nunique() == counts["videos"] and table["subject"].nunique() == counts["subjects"]
    assert table.loc[table["type"] == "micro", "video"].nunique() == counts["videos_with_micro"]
    assert report.rule_counts() == {"offset-missing": counts["offset_zero"], "apex-missing": counts["apex_zero"],
                                    "apex-outside": counts["offset_before_apex"]}
    assert table["video"].str.fullmatch(r"s\d{2}_\d{4}").all()
    assert (table["onset"] <= table["apex"]).all() and (table["apex"] <= table["offset"]).all()


def test_casme_sq_rows_that_cannot_be_placed_or_repaired_are_dropped_with_the_reason(tmp_path: Path) -> None:
    rows = [
        CASME_SQ_ROWS[0],
        (1, "sadness1_1", 10, 12, 40, 4, "negative", "macro-expression", "sad"),
        (1, "anger1_3", 500, 0, 0, 4, "negative", "macro-expression", "anger"),
        (1, "anger1_4", 900, 910, 850, 4, "negative", "macro-expression", "anger"),
        (1, "anger1_5", 900, 910, 950, 4, "negative", "blink", "anger"),
    ]
    write_casme_sq(tmp_path / CASME_SQ_FILE, rows)
    table, report = read_intervals_with_report("casme_sq", tmp_path)
    assert table["source"].tolist() == [f"{CASME_SQ_FILE} [CASFEcode_final] row 1"]
    reasons = _drops(report)
    assert sorted(reasons) == [2, 3, 4, 5]
    assert "'sadness1_1'" in reasons[2] and "naming rule2" in reasons[2]
    assert "no offset" in reasons[3] and "no usable apex" in reasons[3]
    assert reasons[4] == "offset 850 before onset 900"
    assert "'blink'" in reasons[5]


def test_casme_sq_needs_its_naming_rule_sheets(tmp_path: Path) -> None:
    write_casme_sq(tmp_path / CASME_SQ_FILE, CASME_SQ_ROWS, naming_rules=False)
    with pytest.raises(ValueError, match="naming rule1.*naming rule2"):
        read_intervals("casme_sq", tmp_path)


def test_missing_sheet_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        read_intervals("casme_sq", tmp_path)
    with pytest.raises(FileNotFoundError, match="neither a folder nor an annotation file"):
        read_intervals("casme_sq", tmp_path / "absent")


def test_read_intervals_warns_once_when_rows_were_repaired(tmp_path: Path) -> None:
    write_casme_sq(tmp_path / CASME_SQ_FILE, CASME_SQ_ROWS)
    with pytest.warns(SpottingWarning, match="6 repairs, 0 rows dropped"):
        table = read_intervals("casme_sq", tmp_path)
    assert len(table) == len(CASME_SQ_ROWS)


# --- SAMM Long Videos ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["v1", "v2", "v3"])
def test_samm_lv_layouts_read_alike_with_quirks_repaired(tmp_path: Path, layout: str) -> None:
    write_samm_lv(tmp_path / f"SAMM_LongVideos_{layout.upper()}_Release.xlsx", SAMM_LV_ROWS, layout)
    table, report = read_intervals_with_report("samm_lv", tmp_path)
    sheet_name = SAMM_LV_LAYOUTS[layout][0]
    assert f"sheet {sheet_name!r}, header on row 10" in report.notes[0]
    assert table["video"].tolist() == ["006_1", "006_1", "006_1", "007_7", "010_1", "032_3", "011_2"]
    assert table["subject"].tolist() == ["006", "006", "006", "007", "010", "032", "011"]
    assert table["type"].tolist() == ["macro", "micro", "macro", "macro", "macro", "micro", "micro"]
    assert table["fps"].eq(200.0).all() and table["emotion"].isna().all()
    # fractional frames rounded half up
    assert table.loc[0, ["onset", "apex", "offset"]].tolist() == [566, 648, 743]
    assert table.loc[6, "onset"] == 101
    assert [(r.column, r.value, r.result) for r in _repairs(report, "fraction-rounded")] == [
        ("onset", "566.4", "566"), ("apex", "647.6", "648"), ("offset", "743.2", "743"), ("onset", "100.5", "101")]
    # onset 0 -> 1
    assert table.loc[2, ["onset", "offset"]].tolist() == [1, 1335]
    # apex -1 (not annotated) -> midpoint; apex beyond the offset (V1's original values) -> clipped
    assert table.loc[3, ["apex", "apex_source"]].tolist() == [(254 + 337) // 2, "midpoint"]
    assert table.loc[5, ["apex", "apex_source"]].tolist() == [(1896 + 1970) // 2, "midpoint"]
    assert table.loc[4, ["onset", "apex", "offset", "apex_source"]].tolist() == [89, 209, 209, "clipped"]
    assert report.rule_counts() == {"fraction-rounded": 4, "onset-zero": 1, "apex-missing": 2, "apex-outside": 1}
    assert not report.dropped


def test_samm_lv_copy_with_the_header_on_row_1(tmp_path: Path) -> None:
    rows = [("006", "006_1_1", 566, 648, 743, "Macro"), ("006", "006_1_3", 1, 120, 1335, "Macro"),
            (6, "006_2_1", 30, 40, 90, "Micro - 1/2")]
    write_samm_lv(tmp_path / "SAMM_LongVideos.xlsx", rows, "header_row1")
    table, report = read_intervals_with_report("samm_lv", tmp_path)
    assert "sheet 'Sheet1', header on row 1" in report.notes[0]
    assert table[["video", "onset", "apex", "offset", "type"]].values.tolist() == [
        ["006_1", 566, 648, 743, "macro"], ["006_1", 1, 120, 1335, "macro"], ["006_2", 30, 40, 90, "micro"]]
    assert not report.repairs and not report.dropped


def test_samm_lv_sheet_at_the_real_counts_keeps_every_interval(tmp_path: Path) -> None:
    write_samm_lv(tmp_path / "SAMM_LongVideos_V1_Release.xlsx", samm_lv_rows_at_real_counts(), "v1")
    table, report = read_intervals_with_report("samm_lv", tmp_path)
    counts = SAMM_LV_COUNTS
    assert len(table) == counts["intervals"] and not report.dropped
    assert table["type"].value_counts().to_dict() == {"macro": counts["macro"], "micro": counts["micro"]}
    assert table["video"].nunique() == counts["videos"] and table["subject"].nunique() == counts["subjects"]
    assert table.loc[table["type"] == "micro", "video"].nunique() == counts["videos_with_micro"]
    assert len({r.row for r in _repairs(report, "fraction-rounded")}) == counts["fractional_rows"]
    assert len(_repairs(report, "onset-zero")) == counts["onset_zero"]
    assert len(_repairs(report, "apex-missing")) == counts["apex_minus_one"]
    assert set(report.rule_counts()) == {"fraction-rounded", "onset-zero", "apex-missing"}


def test_samm_lv_rows_with_bad_ids_or_types_are_dropped(tmp_path: Path) -> None:
    rows = [("006", "006_1_1", 10, 20, 30, "Macro"), ("007", "006_1_2", 10, 20, 30, "Macro"),
            ("006", "interval one", 10, 20, 30, "Macro"), ("006", "006_1_3", 10, 20, 30, "Other"),
            ("006", "006_1_4", "ten", 20, 30, "Macro"), ("006", "006_1_5", 10, 20, "thirty", "Macro")]
    write_samm_lv(tmp_path / "SAMM_LongVideos_V2_Release.xlsx", rows, "v2")
    table, report = read_intervals_with_report("samm_lv", tmp_path)
    assert len(table) == 1
    reasons = _drops(report)  # the header is on row 10, data from row 11
    assert sorted(reasons) == [12, 13, 14, 15, 16]
    assert "does not belong to subject 007" in reasons[12]
    assert "'interval one' is not of the form" in reasons[13]
    assert "'Other' is neither Micro nor Macro" in reasons[14]
    assert reasons[15] == "onset 'ten' is not a frame number" and reasons[16] == "offset 'thirty' is not a frame number"


def _write_samm_micro_sheet(path: Path, rows: list[tuple[object, str, str]]) -> None:
    """A SAMM micro-expression sheet (notes above the header on row 14) of (Subject, Filename, Estimated Emotion)."""
    header = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
              "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes"]
    lines = [["SAMM Micro FACS Codes"]] + [[] for _ in range(12)] + [header]
    lines += [[subject, clip, 1, 10, 20, 30, 21, "Micro", "4", emotion, 1, None] for subject, clip, emotion in rows]
    write_workbook(path, [("FACS", lines)])


def test_samm_lv_emotions_come_from_the_samm_micro_sheet_beside_it(tmp_path: Path) -> None:
    write_samm_lv(tmp_path / "SAMM_LongVideos_V1_Release.xlsx", SAMM_LV_ROWS, "v1")
    # 006_1_2 written without the subject's zeros; 011_2_1 on two rows (not used); 032_3_1 absent; a macro's name
    _write_samm_micro_sheet(tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx", [
        (6, "6_1_2", "Anger"), (11, "011_2_1", "Happiness"), (11, "011_2_1", "Surprise"), (6, "006_1_1", "Fear")])
    table, report = read_intervals_with_report("samm_lv", tmp_path)
    emotions = dict(zip(table["source"].str.extract(r"row (\d+)")[0].astype(int), table["emotion"], strict=True))
    assert emotions[12] == "anger"  # 006_1_2, the micro-expression
    assert pd.isna(emotions[11])  # 006_1_1 is a macro-expression: only micro-expressions take emotions
    assert pd.isna(emotions[16]) and pd.isna(emotions[17])  # 032_3_1 absent, 011_2_1 ambiguous
    notes = " ".join(report.notes)
    assert "clip names on more than one row, not used: 011_2_1" in notes
    assert "emotions of 1 of 3 micro-expressions from SAMM_Micro_FACS_Codes_v2.xlsx; none found for" in notes


def test_samm_lv_without_a_micro_sheet_says_its_emotions_are_empty(tmp_path: Path) -> None:
    sheet = write_samm_lv(tmp_path / "SAMM_LongVideos_V1_Release.xlsx", SAMM_LV_ROWS, "v1")
    table, report = read_intervals_with_report("samm_lv", tmp_path)
    assert table["emotion"].isna().all()
    assert "no SAMM micro-expression sheet under" in " ".join(report.notes)
    _, given_as_file = read_intervals_with_report("samm_lv", sheet)
    assert "sheet was given as a file: SAMM micro-expression sheet not looked for" in " ".join(given_as_file.notes)


# --- CAS(ME)^3 -------------------------------------------------------------------------------------------------


def test_casme3_expressions_blinks_and_repairs(tmp_path: Path) -> None:
    write_casme3(tmp_path)
    table, report = read_intervals_with_report("casme3", tmp_path)
    assert table["type"].tolist() == ["macro", "micro", "micro", "micro", "micro", "blink", "blink"]
    assert table["video"].tolist() == ["spNO.1_a", "spNO.1_a", "spNO.14_j", "spNO.216_e", "spNO.40_e", "spNO.1_a",
                                       "spNO.14_j"]
    # upper-case letter lower-cased, in both sheets
    assert [(r.column, r.value, r.result) for r in _repairs(report, "name-case")] == [("Filename", "J", "j")] * 2
    # onset 0 and apex 0
    assert table.loc[3, ["onset", "apex", "offset", "apex_source"]].tolist() == [1, 13, 25, "midpoint"]
    # offset 0 -> apex
    assert table.loc[4, ["onset", "apex", "offset"]].tolist() == [1812, 1824, 1824]
    # blinks have no apex
    assert table.loc[5:, "apex"].isna().all() and table.loc[5:, "apex_source"].isna().all()
    assert _drops(report) == {7: "offset 2694 before onset 3647",
                              8: "Expression type 'blended' is neither micro nor macro"}
    assert report.rule_counts() == {"name-case": 2, "onset-zero": 1, "apex-missing": 1, "offset-missing": 1}
    assert any("frame-number cells are stored as text" in note for note in report.notes)


def test_casme3_emotions_come_from_the_me_label_sheet(tmp_path: Path) -> None:
    write_casme3(tmp_path)
    table, report = read_intervals_with_report("casme3", tmp_path)
    micro = table[table["type"] == "micro"]
    assert micro["emotion"].tolist()[:3] == ["others", "disgust", "surprise"] and pd.isna(micro["emotion"].iloc[3])
    assert table.loc[table["type"] != "micro", "emotion"].isna().all()
    assert any("emotions of 3 of 4 micro-expressions" in note and "row 6" in note for note in report.notes)
    # the sheet given as a file: no companion sheet, no emotions, and a note says so
    table, report = read_intervals_with_report("casme3", tmp_path / CASME3_FILE)
    assert table["emotion"].isna().all() and any("given as a file" in note for note in report.notes)


def test_casme3_without_a_blink_sheet_reads_the_expressions(tmp_path: Path) -> None:
    write_casme3(tmp_path, blinks=None, labels=None)
    table, report = read_intervals_with_report("casme3", tmp_path)
    assert "blink" not in set(table["type"]) and len(table) == 5
    assert any("no 'eye blink' sheet" in note for note in report.notes)


def test_casme3c_types_from_exp_type_and_emotions_from_the_me_sheet(tmp_path: Path) -> None:
    write_casme3c(tmp_path)
    table, report = read_intervals_with_report("casme3c", tmp_path)
    assert table[["video", "subject", "type", "onset", "offset"]].values.tolist() == [
        ["04", "04", "micro", 520, 525], ["04", "04", "macro", 1420, 1450], ["05", "05", "micro", 300, 310]]
    assert table["apex"].isna().all()
    assert table["emotion"].tolist()[0] == "negative" and table["au"].tolist()[0] == "R4,5"
    assert pd.isna(table["emotion"].tolist()[2])
    assert [item.reason for item in report.dropped] == ["Exp_type '2' is neither 1 (micro) nor 0 (macro)"]
    assert any("1 MEs have no interval" in note for note in report.notes)
    assert any("positions in the sorted frame listing" in note for note in report.notes)
    assert (tmp_path / CASME3C_FILE).is_file()


def test_real_casme3_part_a_counts(shared_annotations: Path) -> None:
    if not (shared_annotations / CASME3_FILE).is_file():
        pytest.skip(f"{CASME3_FILE} not available")
    table, report = read_intervals_with_report("casme3", shared_annotations)
    assert table["type"].value_counts().to_dict() == {"macro": 3346, "micro": 860, "blink": 841}
    assert not report.dropped
    assert table.loc[table["type"] != "blink", "subject"].nunique() == 98
    expressions = table[table["type"] != "blink"]
    assert expressions[["subject", "video"]].drop_duplicates().shape[0] == 956
    # 'J' for spNO.14 written in upper case in 5 expression rows (docs/DATASETS.md §7.2)
    upper = [r for r in _repairs(report, "name-case") if "[AU+Emotion]" in r.row]
    assert len(upper) == 5 and {r.value for r in upper} == {"J"}
    assert not table["video"].str.contains("J").any()
    emotions = table.loc[table["type"] == "micro", "emotion"].value_counts().to_dict()
    if emotions:  # the ME label sheet lies beside the v2 sheet: the 7-class counts of docs/DATASETS.md §7.3
        assert emotions == {"disgust": 250, "surprise": 187, "others": 161, "fear": 86, "anger": 64, "sad": 57,
                            "happy": 55}


def test_real_casme3_part_c_counts(shared_annotations: Path) -> None:
    if not (shared_annotations / CASME3C_FILE).is_file():
        pytest.skip(f"{CASME3C_FILE} not available")
    table, report = read_intervals_with_report("casme3c", shared_annotations)
    assert table["type"].value_counts().to_dict() == {"macro": 303, "micro": 160}
    assert table["subject"].nunique() == 28 and not report.dropped and not report.repairs


# --- the table check shared with the metric and the formats ----------------------------------------------------


def test_validate_intervals_names_the_row_at_fault() -> None:
    good = pd.DataFrame({"video": ["v"], "onset": [3.0], "offset": [5], "type": ["Micro"]})
    checked = validate_intervals(good, "predicted")
    assert checked["onset"].dtype == "int64" and checked["type"].tolist() == ["micro"]
    cases = [
        (good.drop(columns="type"), "missing column"),
        (good.assign(onset=[3.5]), "row 0: onset is not an integer"),
        (good.assign(offset=[2]), "row 0: offset before onset"),
        (good.assign(type=["me"]), "row 0: type not one of"),
        (good.assign(video=[" "]), "row 0: empty video id"),
        (good.assign(onset=[True]), "onset is a boolean"),
    ]
    for table, message in cases:
        with pytest.raises(ValueError, match=message):
            validate_intervals(table, "predicted")


def test_every_reported_rule_is_documented() -> None:
    assert set(REPAIR_RULES) == {"fraction-rounded", "onset-zero", "offset-missing", "apex-missing", "apex-outside",
                                 "name-case"}
