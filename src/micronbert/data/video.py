"""Frame sources for pre-training: frame folders and video files, with their fps, validated.

A *source* is one continuous recording: a folder of numbered frames (``img1.jpg`` …, ordered by
:func:`micronbert.data.frames.list_frames`) or a video file decoded with PyAV. Folders carry no frame
rate, so one is given (``folder_fps``, or per entry in a manifest); videos report their own, which a
manifest may override.

Everything that is wrong with the input is turned into a :class:`SourceIssue` naming the file at fault
(a folder with no frames, an unreadable or zero-byte frame, a frame whose size differs from the
source's first frame, a video that cannot be opened, an fps of 0). The caller decides whether an issue
stops the run (:class:`BadInputError`) or is skipped and reported (``on_bad_input``).

Manifest: a CSV file with a ``path`` column and an optional ``fps`` column; relative paths are read
relative to the manifest's folder; an empty fps means "the video's own rate, or ``folder_fps``".
"""
from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from .frames import is_frame_file, list_frames, read_frame

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
BAD_INPUT_POLICIES: tuple[str, ...] = ("skip", "stop")


class BadInputError(ValueError):
    """Raised under ``on_bad_input="stop"`` for the first problem found in the input data."""


@dataclass(frozen=True)
class SourceIssue:
    """One problem with the input: the file (or folder) at fault and what is wrong with it."""

    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


@dataclass(frozen=True)
class SourceSpec:
    """Where a recording is and, when known, its frame rate (None: read it from the video)."""

    path: Path
    fps: float | None = None

    @property
    def is_video(self) -> bool:
        return self.path.suffix.lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class DecodedFrame:
    """One frame of a source: ``image`` (H, W, 3) RGB uint8, or None with the ``issue`` that made it unusable."""

    label: str
    image: np.ndarray | None
    issue: SourceIssue | None = None


def check_fps(fps: float | None, where: str) -> float:
    """``fps`` as a float, or ``ValueError`` naming ``where`` when it is missing, 0, negative or not finite."""
    if fps is None:
        raise ValueError(f"{where}: frame rate unknown; give an fps for it")
    value = float(fps)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{where}: invalid frame rate {fps!r} (must be a positive number)")
    return value


def check_policy(on_bad_input: str) -> str:
    if on_bad_input not in BAD_INPUT_POLICIES:
        raise ValueError(f"on_bad_input must be one of {', '.join(BAD_INPUT_POLICIES)}; got {on_bad_input!r}")
    return on_bad_input


def read_manifest(path: str | Path) -> list[SourceSpec]:
    """Sources listed in a CSV manifest (``path`` column, optional ``fps`` column)."""
    manifest = Path(path)
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest not found: {manifest}")
    with manifest.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "path" not in reader.fieldnames:
            raise ValueError(f"{manifest}: a manifest needs a 'path' column, got {reader.fieldnames}")
        specs = [_manifest_row(manifest, row_number, row) for row_number, row in enumerate(reader, start=2)]
    if not specs:
        raise ValueError(f"{manifest}: the manifest lists no sources")
    return specs


def _manifest_row(manifest: Path, row_number: int, row: dict[str, str]) -> SourceSpec:
    where = f"{manifest}, row {row_number}"
    text = (row.get("path") or "").strip()
    if not text:
        raise ValueError(f"{where}: empty path")
    source = Path(text) if Path(text).is_absolute() else manifest.parent / text
    fps_text = (row.get("fps") or "").strip()
    if not fps_text:
        return SourceSpec(source)
    try:
        fps = float(fps_text)
    except ValueError:
        raise ValueError(f"{where}: fps {fps_text!r} is not a number") from None
    return SourceSpec(source, check_fps(fps, f"{where} ({source})"))


