"""Following one face through a long recording, streaming: detection once per shot, cheap tracking in between.

:func:`track_face` decodes a video (PyAV, H.264 and HEVC alike), a folder of frames or an iterable of RGB arrays
one frame at a time and yields a :class:`TrackedFrame` for every frame: its index, time, shot, and the aligned
face crop (the similarity alignment of :mod:`micronbert.data.faces.align`), or None with the reason when the
frame has no face. Memory does not grow with the length of the video: only the previous frame (small and grey)
and the current track are kept, plus the summary's records (about 1 KB per alignment update).

How the face is followed (the numbers are from ``benchmarks/bench_tracking.py`` on a shared 2-core CPU):

- **Shots.** A cut is declared when the colour histogram (8 hue x 4 saturation x 4 value bins, on a subsampled
  frame) of a frame differs from the previous frame's by more than ``cut_threshold`` (total variation distance,
  0 to 1; on the real test videos cuts measure 0.95-1.0 and consecutive frames of one shot at most 0.05). Every
  cut starts a new shot, drops the track and searches for the face at once.
- **Detection** (the face backend; the OpenCV cascades take 200-450 ms a call when a face is present, 30-60 ms
  on a frame without one) runs only: to search for a face on the whole frame downscaled to ``search_side``, at
  the first frame of a shot and, while no face is followed, every ``search_interval_s``; once more on a window
  twice the size of a face just found, with the face at most ``verify_face_px`` wide, to place the eyes more
  precisely; and every ``verify_interval_s`` on that window to confirm that the face is still there.
- **Tracking** between detections: pyramidal Lucas-Kanade optical flow of corner points inside the face box, on
  a grey copy downscaled so that the face is about ``track_face_px`` wide, checked forward and backward, and one
  similarity transform (RANSAC) per frame that moves the box and the two eye centres. Measured against the
  backend's eyes on full frames, it is as accurate as re-detecting in a window on every frame (median error 1-2 %
  of the inter-ocular distance), jitters less between frames (a third as much on a still face) and costs about
  4.5 ms per frame, crop included, instead of 280-375 ms; template matching of the face box is as cheap but
  follows translation only and drifts (4-9 % error). Flow also follows the faces the frontal cascade misses
  (three-quarter views, looking down).
- **The alignment stays fixed** within a stable stretch: a new one is computed from the tracked eyes only when an
  eye has left its place in the crop by more than ``realign_shift`` of the inter-ocular distance (reason
  ``"face moved"``), when a confirmation found the eyes more than ``drift_tolerance`` away from the tracked ones
  and that moved them past the same threshold (``"corrected by re-detection"``), or when a new track starts
  (``"face detected"``). Every update is recorded (:class:`AlignmentUpdate`) with its matrix, so that a consumer
  comparing two frames of different stretches can tell. At 0.1 an eye strays at most 8 px from its place in a
  224-pixel crop; a still subject keeps one alignment for seconds, a very animated one (the Pexels test clip)
  changes it about three times a second (six times at 0.05).
- **Losing the face.** The track is dropped when the flow fails (too few consistent points, an implausible jump,
  the face leaving the frame) or when no confirmation succeeded for ``lost_after_s``; the face is then searched
  for again at once and every ``search_interval_s``.

Frames without a face are yielded with ``crop=None`` and reported as ranges with their reason:
``"no face detected"`` (no face found in this shot since its start or since the last search, at most
``search_interval_s`` earlier) or ``"face lost"`` (the shot had a tracked face that was lost). Nothing is
invented. A source in which no frame has a face ends with :class:`NoFaceError` (naming the file and carrying the
complete :class:`TrackSummary`) raised by the iterator after its last frame, so that no caller can miss it;
:func:`require_face` applies the same check to a summary.

    track = track_face("interview.mp4", FaceTrackConfig(size=224))
    for frame in track:
        if frame.crop is not None:
            ...
    print(track.summary.describe())
"""
from __future__ import annotations

import bisect
import dataclasses
import math
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from micronbert.config import Config
from micronbert.data.faces.align import AlignConfig, Alignment, similarity_from_eyes
from micronbert.data.faces.backends import FaceBackend, FaceDetection, Point, make_backend
from micronbert.data.frames import list_frames, read_frame, to_grey
from micronbert.data.transforms import Box
from micronbert.data.video import check_fps

NO_FACE_DETECTED = "no face detected"
FACE_LOST = "face lost"

UPDATE_DETECTED = "face detected"
UPDATE_MOVED = "face moved"
UPDATE_CORRECTED = "corrected by re-detection"

BACKEND_NAMES: tuple[str, ...] = ("auto", "opencv", "mediapipe", "dlib")
CLIP_MAX_FRAMES = 1000
_PURPOSES = ("search", "refine", "verify")

