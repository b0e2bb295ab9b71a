"""MEGC file formats: the documented example lines read back, round trips, and errors naming the file and line."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from micronbert.spotting import (
    LOG_DATABASES,
    read_megc_csv,
    read_spotting_log,
    read_str_csv,
    spotting_log,
    spotting_scores,
    write_megc_csv,
    write_spotting_log,
    write_str_csv,
)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_log_reads_the_documented_example_and_blocks(tmp_path: Path) -> None:
    path = _write(tmp_path / "log.txt", "1\n006_1 2324 2403 2310 2395 TP\n019_7   -   -   277   347   FP\n\n"
                                        "2\n15_0101 557 608 - - FN\n")
    blocks = read_spotting_log(path)
    assert list(blocks) == [1, 2] and LOG_DATABASES[1] == "samm_lv" and LOG_DATABASES[2] == "casme_sq"
    samm = blocks[1]
    assert samm.iloc[0].tolist() == ["006_1", 2324, 2403, 2310, 2395, "TP"]
    assert samm.iloc[1][["video", "pred_onset", "pred_offset", "result"]].tolist() == ["019_7", 277, 347, "FP"]
    assert samm["gt_onset"].isna().tolist() == [False, True]
    assert blocks[2].iloc[0][["video", "gt_onset", "gt_offset", "result"]].tolist() == ["15_0101", 557, 608, "FN"]


@pytest.mark.parametrize("text, line, message", [
    ("006_1 1 2 3 4 TP\n", 1, "must start with a database label"),
    ("3\n", 1, "'3' is not a database label"),
    ("1\n006_1 1 2 3 TP\n", 2, "expected 'video GT_onset"),
    ("1\n006_1 1 2 3 4 HIT\n", 2, "'HIT' is not one of"),
    ("1\n006_1 1 x 3 4 TP\n", 2, "'x' is not a frame number"),
    ("1\n006_1 - - 3 4 TP\n", 2, "a TP line needs both intervals"),
    ("1\n006_1 1 2 3 4 FP\n", 2, "'-' for GT"),
    ("1\n006_1 5 2 - - FN\n", 2, "GT offset 2 precedes its onset 5"),
    ("1\n006_1 5 - - - FN\n", 2, "one end only"),
    ("1\n006_1 1 2 - - FN\n1\n", 3, "appears twice"),
])
def test_log_errors_name_the_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = _write(tmp_path / "log.txt", text)
    with pytest.raises(ValueError, match=rf"log\.txt:{line}: .*{message}"):
        read_spotting_log(path)


def test_log_written_from_scored_predictions_reads_back(tmp_path: Path) -> None:
    truth = pd.DataFrame({"video": ["006_1", "006_1", "006_2"], "onset": [100, 400, 50], "offset": [180, 460, 90],
                          "type": ["macro", "micro", "micro"]})
    predicted = pd.DataFrame({"video": ["006_1", "006_2"], "onset": [105, 200], "offset": [175, 260],
                              "type": ["macro", "micro"]})
    log = spotting_log(predicted, truth)
    path = write_spotting_log(tmp_path / "out" / "log.txt", {1: log})
    assert path.read_text().splitlines() == ["1", "006_1 100 180 105 175 TP", "006_1 400 460 - - FN",
                                             "006_2 50 90 - - FN", "006_2 - - 200 260 FP"]
    back = read_spotting_log(path)[1]
    pd.testing.assert_frame_equal(back, log.drop(columns="type"))
    tp = int((back["result"] == "TP").sum())
    assert tp == spotting_scores(predicted, truth)["overall"].tp
    assert not list((tmp_path / "out").glob(".*.tmp"))  # written through a temporary file, renamed into place


def test_log_writer_refuses_bad_entries(tmp_path: Path) -> None:
    entry = {"video": "006_1", "gt_onset": 1, "gt_offset": 5, "pred_onset": None, "pred_offset": None,
             "result": "TP"}
    with pytest.raises(ValueError, match="block 1 row 0: a TP line needs both intervals"):
        write_spotting_log(tmp_path / "log.txt", {1: pd.DataFrame([entry])})
    with pytest.raises(ValueError, match="not a database label"):
        write_spotting_log(tmp_path / "log.txt", {7: pd.DataFrame([entry])})
    with pytest.raises(ValueError, match="video id '006 1'"):
        write_spotting_log(tmp_path / "log.txt", {1: pd.DataFrame([{**entry, "video": "006 1", "result": "FN"}])})
    assert not (tmp_path / "log.txt").exists()


@pytest.mark.parametrize("header", ["vid,onset,offset,type", "vid,pred_onset,pred_offset,type"])
def test_megc_csv_reads_both_headers(tmp_path: Path, header: str) -> None:
    path = _write(tmp_path / "cas_pred.csv", f"{header}\ndzw_d1,6,46,mae\n001_2,441,515,ME\n")
    table = read_megc_csv(path)
    assert table.values.tolist() == [["dzw_d1", 6, 46, "macro"], ["001_2", 441, 515, "micro"]]
    assert table["onset"].dtype == "int64"


@pytest.mark.parametrize("style, header", [("2023", "vid,onset,offset,type"),
                                           ("2022", "vid,pred_onset,pred_offset,type")])
def test_megc_csv_round_trip(tmp_path: Path, style: str, header: str) -> None:
    table = pd.DataFrame({"video": ["sub02", "sub02"], "onset": [1664, 10], "offset": [1700, 20],
                          "type": ["macro", "micro"]})
    path = write_megc_csv(tmp_path / "pred.csv", table, style)
    assert path.read_text().splitlines() == [header, "sub02,1664,1700,mae", "sub02,10,20,me"]
    pd.testing.assert_frame_equal(read_megc_csv(path), table)


@pytest.mark.parametrize("text, line, message", [
    ("video,onset,offset,type\n", 1, "header"),
    ("vid,onset,offset,type\nv,1,2\n", 2, "expected 4 values, got 3"),
    ("vid,onset,offset,type\nv,1,2,blink\n", 2, "type 'blink' is not one of"),
    ("vid,onset,offset,type\nv,1.5,2,me\n", 2, "'1.5' is not a frame number"),
    ("vid,onset,offset,type\nv,-1,2,me\n", 2, "'-1' is not a frame number"),
    ("vid,onset,offset,type\nv,9,2,me\n", 2, "offset 2 precedes onset 9"),
    ("vid,onset,offset,type\n,1,2,me\n", 2, "vid is empty"),
])
def test_megc_csv_errors_name_the_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = _write(tmp_path / "pred.csv", text)
    with pytest.raises(ValueError, match=rf"pred\.csv:{line}: .*{message}"):
        read_megc_csv(path)


def test_megc_csv_writer_refuses_what_the_format_cannot_hold(tmp_path: Path) -> None:
    table = pd.DataFrame({"video": ["v"], "onset": [1], "offset": [2], "type": ["blink"]})
    with pytest.raises(ValueError, match="row 0: type 'blink' has no MEGC code"):
        write_megc_csv(tmp_path / "p.csv", table)
    with pytest.raises(ValueError, match="row 0: video 'a,b'"):
        write_megc_csv(tmp_path / "p.csv", table.assign(type="micro", video="a,b"))
    with pytest.raises(ValueError, match="unknown MEGC CSV style"):
        write_megc_csv(tmp_path / "p.csv", table.assign(type="micro"), "2019")
    with pytest.raises(FileNotFoundError):
        read_megc_csv(tmp_path / "p.csv")


def test_str_csv_reads_the_documented_examples_and_round_trips(tmp_path: Path) -> None:
    path = _write(tmp_path / "gt.csv", "subject,video,onset,offset,emotion\n1,EP02_01f,45,85,happiness\n"
                                       "5,anger1,482,504,negative\n")
    table = read_str_csv(path)
    assert table.values.tolist() == [["1", "EP02_01f", 45, 85, "happiness"], ["5", "anger1", 482, 504, "negative"]]
    written = write_str_csv(tmp_path / "copy.csv", table)
    assert written.read_text() == path.read_text()
    pd.testing.assert_frame_equal(read_str_csv(written), table)


def test_str_csv_errors(tmp_path: Path) -> None:
    path = _write(tmp_path / "pred.csv", "subject,video,onset,offset,emotion\n1,EP02_01f,45,85,\n")
    with pytest.raises(ValueError, match=r"pred\.csv:2: emotion is empty"):
        read_str_csv(path)
    with pytest.raises(ValueError, match="header"):
        read_str_csv(_write(tmp_path / "bad.csv", "vid,onset,offset,type\n"))
    with pytest.raises(ValueError, match="missing column"):
        write_str_csv(tmp_path / "out.csv", pd.DataFrame({"video": ["v"], "onset": [1], "offset": [2]}))
