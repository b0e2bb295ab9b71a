"""Spotting raw recordings: the real videos beside the repository, and a synthetic long video written here."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from micronbert.cli import main
from micronbert.data.faces import NoFaceError
from micronbert.data.synthetic import LongVideoConfig, write_long_videos
from micronbert.spotting import (
    SpotConfig,
    read_megc_csv,
    recordings_in,
    spot_recording,
    write_recording_spot,
)

# The Pexels clip (472 frames at 23.98 fps): looking through its frames, the woman's smile rises from about video
# frame 240 (neutral lips at 228) to a broad smile by frame 336 and holds it to the end.
SMILE_RISE = (241, 337)  # frame numbers from 1


@pytest.fixture(scope="module")
def spotted(real_video):
    """Each real video spotted once by flow-roi with its defaults."""
    config = SpotConfig()
    spotter = config.build_spotter()
    results = {}

    def spot(name: str):
        if name not in results:
            results[name] = spot_recording(real_video / name, spotter, config.track)
        return results[name]

    return spot


def _frames_in(intervals: pd.DataFrame) -> set[int]:
    return {frame for row in intervals.itertuples() for frame in range(row.onset, row.offset + 1)}


def _faceless_frames(result) -> set[int]:
    return {frame for span in result.faceless() for frame in range(span["onset"], span["offset"] + 1)}


def test_the_face_is_followed_through_the_pexels_clip_and_its_smile_is_spotted_as_macro(spotted):
    result = spotted("WolfgangLanger_Pexels.mp4")

    assert result.summary.frames == 472 and result.faceless() == []
    macro = result.intervals[result.intervals["type"] == "macro"]
    assert ((macro["apex"] >= SMILE_RISE[0]) & (macro["apex"] <= SMILE_RISE[1])).any(), result.intervals
    assert set(result.intervals["type"]) <= {"micro", "macro"}
    assert (result.intervals["onset"] <= result.intervals["apex"]).all()
    assert (result.intervals["apex"] <= result.intervals["offset"]).all()
    assert result.intervals["offset"].max() <= 472 and result.intervals["onset"].min() >= 1


@pytest.mark.parametrize("name, faceless_side", [("face_noface.mov", "end"), ("noface_face.mov", "start")])
def test_faceless_frames_are_reported_and_nothing_is_spotted_there(spotted, name, faceless_side):
    result = spotted(name)

    spans = result.faceless()
    assert spans, "the cut to (or from) a scene without a face must be reported"
    longest = max(spans, key=lambda span: span["offset"] - span["onset"])
    # the long faceless stretch is the sky-and-text part: about 95 of the 169 frames, at the end or the start
    assert longest["offset"] - longest["onset"] + 1 >= 80
    assert (longest["offset"] == 169) if faceless_side == "end" else (longest["onset"] == 1)
    assert longest["reason"] and longest["end_s"] > longest["start_s"]
    assert not (_frames_in(result.intervals) & _faceless_frames(result))
    assert np.all(result.trace.contrast["micro"][np.isin(result.trace.frames, sorted(_faceless_frames(result)))] == 0)


def test_a_video_without_a_face_ends_with_a_clear_error(real_video):
    config = SpotConfig()
    with pytest.raises(NoFaceError, match="no face found in any of its 95 frames"):
        spot_recording(real_video / "no_face.mp4", config.build_spotter(), config.track)


def test_the_spot_command_writes_megc_csv_json_and_timeline(real_video, tmp_path, capsys):
    out = tmp_path / "spotted"

    assert main(["spot", str(real_video / "face_noface.mov"), "--out", str(out), "--json"]) == 0

    report = json.loads(capsys.readouterr().out)["recordings"][0]
    files = {kind: Path(path) for kind, path in report["files"].items()}
    assert sorted(files) == ["csv", "figure", "json"] and all(path.is_file() for path in files.values())
    assert files["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = read_megc_csv(files["csv"])
    assert table[["onset", "offset", "type"]].to_dict("records") == [
        {"onset": row["onset"], "offset": row["offset"], "type": row["type"]} for row in report["intervals"]]
    assert set(table["video"]) <= {"face_noface"}
    assert json.loads(files["json"].read_text())["faceless"] == report["faceless"] != []

    # a folder holding a good and a faceless recording: the good one is written, the other reported, status 1
    both = tmp_path / "both"
    both.mkdir()
    for name in ("face_noface.mov", "no_face.mp4"):
        (both / name).symlink_to(real_video / name)
    assert main(["spot", str(both), "--out", str(tmp_path / "two"), "--no-figure"]) == 1
    assert "no_face.mp4: " in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["face_noface.csv", "face_noface.json"]


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    """A 12-second CAS(ME)^2-like synthetic video (a 160-pixel face the OpenCV cascade finds), frames and mp4."""
    config = LongVideoConfig(subjects=1, duration_s=12, size=160, micro_per_minute=5, macro_per_minute=10,
                             blinks_per_minute=5, head_movements_per_minute=0)
    return write_long_videos(tmp_path_factory.mktemp("long") / "casme_sq", config).root


def test_a_frame_folder_and_its_video_are_spotted_alike(long_video, tmp_path):
    folder = next((long_video / "rawpic").glob("s*/*"))
    video = next((long_video / "rawvideo").glob("s*/*.mp4"))
    truth = json.loads((long_video / "synthetic_long_ground_truth.json").read_text())["videos"][0]["events"]
    config = SpotConfig.from_dict({"track": {"fps": 30.0}})
    spotter = config.build_spotter()

    from_frames = spot_recording(folder, spotter, config.track)
    from_video = spot_recording(video, spotter, config.track)

    assert from_frames.summary.frames == from_video.summary.frames == 360 and from_frames.faceless() == []
    macro = [event for event in truth if event["type"] == "macro"]
    for result in (from_frames, from_video):
        apexes = result.intervals["apex"].to_numpy()
        # every macro-expression of the video has a spotted apex inside it
        assert all(((apexes >= e["onset"]) & (apexes <= e["offset"])).any() for e in macro), result.intervals
    paths = write_recording_spot(from_frames, tmp_path)
    assert read_megc_csv(paths["csv"])["video"].unique().tolist() == [folder.name]


def test_recordings_in_finds_videos_and_frame_folders(long_video, tmp_path):
    folder = next((long_video / "rawpic").glob("s*/*"))
    assert recordings_in(folder) == [folder]
    assert recordings_in(folder.parent) == [folder]
    video = next((long_video / "rawvideo").glob("s*/*.mp4"))
    assert recordings_in(video) == [video]
    with pytest.raises(FileNotFoundError, match="recording not found"):
        recordings_in(tmp_path / "absent.mp4")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="not a video"):
        recordings_in(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="no video files, numbered frames or frame folders"):
        recordings_in(tmp_path)


def test_spot_config_checks_the_spotter_and_takes_the_crop_geometry_from_it():
    with pytest.raises(ValueError, match="spotter must be one of"):
        SpotConfig(spotter="optical")
    config = SpotConfig.from_dict({"flow_roi": {"flow": {"align": {"eye_distance": 0.4}}}})
    from micronbert.spotting.recording import tracking_for

    assert tracking_for(config.build_spotter(), config.track).eye_distance == 0.4
