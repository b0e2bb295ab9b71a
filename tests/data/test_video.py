"""Frame sources: discovery, folders, videos, fps and the problems each must report by file."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from micronbert.data.synthetic import video_codec
from micronbert.data.video import SourceSpec, check_fps, decode_frames, discover_sources, read_manifest, source_fps


def write_frames(folder: Path, count: int, size: tuple[int, int] = (32, 32), start: int = 1) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        path = folder / f"img{start + k}.png"
        cv2.imwrite(str(path), np.full((*size, 3), 10 * k, np.uint8))
        paths.append(path)
    return paths


def write_video(path: Path, count: int, fps: int = 25, size: int = 32) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream(video_codec(), rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        for k in range(count):
            frame = np.full((size, size, 3), 20 * k % 256, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def test_discovery_expands_trees_and_reports_empty_folders(tmp_path):
    write_frames(tmp_path / "data" / "frames" / "vid01", 3)
    video = write_video(tmp_path / "data" / "videos" / "a.mp4", 4)
    (tmp_path / "data" / "frames" / "vid02").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    issues = []
    specs = discover_sources([tmp_path / "data", tmp_path / "missing", tmp_path / "notes.txt"], issues)
    assert [s.path for s in specs] == [tmp_path / "data" / "frames" / "vid01", video]
    assert [s.is_video for s in specs] == [False, True]
    reported = {issue.path: issue.problem for issue in issues}
    assert "no frames" in reported[str(tmp_path / "data" / "frames" / "vid02")]
    assert "does not exist" in reported[str(tmp_path / "missing")]
    assert "not a video" in reported[str(tmp_path / "notes.txt")]


def test_a_folder_with_no_frames_at_all_is_reported(tmp_path):
    (tmp_path / "empty").mkdir()
    issues = []
    assert discover_sources([tmp_path / "empty"], issues) == []
    assert issues[0].path == str(tmp_path / "empty")


def test_folder_frames_come_in_numeric_order_and_bad_frames_are_named(tmp_path):
    paths = write_frames(tmp_path / "clip", 4, start=9)   # img9 .. img12: numeric, not lexical order
    paths[1].write_bytes(b"")                               # zero bytes
    paths[2].write_bytes(b"not an image")                   # undecodable
    frames = list(decode_frames(SourceSpec(tmp_path / "clip")))
    assert [f.label for f in frames] == [str(p) for p in paths]
    assert frames[0].image is not None and frames[3].image is not None
    assert frames[1].image is None and frames[1].issue.path == str(paths[1]) and "empty" in frames[1].issue.problem
    assert frames[2].image is None and frames[2].issue.path == str(paths[2])


def test_a_frame_of_another_size_is_reported_and_left_out(tmp_path):
    paths = write_frames(tmp_path / "clip", 3)
    cv2.imwrite(str(paths[2]), np.zeros((40, 32, 3), np.uint8))
    frames = list(decode_frames(SourceSpec(tmp_path / "clip")))
    assert frames[2].image is None
    assert frames[2].issue.path == str(paths[2]) and "32x40" in frames[2].issue.problem
    assert all(f.image is not None for f in frames[:2])


def test_video_frames_and_frame_rate(tmp_path):
    video = write_video(tmp_path / "clip.mp4", 6, fps=25)
    frames = list(decode_frames(SourceSpec(video)))
    assert len(frames) == 6 and all(f.image.shape == (32, 32, 3) for f in frames)
    assert abs(int(frames[3].image.mean()) - 60) <= 3
    assert source_fps(SourceSpec(video), folder_fps=None) == pytest.approx(25.0)
    assert source_fps(SourceSpec(video, fps=100.0), folder_fps=None) == 100.0


def test_an_unreadable_video_is_named(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="broken.mp4"):
        source_fps(SourceSpec(bad), folder_fps=None)
    with pytest.raises(ValueError, match="broken.mp4"):
        list(decode_frames(SourceSpec(bad)))


@pytest.mark.parametrize("fps", [0, -5, float("nan"), None])
def test_invalid_frame_rates_are_refused_with_the_source_named(fps):
    with pytest.raises(ValueError, match="clip7"):
        check_fps(fps, "clip7")


def test_a_frame_folder_needs_a_frame_rate(tmp_path):
    write_frames(tmp_path / "clip", 2)
    with pytest.raises(ValueError, match="clip"):
        source_fps(SourceSpec(tmp_path / "clip"), folder_fps=None)
    assert source_fps(SourceSpec(tmp_path / "clip"), folder_fps=200) == 200.0


def test_manifest_resolves_paths_and_checks_fps(tmp_path):
    (tmp_path / "list.csv").write_text("path,fps\nclips/a,200\n/abs/b.mp4,\n")
    specs = read_manifest(tmp_path / "list.csv")
    assert specs == [SourceSpec(tmp_path / "clips" / "a", 200.0), SourceSpec(Path("/abs/b.mp4"), None)]
    (tmp_path / "zero.csv").write_text("path,fps\nclips/a,0\n")
    with pytest.raises(ValueError, match=r"zero.csv, row 2"):
        read_manifest(tmp_path / "zero.csv")
    (tmp_path / "nopath.csv").write_text("file,fps\na,1\n")
    with pytest.raises(ValueError, match="'path' column"):
        read_manifest(tmp_path / "nopath.csv")


@pytest.mark.parametrize("text, message", [
    ("path,fps\n", "lists no sources"),
    ("path,fps\nclips/a,200\n ,25\n", r"list.csv, row 3: empty path"),
    ("path,fps\nclips/a,fast\n", r"list.csv, row 2: fps 'fast' is not a number"),
])
def test_a_bad_manifest_row_is_named(tmp_path, text, message):
    (tmp_path / "list.csv").write_text(text)
    with pytest.raises(ValueError, match=message):
        read_manifest(tmp_path / "list.csv")


def test_a_missing_manifest_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest not found: .*absent.csv"):
        read_manifest(tmp_path / "absent.csv")


def test_a_file_that_is_not_a_video_is_reported_not_read(tmp_path):
    (tmp_path / "notes.txt").write_text("subject 1")
    video = write_video(tmp_path / "clip.mp4", 2)
    issues = []

    specs = discover_sources([tmp_path / "notes.txt", video], issues)

    assert specs == [SourceSpec(video)]
    assert [(issue.path, issue.problem.split(" (")[0]) for issue in issues] == [
        (str(tmp_path / "notes.txt"), "not a video file")]


def test_a_file_with_no_video_stream_is_named(tmp_path):
    sound = tmp_path / "sound.mp4"  # audio only (WAV data under a video name)
    with av.open(str(sound), mode="w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))

    with pytest.raises(ValueError, match="sound.mp4: file holds no video stream"):
        list(decode_frames(SourceSpec(sound)))
    with pytest.raises(ValueError, match="sound.mp4: file holds no video stream"):
        source_fps(SourceSpec(sound), folder_fps=None)
