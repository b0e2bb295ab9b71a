"""Labelled (onset, apex) pairs read from a sample table, and the errors of unusable samples."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from micronbert.data.labelled_pairs import SampleError, load_labelled_pairs
from tests.recognition_fixtures import synthetic_casme2_table


@pytest.fixture(scope="module")
def casme2_table(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return synthetic_casme2_table(tmp_path_factory.mktemp("synthetic"), subjects=3)


def test_pairs_are_read_at_model_size(casme2_table: pd.DataFrame) -> None:
    pairs = load_labelled_pairs(casme2_table, 32)
    assert pairs.onsets.shape == (len(casme2_table), 32, 32, 3) and pairs.onsets.dtype == np.uint8
    assert pairs.labels.tolist() == casme2_table["label"].astype(int).tolist()
    assert not np.array_equal(pairs.onsets, pairs.apexes)


def _broken(table: pd.DataFrame, tmp_path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """One sample per kind of bad input; returns the table and the expected message per clip."""
    bad = table.copy()
    frames = [list(f) for f in bad["frames"]]
    bad.loc[0, "onset"], bad.loc[0, "apex"] = int(bad.loc[0, "apex"]) + 1, int(bad.loc[0, "onset"]) + 1
    bad.loc[1, "apex"] = int(bad.loc[1, "offset"]) + 5
    apex_file = Path(frames[2][0]).with_name(f"reg_img{int(bad.loc[2, 'apex'])}.jpg")
    moved = tmp_path / "gone.jpg"
    apex_file.rename(moved)
    other = Path(frames[3][0]).with_name(f"reg_img{int(bad.loc[3, 'apex'])}.jpg")
    image = cv2.imread(str(other))
    cv2.imwrite(str(other), cv2.resize(image, (48, 40)))
    bad.loc[4, "label"] = pd.NA
    expected = {bad.loc[0, "clip"]: "after apex", bad.loc[1, "clip"]: "outside the clip",
                bad.loc[2, "clip"]: "frame file not found", bad.loc[3, "clip"]: "differ in size",
                bad.loc[4, "clip"]: "no class label"}
    return bad, expected


def test_bad_samples_are_named_or_skipped(casme2_table: pd.DataFrame, tmp_path: Path) -> None:
    copy_root = tmp_path / "copy"
    table = casme2_table.copy()
    # work on copies of the frames so the shared fixture stays intact
    new_frames = []
    for row in table.itertuples():
        folder = copy_root / row.subject.replace("/", "_") / row.clip
        folder.mkdir(parents=True)
        paths = []
        for frame in row.frames:
            target = folder / Path(frame).name
            target.write_bytes(Path(frame).read_bytes())
            paths.append(str(target))
        new_frames.append(paths)
    table["frames"] = new_frames
    bad, expected = _broken(table, tmp_path)
    with pytest.raises(SampleError, match=f"{bad.loc[0, 'subject']} {bad.loc[0, 'clip']}.*after apex"):
        load_labelled_pairs(bad, 32)
    pairs = load_labelled_pairs(bad, 32, skip_bad=True)
    assert len(pairs) == len(bad) - 5
    assert pairs.rows.tolist() == list(range(5, len(bad)))
    for (key, reason), (clip, words) in zip(pairs.skipped, expected.items()):
        assert clip in key and clip in reason and words in reason
