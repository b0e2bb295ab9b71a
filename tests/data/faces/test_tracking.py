"""Face tracking through long recordings: synthetic videos made here, and the real videos beside the repository."""
from __future__ import annotations

import math
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from micronbert.data.faces import OpenCVCascadeBackend
from micronbert.data.faces.tracking import (
    FACE_LOST,
    NO_FACE_DETECTED,
    UPDATE_DETECTED,
    UPDATE_MOVED,
    FaceTrackConfig,
    NoFaceError,
    TrackedFrame,
    TrackSummary,
    crops_at,
    read_face_clip,
    require_face,
    track_face,
)
from micronbert.data.synthetic import NuisanceConfig, Scene, SyntheticFace, video_codec

BACKGROUND = (90, 90, 90)
SIZE = 64  # crop side used in these tests


@pytest.fixture(scope="module")
def face_canvas() -> np.ndarray:
    """A 320x240 frame with a 160-pixel synthetic face (one the OpenCV cascades find, eyes included)."""
    face = Scene(SyntheticFace.sample(0), [], 30, 160, NuisanceConfig.none(), seed=0).frame(0)
    canvas = np.full((240, 320, 3), BACKGROUND, np.uint8)
    canvas[40:200, 80:240] = face
    return canvas


class CountingBackend(OpenCVCascadeBackend):
    """The OpenCV backend, counting its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def detect(self, image):
        self.calls += 1
        return super().detect(image)


def write_video(path: Path, frames: list[np.ndarray], fps: int = 30) -> Path:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream(video_codec(), rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def shifted(canvas: np.ndarray, dx: float, dy: float = 0.0) -> np.ndarray:
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(canvas, matrix, canvas.shape[1::-1], borderMode=cv2.BORDER_CONSTANT, borderValue=BACKGROUND)


def run(source, config: FaceTrackConfig, **kwargs) -> tuple[list[TrackedFrame], TrackSummary]:
    track = track_face(source, config, **kwargs)
    return list(track), track.summary


def crop_eyes(frame: TrackedFrame) -> np.ndarray:
    return frame.alignment.map_points(frame.eyes)


# ------------------------------------------------------------------------------------------ synthetic videos


def test_static_face_video_gives_one_fixed_alignment_and_stable_crops(tmp_path, face_canvas):
    video = write_video(tmp_path / "static.mp4", [face_canvas] * 30)
    backend = CountingBackend()

    frames, summary = run(video, FaceTrackConfig(size=SIZE), backend=backend)

    assert [f.index for f in frames] == list(range(30))
    assert all(f.crop is not None and f.crop.shape == (SIZE, SIZE, 3) and f.crop.dtype == np.uint8 for f in frames)
    assert len({id(f.alignment) for f in frames}) == 1
    assert [u.reason for u in summary.alignment_updates] == [UPDATE_DETECTED]
    crops = np.stack([f.crop for f in frames]).astype(np.float64)
    assert np.abs(np.diff(crops, axis=0)).mean(axis=(1, 2, 3)).max() < 0.5
    # detected once (a search and its refinement), never again: the face is followed by flow
    assert backend.calls == sum(summary.detections.values()) == 2
    assert summary.face_ranges[0].start == 0 and summary.face_ranges[0].end == 29
    assert summary.faceless_ranges == [] and len(summary.shots) == 1
    assert summary.codec in ("h264", "mpeg4") and summary.size == (320, 240) and summary.fps == pytest.approx(30)
    assert frames[-1].time == pytest.approx(29 / 30, abs=1e-3)


def test_moving_face_is_followed_and_realigned_past_the_threshold(face_canvas):
    config = FaceTrackConfig(size=SIZE, fps=30)
    truth = [(0.5 * k, 0.25 * k) for k in range(40)]
    frames, summary = run([shifted(face_canvas, dx, dy) for dx, dy in truth], config)

    start = np.array(frames[0].eyes)
    for frame, motion in zip(frames, truth):
        assert np.abs(np.array(frame.eyes) - start - motion).max() < 0.5
    updates = summary.alignment_updates
    assert updates[0].reason == UPDATE_DETECTED and len(updates) >= 4
    assert all(u.reason == UPDATE_MOVED and u.shift > config.realign_shift for u in updates[1:])
    # the alignment only changes at a recorded update, and the eyes never stray past the threshold in the crop
    changes = [f.index for prev, f in zip(frames, frames[1:]) if f.alignment is not prev.alignment]
    assert changes == [u.frame for u in updates[1:]]
    targets = np.array(config.align_config().target_eyes())
    distance = config.align_config().target_eye_distance
    for frame in frames:
        assert np.linalg.norm(crop_eyes(frame) - targets, axis=1).max() <= config.realign_shift * distance


def test_crops_at_reads_the_tracked_crops_again(face_canvas):
    config = FaceTrackConfig(size=SIZE, fps=30)
    source = [shifted(face_canvas, 0.5 * k, 0.25 * k) for k in range(30)] + [np.full_like(face_canvas, 20)] * 5
    frames, summary = run(source, config)
    wanted = [0, 7, 18, 29, 32]

    crops = crops_at(source, summary, wanted)

    assert sorted(crops) == [0, 7, 18, 29]  # frame 32 has no face
    for index in crops:
        np.testing.assert_array_equal(crops[index], frames[index].crop)
    assert crops_at(source, summary, []) == {}


def test_cut_to_an_empty_scene_and_back_is_reported(face_canvas):
    empty = np.full_like(face_canvas, (30, 120, 200))
    frames, summary = run([face_canvas] * 8 + [empty] * 8 + [face_canvas] * 8, FaceTrackConfig(size=SIZE, fps=30))

    assert [(s.start, s.end) for s in summary.shots] == [(0, 7), (8, 15), (16, 23)]
    assert all(s.cut_distance > 0.9 for s in summary.shots[1:])
    assert [(r.start, r.end, r.reason) for r in summary.faceless_ranges] == [(8, 15, NO_FACE_DETECTED)]
    assert [(r.start, r.end) for r in summary.face_ranges] == [(0, 7), (16, 23)]
    assert all((f.crop is None) == (8 <= f.index <= 15) for f in frames)
    assert all(f.reason == NO_FACE_DETECTED for f in frames[8:16])
    assert [(u.frame, u.shot, u.reason) for u in summary.alignment_updates] == [(0, 0, UPDATE_DETECTED),
                                                                               (16, 2, UPDATE_DETECTED)]
    assert [f.shot for f in frames] == [0] * 8 + [1] * 8 + [2] * 8


def test_face_leaving_the_frame_is_reported_lost(face_canvas):
    frames_in = [face_canvas] * 10 + [shifted(face_canvas, 12 * k) for k in range(1, 30)]
    frames, summary = run(frames_in, FaceTrackConfig(size=SIZE, fps=30))

    assert len(summary.shots) == 1
    lost = summary.faceless_ranges
    assert len(lost) == 1 and lost[0].reason == FACE_LOST and lost[0].end == len(frames_in) - 1
    assert 10 < lost[0].start < len(frames_in) - 1
    assert all(f.crop is None and f.reason == FACE_LOST for f in frames[lost[0].start:])
    assert any("face lost" in event for event in summary.events)
    assert summary.face_frames + summary.faceless_frames == len(frames_in)


def test_frame_folder_source(tmp_path, face_canvas):
    for k in range(6):
        cv2.imwrite(str(tmp_path / f"img{k + 1}.png"), face_canvas[:, :, ::-1])

    frames, summary = run(tmp_path, FaceTrackConfig(size=SIZE, fps=100))

    assert summary.codec == "frames" and summary.frames == 6 and summary.face_frames == 6
    assert frames[-1].time == pytest.approx(0.05)


def test_read_face_clip_returns_the_crops_and_refuses_long_clips(tmp_path, face_canvas):
    video = write_video(tmp_path / "clip.mp4", [face_canvas] * 12)

    crops, summary = read_face_clip(video, FaceTrackConfig(size=SIZE))
    assert crops.shape == (12, SIZE, SIZE, 3) and crops.dtype == np.uint8
    assert summary.face_frame_indices().tolist() == list(range(12))

    with pytest.raises(ValueError, match=r"clip\.mp4: 12 frames is longer than the 10-frame limit"):
        read_face_clip(video, FaceTrackConfig(size=SIZE), max_frames=10)


def test_no_face_at_all_raises_after_the_last_frame(face_canvas):
    blank = np.full_like(face_canvas, BACKGROUND)
    track = track_face([blank] * 5, FaceTrackConfig(size=SIZE, fps=30))
    seen = []
    with pytest.raises(NoFaceError, match=r"<frames>: no face found in any of its 5 frames") as caught:
        for frame in track:
            seen.append(frame)
    assert [f.crop for f in seen] == [None] * 5
    assert caught.value.summary is track.summary and track.summary.faceless_frames == 5
    with pytest.raises(NoFaceError):
        require_face(track.summary)


def test_bad_inputs_and_options_fail_clearly(tmp_path, face_canvas):
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        track_face(tmp_path / "missing.mp4")
    bogus = tmp_path / "notes.mp4"
    bogus.write_text("not a video")
    with pytest.raises(ValueError, match="notes.mp4"):
        track_face(bogus)
    with pytest.raises(ValueError, match="FaceTrackConfig.fps"):
        track_face([face_canvas])
    with pytest.raises(ValueError, match="frame 1"):
        list(track_face([face_canvas, face_canvas[:100]], FaceTrackConfig(size=SIZE, fps=30)))
    with pytest.raises(ValueError, match="size"):
        FaceTrackConfig(size=8)
    with pytest.raises(ValueError, match="cut_threshold"):
        FaceTrackConfig(cut_threshold=1.5)
    with pytest.raises(ValueError, match="backend"):
        FaceTrackConfig(backend="haar")
    with pytest.raises(ValueError, match="unknown option"):
        FaceTrackConfig.from_dict({"sise": 64})
    assert FaceTrackConfig.from_dict(FaceTrackConfig(size=96).to_dict()) == FaceTrackConfig(size=96)


# ------------------------------------------------------------------------------------------------ real videos


@pytest.fixture(scope="module")
def tracked(real_video):
    """Each real video tracked once (frame facts only, no crops kept), with its summary or its NoFaceError."""
    results = {}

    def track(name: str):
        if name not in results:
            facts, error = [], None
            stream = track_face(real_video / name, FaceTrackConfig(size=SIZE))
            try:
                for f in stream:
                    facts.append((f.index, f.crop is not None, f.shot, f.reason))
            except NoFaceError as err:
                error = err
            results[name] = (facts, stream.summary, error)
        return results[name]

    return track


def test_face_is_followed_through_the_pexels_clip(tracked):
    facts, summary, error = tracked("WolfgangLanger_Pexels.mp4")

    assert error is None and summary.frames == len(facts) == 472
    with_face = sum(has_face for _, has_face, _, _ in facts)
    assert with_face >= 0.95 * 472, summary.describe()
    assert len(summary.shots) == 1
    # detection ran on a few frames only; the rest was tracking
    assert sum(summary.detections.values()) < 0.1 * 472


def test_face_then_cut_to_no_face(tracked):
    facts, summary, error = tracked("face_noface.mov")

    assert error is None and summary.codec == "hevc" and summary.size == (960, 540)
    first_faceless = next(i for i, has_face, _, _ in facts if not has_face)
    assert 68 <= first_faceless <= 76
    assert all(has_face for _, has_face, _, _ in facts[:first_faceless])
    assert [(r.start, r.end, r.reason) for r in summary.faceless_ranges] == [
        (first_faceless, 168, NO_FACE_DETECTED)]
    assert any(68 <= s.start <= 76 for s in summary.shots[1:])


def test_no_face_then_cut_to_a_face(tracked):
    facts, summary, error = tracked("noface_face.mov")

    assert error is None and summary.codec == "hevc"
    first_face = next(i for i, has_face, _, _ in facts if has_face)
    assert 90 <= first_face <= 100
    assert summary.faceless_ranges[0].start == 0 and summary.faceless_ranges[0].end == first_face - 1
    assert summary.faceless_ranges[0].reason == NO_FACE_DETECTED
    assert any(s.start == first_face for s in summary.shots)
    assert sum(has_face for _, has_face, _, _ in facts[first_face:]) >= 0.9 * (169 - first_face)


def test_video_without_a_face_ends_with_a_clear_error(tracked):
    facts, summary, error = tracked("no_face.mp4")

    assert isinstance(error, NoFaceError)
    assert "no_face.mp4" in str(error) and "no face found" in str(error)
    assert len(facts) == summary.frames == 95 and not any(has_face for _, has_face, _, _ in facts)
    assert [(r.start, r.end, r.reason) for r in summary.faceless_ranges] == [(0, 94, NO_FACE_DETECTED)]


def test_hevc_decodes_frame_by_frame(real_video):
    with track_face(real_video / "noface_face.mov", FaceTrackConfig(size=SIZE)) as track:
        first = [next(track) for _ in range(3)]
    assert track.summary.codec == "hevc" and track.summary.size == (960, 540)
    assert [f.index for f in first] == [0, 1, 2]
    times = [f.time for f in first]
    assert times[0] == 0.0 and all(b > a for a, b in zip(times, times[1:]))
    assert all(math.isfinite(t) for t in times)