def discover_sources(paths: Sequence[str | Path], issues: list[SourceIssue]) -> list[SourceSpec]:
    """Expand paths into sources: a video file, a folder of frames, or a folder holding such (recursively).

    A folder with neither frames nor videos anywhere inside, and a missing path, are recorded in ``issues``.
    """
    specs: list[SourceSpec] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            issues.append(SourceIssue(str(path), "does not exist"))
        elif path.is_file():
            if path.suffix.lower() in VIDEO_EXTENSIONS:
                specs.append(SourceSpec(path))
            else:
                issues.append(SourceIssue(str(path), f"not a video file (known: {', '.join(VIDEO_EXTENSIONS)})"))
        else:
            found = list(_walk_folder(path, issues))
            if not found:
                issues.append(SourceIssue(str(path), "folder holds no frames and no videos"))
            specs.extend(found)
    return specs


def _walk_folder(folder: Path, issues: list[SourceIssue]) -> Iterator[SourceSpec]:
    children = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    if any(p.is_file() and is_frame_file(p) for p in children):
        yield SourceSpec(folder)
        return
    for child in children:
        if child.is_file() and child.suffix.lower() in VIDEO_EXTENSIONS:
            yield SourceSpec(child)
        elif child.is_dir():
            inner = list(_walk_folder(child, issues))
            if not inner:
                issues.append(SourceIssue(str(child), "folder holds no frames and no videos"))
            yield from inner


def source_fps(spec: SourceSpec, folder_fps: float | None) -> float:
    """The frame rate of a source: the spec's, else the video's own or ``folder_fps``; ``ValueError`` naming
    the source when it is missing or not positive (an fps of 0)."""
    if spec.fps is not None:
        return check_fps(spec.fps, str(spec.path))
    if not spec.is_video:
        return check_fps(folder_fps, f"frame folder {spec.path}")
    with _open_video(spec.path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
    return check_fps(float(rate) if rate else 0.0, f"video {spec.path}")


def decode_frames(spec: SourceSpec) -> Iterator[DecodedFrame]:
    """Every frame of a source in temporal order, one at a time (a long video is never held whole).

    Unreadable or zero-byte frames and frames whose size differs from the first readable one come as
    ``DecodedFrame(label, None, issue)``. A source with no frames, or a video that cannot be opened or
    decoded, raises ``ValueError`` naming it.
    """
    frames = _video_frames(spec.path) if spec.is_video else _folder_frames(spec.path)
    return _with_consistent_size(frames, spec.path)


def _folder_frames(folder: Path) -> Iterator[DecodedFrame]:
    paths = list_frames(folder)
    if not paths:
        raise ValueError(f"{folder}: folder holds no frames")
    for path in paths:
        try:
            yield DecodedFrame(str(path), read_frame(path))
        except (OSError, ValueError) as err:
            yield DecodedFrame(str(path), None, SourceIssue(str(path), str(err)))


def _video_frames(path: Path) -> Iterator[DecodedFrame]:
    count = 0
    with _open_video(path) as container:
        try:
            for count, frame in enumerate(container.decode(container.streams.video[0]), start=1):
                yield DecodedFrame(f"{path} frame {count - 1}", frame.to_ndarray(format="rgb24"))
        except av.FFmpegError as err:
            raise ValueError(f"{path}: video cannot be decoded after {count} frames ({err})") from None
    if count == 0:
        raise ValueError(f"{path}: video holds no frames")


def _open_video(path: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(path))
    except av.FFmpegError as err:
        raise ValueError(f"{path}: video cannot be opened ({err})") from None
    if not container.streams.video:
        container.close()
        raise ValueError(f"{path}: file holds no video stream")
    return container


def _with_consistent_size(frames: Iterator[DecodedFrame], source: Path) -> Iterator[DecodedFrame]:
    """Turn every frame whose size differs from the source's first readable frame into an issue."""
    reference: tuple[int, ...] | None = None
    for frame in frames:
        if frame.image is not None:
            reference = reference or frame.image.shape
            if frame.image.shape != reference:
                height, width = frame.image.shape[:2]
                problem = (f"frame size {width}x{height} differs from the first frame of {source} "
                           f"({reference[1]}x{reference[0]})")
                frame = DecodedFrame(frame.label, None, SourceIssue(frame.label, problem))
        yield frame
