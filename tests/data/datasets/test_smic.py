from __future__ import annotations

from pathlib import Path

import pytest

from micronbert.data.datasets import load, load_with_report
from micronbert.data.frames import frame_number
from tests.data.fixture_trees import SMIC_CLIPS, SMIC_E_ROWS, build_smic, build_smic_e

pytestmark = pytest.mark.filterwarnings("ignore::micronbert.data.datasets.DatasetWarning")
HS = [clip for clip in SMIC_CLIPS if clip[0] == "HS"]


def _canonical(clip: str) -> str:
    subject, token, index = clip.split("_")
    return f"s{int(subject[1:]):02d}_{token}_{int(index):02d}"


def test_labels_from_folders_and_non_micro_skipped(tmp_path: Path) -> None:
    table = load("smic", build_smic(tmp_path), "smic-3class")
    assert len(table) == len(HS)
    assert not table["clip"].str.contains("non").any()
    by_clip = table.set_index("clip")
    classes = ("negative", "positive", "surprise")
    for _, subject, emotion, clip, first, last, apex in HS:
        row = by_clip.loc[_canonical(clip)]
        assert row["subject"] == f"smic/s{int(subject[1:]):02d}"
        assert (row["emotion"], row["label"]) == (emotion, classes.index(emotion))
        assert (row["onset"], row["offset"]) == (first, last)
        assert [frame_number(p) for p in row["frames"]] == list(range(first, last + 1))
        assert (row["apex"], row["apex_source"]) == (apex, "estimated")
    assert set(table["fps"]) == {100.0}


def test_midpoint_apex_when_chosen(tmp_path: Path) -> None:
    table = load("smic", build_smic(tmp_path), missing_apex="midpoint")
    assert (table["apex_source"] == "midpoint").all()
    assert (table["apex"] == table["onset"] + (table["offset"] - table["onset"]) // 2).all()


def test_vis_modality_is_a_separate_dataset_with_unconfirmed_fps(tmp_path: Path) -> None:
    table, report = load_with_report("smic", build_smic(tmp_path, cropped=True), modality="VIS", cropped=True)
    assert list(table["dataset"]) == ["smic_vis"] and list(table["fps"]) == [25.0]
    assert Path(table["frames"].iloc[0][0]).name.startswith("reg_image")
    assert any("unconfirmed" in w for w in report.warnings)


def test_smic_e_sheet_with_second_me_and_free_text(tmp_path: Path) -> None:
    table, report = load_with_report("smic", build_smic_e(tmp_path))
    expected = sum(1 + (row[4] is not None) for row in SMIC_E_ROWS)
    assert len(table) == expected
    first = table[table["clip"] == "s01_ne_01"].sort_values("onset")
    assert list(first["onset"]) == [559740, 559750]
    assert first["frames"].iloc[0] and frame_number(first["frames"].iloc[0][-1]) == 559746
    assert any("free text" in note for note in report.notes)
    assert len(load("smic", build_smic_e(tmp_path / "again"), check_frames=False)) == expected


def test_bad_options_and_damaged_folders_are_named(tmp_path: Path) -> None:
    root = build_smic(tmp_path)
    with pytest.raises(ValueError, match="unknown SMIC modality 'IR'"):
        load("smic", root, modality="IR")
    with pytest.raises(ValueError, match="unknown SMIC source 'sheets'"):
        load("smic", root, source="sheets")
    with pytest.raises(FileNotFoundError, match="no SMIC NIR folder"):
        load("smic", root, modality="NIR")

    hs = root / "SMIC_all_raw" / "HS"
    (hs / "s3").mkdir()                                           # a subject without a micro/ folder
    (hs / "s2" / "micro" / "surprise" / "s2_sur_02").mkdir()      # an empty clip folder
    (hs / "s11" / "micro" / "negative" / "s11_ne_03").rename(hs / "s11" / "micro" / "negative" / "s11_po_03")
    table, report = load_with_report("smic", root)
    assert len(table) == len(HS)
    assert any("SMIC-HS s3: no 'micro' folder" in warning for warning in report.warnings)
    assert [(item.key, item.reason.split(" in ")[0]) for item in report.dropped] == [
        ("smic smic/s02 s02_sur_02", "no frame files")]
    assert any("s11_po_03: clip name says positive, folder says negative; the folder is used" in warning
               for warning in report.warnings)
    assert table.set_index("clip").loc["s11_po_03", "emotion"] == "negative"
