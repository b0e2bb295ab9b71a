from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from micronbert.data.datasets import load, load_with_report
from micronbert.data.frames import frame_number, read_frame
from tests.data.fixture_trees import SAMM_APEX_OUTSIDE, SAMM_ROWS, build_samm

pytestmark = pytest.mark.filterwarnings("ignore::micronbert.data.datasets.DatasetWarning")


@pytest.mark.parametrize("header_row", [14, 1])
def test_header_is_located_and_subjects_padded(tmp_path: Path, header_row: int) -> None:
    table, report = load_with_report("samm", build_samm(tmp_path, header_row=header_row), check_frames=False)
    assert len(table) == len(SAMM_ROWS)
    assert list(table["subject"]) == [f"samm/{row[0]:03d}" for row in SAMM_ROWS]
    assert list(table["clip"]) == [row[1] for row in SAMM_ROWS]
    assert any(f"row {header_row}" in note for note in report.notes) == (header_row != 1)


def test_mixed_padding_and_grey_frames(tmp_path: Path) -> None:
    table = load("samm", build_samm(tmp_path)).set_index("clip")
    for _, clip, onset, _, offset, *_ in SAMM_ROWS:
        assert [frame_number(p) for p in table.loc[clip, "frames"]] == list(range(onset, offset + 1))
    assert Path(table.loc["006_1_2", "frames"][0]).name == "006_05562.jpg"
    assert Path(table.loc["009_3_1", "frames"][0]).name == "009_3577.jpg"
    image = read_frame(table.loc["006_1_2", "frames"][0])
    assert image.shape[2] == 3 and np.array_equal(image[..., 0], image[..., 2])


def test_emotions_aus_and_apex_outside_interval(tmp_path: Path) -> None:
    table, report = load_with_report("samm", build_samm(tmp_path))
    by_clip = table.set_index("clip")
    assert by_clip.loc["011_2_3", "emotion"] == "others"  # "Other" folded
    assert by_clip.loc["006_1_2", "action_units"] == [12, 15]
    assert by_clip.loc["006_1_2", "au_raw"] == "R12 + R15"
    assert by_clip.loc["011_2_3", "action_units"] == [14]  # first of "R14 or R15"
    row = by_clip.loc[SAMM_APEX_OUTSIDE]
    assert row["apex_source"] == "estimated" and row["onset"] <= row["apex"] <= row["offset"]
    assert any("apex 15 outside [10, 12]" in w for w in report.warnings)


def test_five_class_and_cropped_copy(tmp_path: Path) -> None:
    table = load("samm", build_samm(tmp_path, cropped=True), "samm-5class")
    five = ("anger", "contempt", "happiness", "surprise", "others")
    expected = [row for row in SAMM_ROWS if (row[6].lower() if row[6] != "Other" else "others") in five]
    assert len(table) == len(expected)
    assert all("SAMM_CROP" in frames[0] for frames in table["frames"])