_CONFIRM_IOU = 0.3  # a detection overlapping the tracked box this much confirms the track
_REANCHOR_IOU = 0.5  # below this overlap the detection replaces the tracked box and eyes
_MAX_STEP_SCALE = 1.25  # largest plausible change of face size between consecutive frames
_MAX_STEP_ROTATION_DEG = 20.0
_FORWARD_BACKWARD_PX = 1.0  # working pixels
_RANSAC_PX = 1.0  # working pixels
_MIN_INLIER_SHARE = 0.5
_MAX_POINTS = 80


class NoFaceError(ValueError):
    """No frame of a source had a face; ``summary`` holds the complete :class:`TrackSummary`."""

    def __init__(self, message: str, summary: TrackSummary) -> None:
        super().__init__(message)
        self.summary = summary


@dataclass(frozen=True)
class FaceTrackConfig(Config):
    """Parameters of :func:`track_face` (the module docstring says what each step does).

    ``size``, ``eye_distance``, ``eye_height`` and ``margin``: the geometry of the aligned crop, as in
    :class:`~micronbert.data.faces.align.AlignConfig`. ``backend``: the face backend (``make_backend`` name).
    ``fps``: the frame rate, overriding the video's own; needed for frame folders and arrays.
    ``search_side``: longer side of the frame searched for a face (faces under about 20 px there are missed).
    ``search_interval_s``, ``verify_interval_s``, ``lost_after_s``: how often to search while no face is followed,
    how often to confirm a followed face, and after how long without a confirmation it counts as lost.
    ``verify_face_px`` and ``track_face_px``: the face width at which it is confirmed and followed.
    ``realign_shift`` and ``drift_tolerance``: fractions of the inter-ocular distance (new alignment; eyes reset
    from a confirmation). ``cut_threshold``: histogram distance of a shot cut. ``min_points``: fewest flow points
    that agree for a frame to be followed.
    """

    size: int = 224
    eye_distance: float = 0.36
    eye_height: float = 0.35
    margin: float = 0.0
    backend: str = "opencv"
    fps: float | None = None
    search_side: int = 320
    search_interval_s: float = 0.2
    verify_interval_s: float = 2.0
    verify_face_px: int = 160
    lost_after_s: float = 5.0
    track_face_px: int = 96
    realign_shift: float = 0.1
    drift_tolerance: float = 0.15
    cut_threshold: float = 0.3
    min_points: int = 8

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 16:
            raise ValueError(f"size must be an int >= 16, got {self.size!r}")
        self.align_config()
        if self.backend not in BACKEND_NAMES:
            raise ValueError(f"backend must be one of {', '.join(BACKEND_NAMES)}, got {self.backend!r}")
        if self.fps is not None:
            check_fps(self.fps, "FaceTrackConfig.fps")
        for name, low in (("search_side", 64), ("verify_face_px", 32), ("track_face_px", 24), ("min_points", 3)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        for name in ("search_interval_s", "verify_interval_s", "lost_after_s"):
            _require_positive(name, getattr(self, name))
        for name in ("realign_shift", "drift_tolerance", "cut_threshold"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 < value < 1.0):
                raise ValueError(f"{name} must be in (0, 1), got {value!r}")

    def align_config(self) -> AlignConfig:
        """The crop geometry as an :class:`AlignConfig`."""
        return AlignConfig(output_size=self.size, eye_distance=self.eye_distance, eye_height=self.eye_height,
                           margin=self.margin)


def _require_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")


@dataclass(frozen=True)
class TrackedFrame:
    """One frame of a tracked source.

    ``crop``: the aligned face, ``(size, size, 3)`` RGB uint8, or None when the frame has no face (``reason``
    says why). ``alignment``: the transform that made the crop; ``box``: the tracked face box ``(x, y, w, h)``
    and ``eyes`` the tracked eye centres (image-left first), in source pixels; all None without a face.
    ``time``: seconds since the first frame (from the timestamps of a video, else ``index / fps``).
    """

    index: int
    time: float
    shot: int
    crop: np.ndarray | None = field(repr=False)
    alignment: Alignment | None = field(repr=False)
    box: Box | None
    eyes: tuple[Point, Point] | None
    reason: str | None = None


@dataclass(frozen=True)
class FrameRange:
    """Frames ``start`` to ``end`` (both included)."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True)
class FacelessRange(FrameRange):
    """Consecutive frames without a face, all for the same ``reason``."""

    reason: str = NO_FACE_DETECTED


@dataclass(frozen=True)
class Shot(FrameRange):
    """One shot; ``cut_distance`` is the histogram distance that started it (None for the first)."""

    index: int = 0
    cut_distance: float | None = None


@dataclass(frozen=True)
class AlignmentUpdate:
    """A new alignment from frame ``frame`` on: why, and how far the eyes had moved (fraction of the
    inter-ocular distance in the crop; None for a new track)."""

    frame: int
    time: float
    shot: int
    reason: str
    shift: float | None
    alignment: Alignment = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"frame": self.frame, "time": round(self.time, 4), "shot": self.shot, "reason": self.reason,
                "shift": None if self.shift is None else round(self.shift, 4), **self.alignment.to_dict()}


@dataclass
class TrackSummary:
    """What :func:`track_face` found in one source, complete once the iteration ends.

    ``size`` is ``(width, height)``; ``detections`` counts backend calls by purpose (``search``, ``refine``,
    ``verify``) and ``detection_seconds`` their time by purpose; ``seconds`` is the wall time of the whole run.
    """

    source: str
    fps: float
    codec: str
    backend: str
    frames: int = 0
    size: tuple[int, int] | None = None
    duration_s: float = 0.0
    shots: list[Shot] = field(default_factory=list)
    face_ranges: list[FrameRange] = field(default_factory=list)
    faceless_ranges: list[FacelessRange] = field(default_factory=list)
    detections: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_PURPOSES, 0))
    detection_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_PURPOSES, 0.0))
    alignment_updates: list[AlignmentUpdate] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def face_frames(self) -> int:
        return sum(r.length for r in self.face_ranges)

    @property
    def faceless_frames(self) -> int:
        return sum(r.length for r in self.faceless_ranges)

    def face_frame_indices(self) -> np.ndarray:
        """Indices of the frames with a face, in order (the frames of :func:`read_face_clip`'s crops)."""
        parts = [np.arange(r.start, r.end + 1) for r in self.face_ranges]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description."""
        return {
            "source": self.source, "frames": self.frames, "fps": self.fps,
            "size": None if self.size is None else list(self.size), "codec": self.codec, "backend": self.backend,
            "duration_s": round(self.duration_s, 4), "face_frames": self.face_frames,
            "faceless_frames": self.faceless_frames,
            "shots": [{"index": s.index, "start": s.start, "end": s.end,
                       "cut_distance": None if s.cut_distance is None else round(s.cut_distance, 4)}
                      for s in self.shots],
            "face_ranges": [[r.start, r.end] for r in self.face_ranges],
            "faceless_ranges": [{"start": r.start, "end": r.end, "reason": r.reason} for r in self.faceless_ranges],
            "detections": dict(self.detections),
            "detection_seconds": {k: round(v, 3) for k, v in self.detection_seconds.items()},
            "alignment_updates": [u.to_dict() for u in self.alignment_updates],
            "events": list(self.events), "seconds": round(self.seconds, 3),
        }

    def describe(self) -> str:
        """A short human-readable account (for logs and reports)."""
        faceless = "; ".join(f"frames {r.start}-{r.end}: {r.reason}" for r in self.faceless_ranges) or "none"
        width, height = self.size or (0, 0)
        return (f"{self.source}: {self.frames} frames ({width}x{height}, {self.codec}, {self.fps:.2f} fps), "
                f"{len(self.shots)} shot(s), a face on {self.face_frames} frames; without a face: {faceless}; "
                f"{sum(self.detections.values())} detections, {len(self.alignment_updates)} alignment(s); "
                f"{self.seconds:.1f} s")


def require_face(summary: TrackSummary) -> TrackSummary:
    """``summary`` itself, or :class:`NoFaceError` naming the source when no frame had a face."""
    if summary.face_frames == 0:
        raise NoFaceError(
            f"{summary.source}: no face found in any of its {summary.frames} frames "
            f"({len(summary.shots)} shot(s), {summary.detections['search']} searches with the "
            f"{summary.backend} face backend)", summary)
    return summary


# ---------------------------------------------------------------------------------------------------- sources


@dataclass
class _Source:
    name: str
    fps: float
    codec: str
    expected_frames: int | None
    frames: Iterator[tuple[np.ndarray, float | None]]  # RGB frame, timestamp in seconds if known


def _open_source(video_or_frames: str | os.PathLike[str] | Iterable[np.ndarray], fps: float | None) -> _Source:
    if isinstance(video_or_frames, (str, os.PathLike)):
        path = Path(video_or_frames)
        if not path.exists():
            raise FileNotFoundError(f"video not found: {path}")
        return _folder_source(path, fps) if path.is_dir() else _video_source(path, fps)
    if isinstance(video_or_frames, np.ndarray) and video_or_frames.ndim != 4:
        raise ValueError(f"an array of frames must be (T, H, W, 3), got shape {video_or_frames.shape}")
    rate = check_fps(fps, "frames given as arrays (set FaceTrackConfig.fps)")
    return _Source("<frames>", rate, "arrays", len(video_or_frames) if hasattr(video_or_frames, "__len__") else None,
                   ((_checked_array(a, i), None) for i, a in enumerate(video_or_frames)))


def _checked_array(image: np.ndarray, index: int) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise ValueError(f"frame {index}: expected an (H, W, 3) RGB uint8 array, got {type(image).__name__} "
                         f"of shape {shape}")
    return image


def _folder_source(folder: Path, fps: float | None) -> _Source:
    paths = list_frames(folder)
    if not paths:
        raise ValueError(f"{folder}: folder holds no frames")
    rate = check_fps(fps, f"frame folder {folder} (set FaceTrackConfig.fps)")
    return _Source(str(folder), rate, "frames", len(paths), ((read_frame(p), None) for p in paths))


def _video_source(path: Path, fps: float | None) -> _Source:
    try:
        container = av.open(str(path))
    except av.FFmpegError as err:
        raise ValueError(f"{path}: cannot be opened as a video ({err})") from None
    if not container.streams.video:
        container.close()
        raise ValueError(f"{path}: file holds no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    rate = fps if fps is not None else stream.average_rate or stream.guessed_rate
    try:
        rate = check_fps(float(rate) if rate else None, f"video {path}")
    except ValueError:
        container.close()
        raise
    return _Source(str(path), rate, stream.codec_context.name, stream.frames or None,
                   _decode(container, stream, path))


def _decode(container: Any, stream: Any, path: Path) -> Iterator[tuple[np.ndarray, float | None]]:
    count = 0
    try:
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24"), frame.time
            count += 1
    except av.FFmpegError as err:
        raise ValueError(f"{path}: video cannot be decoded after {count} frames ({err})") from None
    finally:
        container.close()
    if count == 0:
        raise ValueError(f"{path}: video holds no frames")


# -------------------------------------------------------------------------------------------------- geometry


def _iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    width = min(ax + aw, bx + bw) - max(ax, bx)
    height = min(ay + ah, by + bh) - max(ay, by)
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / (aw * ah + bw * bh - inter)


def _move_box(box: Box, step: np.ndarray) -> Box:
    """The box whose centre is moved by the similarity ``step`` and whose sides are scaled by it."""
    x, y, w, h = box
    centre = step[:, :2] @ np.array([x + w / 2, y + h / 2]) + step[:, 2]
    scale = math.hypot(step[0, 0], step[1, 0])
    return (float(centre[0] - scale * w / 2), float(centre[1] - scale * h / 2), w * scale, h * scale)


def _move_points(points: tuple[Point, Point], step: np.ndarray) -> tuple[Point, Point]:
    moved = np.asarray(points, dtype=np.float64) @ step[:, :2].T + step[:, 2]
    return (float(moved[0, 0]), float(moved[0, 1])), (float(moved[1, 0]), float(moved[1, 1]))


def _eye_shift(eyes: tuple[Point, Point], other: tuple[Point, Point]) -> float:
    """The larger displacement of the two eyes, as a fraction of the inter-ocular distance of ``other``."""
    distance = math.dist(other[0], other[1]) or 1.0
    return max(math.dist(eyes[0], other[0]), math.dist(eyes[1], other[1])) / distance


def _to_source(face: FaceDetection, x0: int, y0: int, sx: float, sy: float) -> FaceDetection:
    """A detection made on a crop at ``(x0, y0)`` resized by ``(sx, sy)``, in source pixels."""
    x, y, w, h = face.box

    def point(p: Point) -> Point:
        return (x0 + p[0] / sx, y0 + p[1] / sy)

    return dataclasses.replace(face, box=(x0 + x / sx, y0 + y / sy, w / sx, h / sy),
                               left_eye=point(face.left_eye), right_eye=point(face.right_eye))


# ------------------------------------------------------------------------------------------------ components


class CutDetector:
    """Colour-histogram distance between consecutive frames, the measure of a shot cut (module docstring)."""

    def __init__(self) -> None:
        self._previous: np.ndarray | None = None

    def distance(self, rgb: np.ndarray) -> float | None:
        """Total variation distance (0 to 1) to the previous frame's histogram; None for the first frame."""
        step = max(1, max(rgb.shape[:2]) // 96)
        hsv = cv2.cvtColor(np.ascontiguousarray(rgb[::step, ::step]), cv2.COLOR_RGB2HSV)
        histogram = cv2.calcHist([hsv], [0, 1, 2], None, [8, 4, 4], [0, 180, 0, 256, 0, 256]).ravel()
        histogram /= max(float(histogram.sum()), 1.0)
        previous, self._previous = self._previous, histogram
        return None if previous is None else 0.5 * float(np.abs(histogram - previous).sum())


class _FlowTracker:
    """Lucas-Kanade flow of corner points inside the face box, one similarity per frame (source pixels)."""

    def __init__(self, face_px: int, min_points: int) -> None:
        self.face_px = face_px
        self.min_points = min_points
        self.scale = 1.0
        self._previous: np.ndarray | None = None
        self._points = np.zeros((0, 1, 2), np.float32)
        self._seeded = 0
        self.failure = ""

    def start(self, rgb: np.ndarray, box: Box) -> None:
        """Begin following the face in ``box`` from this frame."""
        self.scale = min(1.0, self.face_px / max(box[2], 1.0))
        self._previous = self._working(rgb)
        self.reseed(box)

    def reseed(self, box: Box) -> None:
        """New corner points inside the inner part of ``box`` (on the last frame seen)."""
        assert self._previous is not None
        s = self.scale
        x, y, w, h = box
        mask = np.zeros_like(self._previous)
        x0, x1 = int(max(0, (x + 0.15 * w) * s)), int(min(mask.shape[1], (x + 0.85 * w) * s))
        y0, y1 = int(max(0, (y + 0.1 * h) * s)), int(min(mask.shape[0], (y + 0.95 * h) * s))
        mask[y0:y1, x0:x1] = 255
        points = cv2.goodFeaturesToTrack(self._previous, _MAX_POINTS, 0.01, max(2.0, 0.05 * w * s), mask=mask,
                                         blockSize=5)
        self._points = np.zeros((0, 1, 2), np.float32) if points is None else points.astype(np.float32)
        self._seeded = len(self._points)

    @property
    def sparse(self) -> bool:
        return len(self._points) < max(self.min_points, self._seeded // 2)

    def step(self, rgb: np.ndarray) -> np.ndarray | None:
        """The similarity (2x3, source pixels) from the previous frame to this one, or None (``failure`` says
        why) when the flow is not consistent enough."""
        assert self._previous is not None
        current = self._working(rgb)
        previous, self._previous = self._previous, current
        if len(self._points) < self.min_points:
            return self._fail(f"{len(self._points)} trackable points")
        moved, status, _ = cv2.calcOpticalFlowPyrLK(previous, current, self._points, None, winSize=(15, 15),
                                                    maxLevel=3)
        back, back_status, _ = cv2.calcOpticalFlowPyrLK(current, previous, moved, None, winSize=(15, 15),
                                                        maxLevel=3)
        error = np.linalg.norm((back - self._points).reshape(-1, 2), axis=1)
        good = (status.ravel() == 1) & (back_status.ravel() == 1) & (error < _FORWARD_BACKWARD_PX)
        if good.sum() < self.min_points:
            return self._fail(f"{int(good.sum())} of {len(self._points)} points consistent")
        matrix, inliers = cv2.estimateAffinePartial2D(self._points[good], moved[good], method=cv2.RANSAC,
                                                      ransacReprojThreshold=_RANSAC_PX)
        kept = 0 if inliers is None else int(inliers.sum())
        if matrix is None or kept < max(self.min_points, _MIN_INLIER_SHARE * good.sum()):
            return self._fail(f"{kept} of {int(good.sum())} points move together")
        scale = math.hypot(matrix[0, 0], matrix[1, 0])
        rotation = abs(math.degrees(math.atan2(matrix[1, 0], matrix[0, 0])))
        if not (1 / _MAX_STEP_SCALE <= scale <= _MAX_STEP_SCALE) or rotation > _MAX_STEP_ROTATION_DEG:
            return self._fail(f"implausible jump (scale x{scale:.2f}, rotation {rotation:.0f} degrees)")
        self._points = moved[good][inliers.ravel() == 1].reshape(-1, 1, 2)
        matrix[:, 2] /= self.scale
        return matrix

    def _fail(self, why: str) -> None:
        self.failure = f"optical flow failed: {why}"
        return None

    def _working(self, rgb: np.ndarray) -> np.ndarray:
        grey = to_grey(rgb)
        if self.scale >= 1.0:
            return grey
        return cv2.resize(grey, (0, 0), fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA)


@dataclass
class _Face:
    """The face being followed: its box and eyes now, and the alignment in use."""

    box: Box
    eyes: tuple[Point, Point]
    eyes_estimated: bool
    alignment: Alignment
    confirmed_at: float
    corrected: bool = False


class _Ranges:
    """Contiguous runs of frames with a face, and without one for the same reason, appended frame by frame."""

    def __init__(self, summary: TrackSummary) -> None:
        self.summary = summary

    def add(self, index: int, reason: str | None) -> None:
        """Count frame ``index``: with a face (``reason`` None) or without one for ``reason``."""
        ranges: list[Any] = self.summary.face_ranges if reason is None else self.summary.faceless_ranges
        last = ranges[-1] if ranges else None
        if last is not None and last.end == index - 1 and getattr(last, "reason", None) == reason:
            ranges[-1] = dataclasses.replace(last, end=index)
        else:
            ranges.append(FrameRange(index, index) if reason is None else FacelessRange(index, index, reason))


# ------------------------------------------------------------------------------------------------- the track


class FaceTrack(Iterator[TrackedFrame]):
    """The iterator :func:`track_face` returns: one :class:`TrackedFrame` per frame, then ``summary`` is complete
    (or :class:`NoFaceError` when no frame had a face)."""

    def __init__(self, source: _Source, config: FaceTrackConfig, backend: FaceBackend, progress: bool) -> None:
        self.config = config
        self.backend = backend
        self.expected_frames = source.expected_frames
        self.summary = TrackSummary(source=source.name, fps=source.fps, codec=source.codec,
                                    backend=getattr(backend, "name", type(backend).__name__))
        self._source = source
        self._align = config.align_config()
        self._cuts = CutDetector()
        self._flow = _FlowTracker(config.track_face_px, config.min_points)
        self._ranges = _Ranges(self.summary)
        self._face: _Face | None = None
        self._faceless_reason = NO_FACE_DETECTED
        self._next_search = 0.0
        self._next_verify = 0.0
        self._first_time: float | None = None
        self._started = time.perf_counter()
        self._finished = False
        self._bar = _progress_bar(source, progress)

    def __iter__(self) -> FaceTrack:
        return self

    def __enter__(self) -> FaceTrack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __next__(self) -> TrackedFrame:
        if self._finished:
            raise StopIteration
        try:
            rgb, stamp = next(self._source.frames)
        except StopIteration:
            self._finish()
            raise
        frame = self._process(self.summary.frames, rgb, stamp)
        if self._bar is not None:
            self._bar.update(1)
        return frame

    def close(self) -> None:
        """Stop early: release the decoder (the summary covers the frames read so far)."""
        if not self._finished:
            self._finished = True
            self.summary.seconds = time.perf_counter() - self._started
            if self._bar is not None:
                self._bar.close()
            close = getattr(self._source.frames, "close", None)
            if close is not None:
                close()

    def _finish(self) -> None:
        self.close()
        require_face(self.summary)

    # -- one frame

    def _process(self, index: int, rgb: np.ndarray, stamp: float | None) -> TrackedFrame:
        moment = self._frame_time(index, stamp)
        self._check_size(index, rgb)
        distance = self._cuts.distance(rgb)
        if index == 0 or (distance is not None and distance > self.config.cut_threshold):
            self._start_shot(index, distance, moment)
        if self._face is not None:
            self._follow(rgb, index, moment)
        if self._face is None:
            if moment >= self._next_search:
                self._search(rgb, index, moment)
        elif moment >= self._next_verify:
            self._verify(rgb, index, moment)
        if self._face is not None:
            self._realign_if_moved(index, moment)
        return self._emit(index, moment, rgb)

    def _frame_time(self, index: int, stamp: float | None) -> float:
        if stamp is None:
            return index / self.summary.fps
        if self._first_time is None:
            self._first_time = stamp
        return stamp - self._first_time

    def _check_size(self, index: int, rgb: np.ndarray) -> None:
        size = (int(rgb.shape[1]), int(rgb.shape[0]))
        if self.summary.size is None:
            self.summary.size = size
        elif size != self.summary.size:
            raise ValueError(f"{self.summary.source}: frame {index} is {size[0]}x{size[1]}, the first frame "
                             f"{self.summary.size[0]}x{self.summary.size[1]}")

    def _start_shot(self, index: int, distance: float | None, moment: float) -> None:
        number = len(self.summary.shots)
        self.summary.shots.append(Shot(start=index, end=index, index=number,
                                       cut_distance=None if index == 0 else distance))
        self._face = None
        self._faceless_reason = NO_FACE_DETECTED
        self._next_search = moment

    def _emit(self, index: int, moment: float, rgb: np.ndarray) -> TrackedFrame:
        summary = self.summary
        summary.frames = index + 1
        summary.duration_s = moment + 1.0 / summary.fps
        summary.shots[-1] = dataclasses.replace(summary.shots[-1], end=index)
        shot = len(summary.shots) - 1
        face = self._face
        if face is None:
            self._ranges.add(index, self._faceless_reason)
            return TrackedFrame(index, moment, shot, None, None, None, None, self._faceless_reason)
        self._ranges.add(index, None)
        crop = face.alignment.apply(rgb, f"{summary.source} frame {index}")
        return TrackedFrame(index, moment, shot, crop, face.alignment, face.box, face.eyes)

    # -- following, searching, confirming

    def _follow(self, rgb: np.ndarray, index: int, moment: float) -> None:
        face = self._face
        assert face is not None
        step = self._flow.step(rgb)
        if step is None:
            self._lose(index, self._flow.failure)
            return
        face.box = _move_box(face.box, step)
        face.eyes = _move_points(face.eyes, step)
        width, height = self.summary.size or (0, 0)
        x, y, w, h = face.box
        if not (0 <= x + w / 2 < width and 0 <= y + h / 2 < height):
            self._lose(index, "the face left the frame")
        elif moment - face.confirmed_at > self.config.lost_after_s:
            self._lose(index, f"not re-detected for {moment - face.confirmed_at:.1f} s")
        elif self._flow.sparse:
            self._flow.reseed(face.box)

    def _lose(self, index: int, why: str) -> None:
        self.summary.events.append(f"frame {index}: face lost ({why})")
        self._face = None
        self._faceless_reason = FACE_LOST
        self._next_search = -math.inf

    def _search(self, rgb: np.ndarray, index: int, moment: float) -> None:
        self._next_search = moment + self.config.search_interval_s
        height, width = rgb.shape[:2]
        scale = min(1.0, self.config.search_side / max(height, width))
        found = self._detect(rgb, (0, 0, width, height), scale, "search")
        if not found:
            return
        face = self._choose(found, index)
        refined = self._best_overlap(self._detect_around(rgb, face.box, "refine"), face.box)
        if refined is not None and (face.eyes_estimated or not refined.eyes_estimated):
            face = refined
        self._start_track(rgb, face, index, moment)

    def _choose(self, found: list[FaceDetection], index: int) -> FaceDetection:
        """The face with found eyes, else the largest; rivals of similar size are recorded as an event."""
        confirmed = [f for f in found if not f.eyes_estimated]
        chosen = (confirmed or found)[0]
        rivals = [f for f in found if f is not chosen and f.width >= 0.6 * chosen.width]
        if rivals:
            self.summary.events.append(f"frame {index}: {1 + len(rivals)} faces of similar size; following the "
                                       f"one at {tuple(round(v) for v in chosen.box)}")
        return chosen

    def _start_track(self, rgb: np.ndarray, detection: FaceDetection, index: int, moment: float) -> None:
        eyes = (detection.left_eye, detection.right_eye)
        alignment = self._alignment(detection.box, eyes, detection.eyes_estimated, index)
        self._face = _Face(detection.box, eyes, detection.eyes_estimated, alignment, confirmed_at=moment)
        self._record_update(index, moment, UPDATE_DETECTED, None, alignment)
        self._flow.start(rgb, detection.box)
        self._next_verify = moment + self.config.verify_interval_s

    def _verify(self, rgb: np.ndarray, index: int, moment: float) -> None:
        face = self._face
        assert face is not None
        self._next_verify = moment + self.config.verify_interval_s
        detection = self._best_overlap(self._detect_around(rgb, face.box, "verify"), face.box)
        if detection is None:
            return
        face.confirmed_at = moment
        overlap = _iou(detection.box, face.box)
        eyes = (detection.left_eye, detection.right_eye)
        drifted = not detection.eyes_estimated and _eye_shift(face.eyes, eyes) > self.config.drift_tolerance
        if overlap < _REANCHOR_IOU or drifted:
            face.eyes, face.eyes_estimated, face.corrected = eyes, detection.eyes_estimated, True
        face.box = detection.box
        self._flow.reseed(face.box)

    def _realign_if_moved(self, index: int, moment: float) -> None:
        face = self._face
        assert face is not None
        targets = self._align.target_eyes()
        placed = face.alignment.map_points(face.eyes)
        shift = _eye_shift(((placed[0, 0], placed[0, 1]), (placed[1, 0], placed[1, 1])), targets)
        if shift > self.config.realign_shift:
            reason = UPDATE_CORRECTED if face.corrected else UPDATE_MOVED
            face.alignment = self._alignment(face.box, face.eyes, face.eyes_estimated, index)
            self._record_update(index, moment, reason, shift, face.alignment)
        face.corrected = False

    # -- detection and alignment

    def _detect_around(self, rgb: np.ndarray, box: Box, purpose: str) -> list[FaceDetection]:
        """Detections in a window twice the size of ``box``, with the face at most ``verify_face_px`` wide."""
        height, width = rgb.shape[:2]
        x, y, w, h = box
        region = (int(max(0, x - w / 2)), int(max(0, y - h / 2)), int(min(width, x + 1.5 * w)),
                  int(min(height, y + 1.5 * h)))
        if region[2] - region[0] < 16 or region[3] - region[1] < 16:
            return []
        return self._detect(rgb, region, min(1.0, self.config.verify_face_px / max(w, 1.0)), purpose)

    def _detect(self, rgb: np.ndarray, region: tuple[int, int, int, int], scale: float,
                purpose: str) -> list[FaceDetection]:
        x0, y0, x1, y1 = region
        patch = rgb[y0:y1, x0:x1]
        if scale < 1.0:
            patch = cv2.resize(patch, (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))),
                               interpolation=cv2.INTER_AREA)
        started = time.perf_counter()
        found = self.backend.detect(np.ascontiguousarray(patch))
        self.summary.detection_seconds[purpose] += time.perf_counter() - started
        self.summary.detections[purpose] += 1
        sx, sy = patch.shape[1] / (x1 - x0), patch.shape[0] / (y1 - y0)
        return [_to_source(face, x0, y0, sx, sy) for face in found]

    @staticmethod
    def _best_overlap(found: list[FaceDetection], box: Box) -> FaceDetection | None:
        scored = [(_iou(face.box, box), face) for face in found]
        best = max(scored, key=lambda pair: pair[0], default=(0.0, None))
        return best[1] if best[0] >= _CONFIRM_IOU else None

    def _alignment(self, box: Box, eyes: tuple[Point, Point], estimated: bool, index: int) -> Alignment:
        left, right = sorted(eyes)
        matrix = similarity_from_eyes(left, right, self._align)
        detection = FaceDetection(box=box, left_eye=left, right_eye=right, eyes_estimated=estimated)
        return Alignment(matrix=matrix, output_size=self.config.size, source_size=self.summary.size or (0, 0),
                         detection=detection, source=f"{self.summary.source} frame {index}")

    def _record_update(self, index: int, moment: float, reason: str, shift: float | None,
                       alignment: Alignment) -> None:
        shot = len(self.summary.shots) - 1
        self.summary.alignment_updates.append(AlignmentUpdate(index, moment, shot, reason, shift, alignment))


def _progress_bar(source: _Source, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=source.expected_frames, unit="frame", desc=Path(source.name).name, dynamic_ncols=True)


def track_face(
    video_or_frames: str | os.PathLike[str] | Iterable[np.ndarray],
    config: FaceTrackConfig | None = None,
    progress: bool = False,
    *,
    backend: FaceBackend | None = None,
) -> FaceTrack:
    """Follow the face through a video file, a folder of frames or an iterable of RGB uint8 arrays, streaming.

    Returns a :class:`FaceTrack`: an iterator of :class:`TrackedFrame`, one per frame, whose ``summary`` is
    complete after the last; it raises :class:`NoFaceError` after the last frame when no frame had a face. A
    missing path raises ``FileNotFoundError``, a file that is not a readable video ``ValueError``, both at once.
    ``backend`` replaces the one named by ``config.backend``; ``progress`` shows a progress bar.
    """
    config = config or FaceTrackConfig()
    source = _open_source(video_or_frames, config.fps)
    return FaceTrack(source, config, backend or make_backend(config.backend), progress)  # type: ignore[arg-type]


def read_face_clip(
    path: str | os.PathLike[str],
    config: FaceTrackConfig | None = None,
    *,
    max_frames: int = CLIP_MAX_FRAMES,
    backend: FaceBackend | None = None,
) -> tuple[np.ndarray, TrackSummary]:
    """The aligned face crops ``(n, size, size, 3)`` of a short recording and its summary.

    Only frames with a face give a crop; ``summary.face_frame_indices()`` are their frame indices. A clip longer
    than ``max_frames`` is refused with a ``ValueError`` (before decoding when its length is known); no face at
    all raises :class:`NoFaceError`.
    """
    track = track_face(path, config, backend=backend)
    if track.expected_frames is not None and track.expected_frames > max_frames:
        track.close()
        raise ValueError(_too_long(track.summary, f"{track.expected_frames} frames", max_frames))
    crops = []
    for frame in track:
        if frame.index >= max_frames:
            track.close()
            raise ValueError(_too_long(track.summary, f"more than {max_frames} frames", max_frames))
        if frame.crop is not None:
            crops.append(frame.crop)
    return np.stack(crops), track.summary


def crops_at(
    video_or_frames: str | os.PathLike[str] | Iterable[np.ndarray],
    summary: TrackSummary,
    indices: Iterable[int],
) -> dict[int, np.ndarray]:
    """The aligned crops of some frames of a source already followed by :func:`track_face`, read again.

    Each wanted frame with a face is warped by the alignment in force at that frame (the last of
    ``summary.alignment_updates`` at or before it), which is how the track made its crop; frames without a face
    are left out. The source is decoded up to the last wanted frame and only the wanted crops are kept.
    """
    wanted = sorted({int(index) for index in indices})
    if not wanted:
        return {}
    source = _open_source(video_or_frames, summary.fps)
    starts = [update.frame for update in summary.alignment_updates]
    crops = {}
    try:
        for index, (rgb, _) in enumerate(source.frames):
            if index > wanted[-1]:
                break
            if index not in wanted or not any(r.start <= index <= r.end for r in summary.face_ranges):
                continue
            update = bisect.bisect_right(starts, index) - 1
            if update >= 0:
                crops[index] = summary.alignment_updates[update].alignment.apply(rgb, f"{source.name} frame {index}")
    finally:
        close = getattr(source.frames, "close", None)
        if close is not None:
            close()
    return crops


def _too_long(summary: TrackSummary, length: str, max_frames: int) -> str:
    return (f"{summary.source}: {length} is longer than the {max_frames}-frame limit of a clip "
            f"({max_frames / summary.fps:.1f} s at {summary.fps:.3g} fps); follow a long recording with "
            "track_face, which streams it, or raise max_frames")
