"""Repairs of annotated intervals (shared by every dataset reader), each one listed as a problem."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from micronbert.data.datasets.build import LoadOptions, RawSample, annotation_file, build_table, resolve_interval
from micronbert.data.table import LoadReport


@pytest.mark.parametrize("given, expected, problems", [
    ((10, 12, 15), (10, 12, 15), []),
    ((20, 12, 15), (None, 12, 15), ["onset 20 after apex 12 and offset 15; onset treated as missing"]),
    ((10, 14, 5), (10, 14, 14), ["offset 5 before onset 10 and apex 14; offset treated as missing",
                                 "offset missing; apex 14 used as offset"]),
    ((10, 7, 5), (None, 7, 7), ["onset 10 after offset 5; both treated as missing",
                                      "offset missing; apex 7 used as offset"]),
    ((10, None, 5), (None, None, None), ["onset 10 after offset 5; both treated as missing"]),
    ((10, 13, None), (10, 13, 13), ["offset missing; apex 13 used as offset"]),
    ((10, 30, 15), (10, None, 15), ["apex 30 outside [10, 15]; treated as missing"]),
    ((10, 3, None), (10, None, None), ["apex 3 outside [10, None]; treated as missing"]),
])
def test_interval_repairs(given: tuple, expected: tuple, problems: list[str]) -> None:
    result = resolve_interval(*given)
    assert (result.onset, result.apex, result.offset) == expected
    assert result.problems == problems


# ------------------------------------------------------------------------------ build_table: drops and warnings
def _frames(folder: Path, numbers: range | list[int]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for number in numbers:
        cv2.imwrite(str(folder / f"img{number}.png"), np.full((8, 8), number % 256, np.uint8))
    return folder


def _sample(folder: Path | None, onset: object = 1, apex: object = 3, offset: object = 5, **fields) -> RawSample:
    values = dict(dataset="demo", subject="s01", clip="c1", onset=onset, apex=apex, offset=offset,
                  emotion="happiness", fps=200.0, frames_dir=folder, source="sheet row 2")
    values.update(fields)
    return RawSample(**values)


def _build(*samples: RawSample, **options) -> tuple[pd.DataFrame, LoadReport]:
    report = LoadReport("demo")
    return build_table(samples, LoadOptions(**options), report), report


def test_a_sample_annotated_twice_is_kept_once(tmp_path: Path) -> None:
    folder = _frames(tmp_path / "c1", range(1, 6))

    table, report = _build(_sample(folder), _sample(folder, source="sheet row 3"))

    assert len(table) == 1
    assert [(d.key, d.reason) for d in report.dropped] == [("demo demo/s01 c1 @1", "duplicate sample (sheet row 3)")]


def test_frames_missing_on_disk_are_warned_about_and_the_rest_kept(tmp_path: Path) -> None:
    gaps = _frames(tmp_path / "gaps", [1, 2, 4, 5])
    short = _frames(tmp_path / "short", range(2, 5))

    table, report = _build(_sample(gaps, clip="gaps"), _sample(short, clip="short"))

    assert [len(frames) for frames in table["frames"]] == [4, 3]
    assert report.warnings == ["demo demo/s01 gaps @1: 1 frame missing between onset and offset",
                               "demo demo/s01 short @1: frames on disk run 2..4, annotation says 1..5"]
    assert report.dropped == []


@pytest.mark.parametrize("folder, reason", [
    ("elsewhere", "no frame files between onset 1 and offset 5 in {root}/elsewhere"),
    ("empty", "no frame files in {root}/empty"),
    ("absent", "frame folder not found: {root}/absent"),
    (None, "clip folder c1 not under the subject"),
])
def test_a_sample_without_usable_frames_is_dropped_with_the_folder_named(tmp_path: Path, folder, reason) -> None:
    _frames(tmp_path / "elsewhere", range(20, 25))
    (tmp_path / "empty").mkdir()
    sample = _sample(None if folder is None else tmp_path / folder,
                     frames_problem="clip folder c1 not under the subject")

    table, report = _build(sample)
    annotation_only, _ = _build(sample, check_frames=False)

    assert table.empty
    assert [d.reason for d in report.dropped] == [reason.format(root=tmp_path)]
    assert len(annotation_only) == 1 and annotation_only["frames"].iloc[0] == []


def test_an_unusable_interval_is_dropped_or_kept_without_frames(tmp_path: Path) -> None:
    sample = _sample(_frames(tmp_path / "c1", range(1, 6)), onset="n/a", apex=3, offset="?")

    table, report = _build(sample)
    kept, kept_report = _build(sample, check_frames=False)

    assert table.empty
    assert report.dropped[0].reason == "onset/offset unusable (sheet row 2)"
    assert len(kept) == 1 and pd.isna(kept["onset"].iloc[0])
    assert kept_report.warnings[-1].endswith("(sheet row 2): kept without a usable onset/offset (annotation only)")


def test_a_missing_apex_is_dropped_when_asked(tmp_path: Path) -> None:
    table, report = _build(_sample(_frames(tmp_path / "c1", range(1, 6)), apex="/"), missing_apex="drop")

    assert table.empty
    assert report.dropped[0].reason == "apex missing (missing_apex='drop')"


def test_positions_past_the_end_of_the_listing_drop_the_sample(tmp_path: Path) -> None:
    folder = _frames(tmp_path / "video", range(100, 110))

    inside, _ = _build(_sample(folder, onset=1, apex=4, offset=10, positions=True))
    outside, report = _build(_sample(folder, onset=1, apex=4, offset=11, positions=True))

    assert inside[["onset", "apex", "offset"]].iloc[0].tolist() == [100, 103, 109]
    assert outside.empty
    assert report.dropped[0].reason == f"offset position 11 outside the 10 frames of {folder}"


def test_a_missing_emotion_and_a_bad_label_are_warned_about(tmp_path: Path) -> None:
    table, report = _build(_sample(_frames(tmp_path / "c1", range(1, 6)), emotion=None, label="three"))

    assert len(table) == 1 and table["emotion"].iloc[0] is None and pd.isna(table["label"].iloc[0])
    assert "demo demo/s01 c1 @1 (sheet row 2): emotion missing" in report.warnings
    assert any(w.startswith("demo demo/s01 c1 @1 (sheet row 2): label ") for w in report.warnings)


def test_an_implausibly_long_interval_is_warned_about(tmp_path: Path) -> None:
    _, report = _build(_sample(None, onset=1, apex=2000, offset=3000), check_frames=False)

    assert report.warnings == [
        "demo demo/s01 c1 @1: onset-offset spans 15.0 s, implausibly long for a micro-expression"]


@pytest.mark.parametrize("options, message", [
    (dict(missing_apex="guess"), "missing_apex must be one of"),
    (dict(fps=0), "fps must be positive, got 0"),
])
def test_load_options_reject_bad_values(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        LoadOptions(**options)


def test_annotation_file_named_or_found(tmp_path: Path) -> None:
    (tmp_path / "CASME2-coding-20140508.xlsx").write_bytes(b"")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "CASME2-coding-20130101.xlsx").write_bytes(b"")
    report = LoadReport("casme2")

    chosen = annotation_file(tmp_path, LoadOptions(), [r"casme2.*coding.*\.xlsx"], "CASME II", report)

    assert chosen == tmp_path / "CASME2-coding-20140508.xlsx"
    assert report.warnings == ["several CASME II annotation files found; using CASME2-coding-20140508.xlsx, "
                               "ignoring ['CASME2-coding-20130101.xlsx']"]
    with pytest.raises(FileNotFoundError, match="CASME II annotation file not found: .*absent.xlsx"):
        annotation_file(tmp_path, LoadOptions(annotation=tmp_path / "absent.xlsx"), [], "CASME II", report)
