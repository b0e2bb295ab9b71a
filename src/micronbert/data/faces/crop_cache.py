"""Cache of aligned face crops, so that face pre-processing runs once per dataset.

Layout under the cache folder, one sub-folder per settings hash::

    <cache>/<settings digest>/settings.json
    <cache>/<settings digest>/manifest.json          # every clip: sources, crops, alignment or error
    <cache>/<settings digest>/clips/<clip dir>/<source stem>.png ... (frame numbers kept)
    <cache>/<settings digest>/clips/<clip dir>/clip.json   # written last: marks the clip complete

A clip is skipped when its ``clip.json`` lists the same source files (resolved path, size, mtime)
and all its crops exist, so an interrupted run resumes where it stopped. Every file is written to a
temporary name and renamed into place. Clips are processed in parallel by a process pool; a clip
that fails (no face, several faces, unreadable frame) is reported and recorded in the manifest
instead of stopping the run, unless ``strict=True``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from tqdm.auto import tqdm

from micronbert.data.faces.align import AlignConfig, FaceAligner
from micronbert.data.faces.backends import make_backend
from micronbert.data.frames import read_frame

CACHE_FORMAT_VERSION = 1
CLIP_RECORD = "clip.json"
MANIFEST = "manifest.json"
STAGES = ("setup", "read", "detect", "crop", "cache")

logger = logging.getLogger(__name__)

ClipStatus = Literal["prepared", "cached", "failed"]


@dataclass(frozen=True)
class CropConfig:
    """Everything that changes the crops; its digest names the cache sub-folder."""

    align: AlignConfig = field(default_factory=AlignConfig)
    backend: Literal["opencv", "mediapipe", "dlib"] = "opencv"
    image_format: Literal["png", "jpg"] = "png"
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        if not isinstance(self.align, AlignConfig):
            raise ValueError(f"align must be an AlignConfig, got {type(self.align).__name__}")
        if self.backend not in ("opencv", "mediapipe", "dlib"):
            raise ValueError(f"backend must be opencv, mediapipe or dlib, got {self.backend!r}")
        if self.image_format not in ("png", "jpg"):
            raise ValueError(f"image_format must be 'png' or 'jpg', got {self.image_format!r}")
        if isinstance(self.jpeg_quality, bool) or not (
            isinstance(self.jpeg_quality, int) and 1 <= self.jpeg_quality <= 100
        ):
            raise ValueError(f"jpeg_quality must be an int in [1, 100], got {self.jpeg_quality!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings, with the cache format version."""
        settings = asdict(self)
        if self.image_format == "png":
            settings.pop("jpeg_quality")
        return {"format_version": CACHE_FORMAT_VERSION, **settings}

    def digest(self) -> str:
        """Short, stable hash of :meth:`to_dict`."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Clip:
    """A clip to crop: an identifier, its frame files in order, and the onset frame's index."""

    clip_id: str
    frames: tuple[Path, ...]
    onset_index: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.clip_id, str) or not self.clip_id.strip():
            raise ValueError(f"clip_id must be a non-empty string, got {self.clip_id!r}")
        frames = tuple(Path(p) for p in self.frames)
        object.__setattr__(self, "frames", frames)
        if not frames:
            raise ValueError(f"clip {self.clip_id!r} has no frames")
        if not 0 <= self.onset_index < len(frames):
            raise ValueError(
                f"clip {self.clip_id!r}: onset_index {self.onset_index} is outside its "
                f"{len(frames)} frames"
            )


@dataclass(frozen=True)
class ClipReport:
    """What happened to one clip."""

    clip_id: str
    status: ClipStatus
    crop_paths: tuple[Path, ...] = ()
    error: str | None = None
    warnings: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return len(self.crop_paths)


@dataclass(frozen=True)
class PrepareReport:
    """Outcome of :func:`prepare_crops`."""

    cache_root: Path
    manifest_path: Path
    clips: list[ClipReport]
    seconds: float

    @property
    def failed(self) -> list[ClipReport]:
        return [c for c in self.clips if c.status == "failed"]

    @property
    def prepared(self) -> list[ClipReport]:
        return [c for c in self.clips if c.status == "prepared"]

    @property
    def cached(self) -> list[ClipReport]:
        return [c for c in self.clips if c.status == "cached"]

    @property
    def frames_written(self) -> int:
        return sum(c.n_frames for c in self.prepared)

    def stage_seconds(self) -> dict[str, float]:
        """Time per stage summed over the clips prepared in this run (worker seconds)."""
        totals = dict.fromkeys(STAGES, 0.0)
        for clip in self.prepared:
            for stage, seconds in clip.timings.items():
                totals[stage] += seconds
        return totals


# ----------------------------------------------------------------------------------------------
# Public entry points
# ----------------------------------------------------------------------------------------------
def prepare_crops(
    clips: Sequence[Clip] | Mapping[str, Sequence[str | Path]],
    cache_dir: str | Path,
    settings: CropConfig | None = None,
    workers: int = 1,
    strict: bool = False,
    progress: bool = True,
) -> PrepareReport:
    """Align and crop every clip into the cache, skipping clips already done.

    ``clips`` is a list of :class:`Clip` or a mapping ``clip_id -> frame paths`` (onset = first
    frame). ``workers > 1`` runs clips in parallel processes. A failing clip is reported in the
    result and the manifest; with ``strict=True`` the first failure raises a ValueError instead.
    """
    settings = settings or CropConfig()
    clip_list = _as_clips(clips)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    make_backend(settings.backend)  # fail fast, in this process, when an extra is missing
    root = cache_root(cache_dir, settings)
    (root / "clips").mkdir(parents=True, exist_ok=True)
    _write_json(root / "settings.json", settings.to_dict())

    start = time.perf_counter()
    reports: dict[str, ClipReport] = {}
    records: dict[str, dict[str, Any]] = {}
    todo: list[Clip] = []
    for clip in clip_list:
        cached = _cached_report(root, clip, settings)
        if cached is None:
            todo.append(clip)
        else:
            reports[clip.clip_id], records[clip.clip_id] = cached

    bar = tqdm(total=len(clip_list), initial=len(reports), desc="face crops", unit="clip",
               disable=not progress)
    runner = _run(todo, root, settings, workers)
    try:
        for report, record in runner:
            reports[report.clip_id], records[report.clip_id] = report, record
            bar.update(1)
            if report.status == "failed":
                logger.warning("face crops: clip %r failed: %s", report.clip_id, report.error)
                if strict:
                    raise ValueError(f"clip {report.clip_id!r} failed: {report.error}")
    finally:
        runner.close()
        bar.close()
        _update_manifest(root, settings, records)
    ordered = [reports[c.clip_id] for c in clip_list if c.clip_id in reports]
    return PrepareReport(cache_root=root, manifest_path=root / MANIFEST, clips=ordered,
                         seconds=time.perf_counter() - start)


def cache_root(cache_dir: str | Path, settings: CropConfig) -> Path:
    """The cache sub-folder used for ``settings``."""
    return Path(cache_dir) / settings.digest()


def read_cache_manifest(cache_dir: str | Path, settings: CropConfig) -> dict[str, Any]:
    """The manifest of ``settings`` under ``cache_dir`` (FileNotFoundError when never prepared)."""
    path = cache_root(cache_dir, settings) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no crop manifest at {path}; run prepare_crops first")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: corrupt manifest ({exc})") from exc


def clip_directory_name(clip_id: str) -> str:
    """File-system-safe, collision-free folder name for a clip identifier."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", clip_id).strip("._")[:80] or "clip"
    return f"{readable}-{hashlib.sha1(clip_id.encode()).hexdigest()[:8]}"


def source_fingerprint(path: Path) -> dict[str, Any]:
    """Resolved path, size and modification time (ns) of a source frame."""
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


# ----------------------------------------------------------------------------------------------
# Scheduling
# ----------------------------------------------------------------------------------------------
def _as_clips(clips: Sequence[Clip] | Mapping[str, Sequence[str | Path]]) -> list[Clip]:
    if isinstance(clips, Mapping):
        clip_list = [Clip(str(k), tuple(v)) for k, v in clips.items()]
    else:
        clip_list = list(clips)
        wrong = [c for c in clip_list if not isinstance(c, Clip)]
        if wrong:
            raise ValueError(f"expected Clip objects or a mapping, got {type(wrong[0]).__name__}")
    seen: set[str] = set()
    for clip in clip_list:
        if clip.clip_id in seen:
            raise ValueError(f"duplicate clip_id {clip.clip_id!r}")
        seen.add(clip.clip_id)
    return clip_list


def _run(
    clips: list[Clip], root: Path, settings: CropConfig, workers: int
) -> Iterable[tuple[ClipReport, dict[str, Any]]]:
    """Yield each clip's report and manifest record as it completes."""
    if workers == 1 or len(clips) <= 1:
        for clip in clips:
            yield prepare_clip(clip, root, settings)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(clips)), mp_context=context,
                             initializer=_init_worker) as pool:
        pending: set[Future] = {pool.submit(prepare_clip, c, root, settings) for c in clips}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()


def _init_worker() -> None:
    cv2.setNumThreads(1)


# ----------------------------------------------------------------------------------------------
# One clip
# ----------------------------------------------------------------------------------------------
def prepare_clip(
    clip: Clip, root: Path, settings: CropConfig
) -> tuple[ClipReport, dict[str, Any]]:
    """Align, crop and cache one clip; failures are returned, not raised."""
    timings = dict.fromkeys(STAGES, 0.0)
    clip_dir = root / "clips" / clip_directory_name(clip.clip_id)
    try:
        sources = [source_fingerprint(_existing(p)) for p in clip.frames]
        tick = time.perf_counter()
        aligner = FaceAligner(settings.align, make_backend(settings.backend))
        timings["setup"] = time.perf_counter() - tick
        tick = time.perf_counter()
        onset = read_frame(clip.frames[clip.onset_index])
        timings["read"] += time.perf_counter() - tick
        tick = time.perf_counter()
        alignment = aligner.alignment_for(onset, str(clip.frames[clip.onset_index]))
        timings["detect"] = time.perf_counter() - tick
        _reset_directory(clip_dir)
        crop_names = []
        for index, frame_path in enumerate(clip.frames):
            tick = time.perf_counter()
            frame = onset if index == clip.onset_index else read_frame(frame_path)
            timings["read"] += time.perf_counter() - tick
            tick = time.perf_counter()
            crop = alignment.apply(frame, str(frame_path))
            timings["crop"] += time.perf_counter() - tick
            tick = time.perf_counter()
            name = f"{Path(frame_path).stem}.{settings.image_format}"
            _write_bytes(clip_dir / name, _encode(crop, settings, frame_path))
            crop_names.append(name)
            timings["cache"] += time.perf_counter() - tick
    except (ValueError, OSError, cv2.error) as exc:  # FaceAlignmentError is a ValueError
        readable = isinstance(exc, (ValueError, FileNotFoundError))
        error = str(exc) if readable else f"{type(exc).__name__}: {exc}"
        record = {"clip_id": clip.clip_id, "status": "failed", "error": error,
                  "frames": [str(p) for p in clip.frames]}
        return ClipReport(clip.clip_id, "failed", error=error, timings=timings), record

    tick = time.perf_counter()
    record = {
        "clip_id": clip.clip_id,
        "status": "prepared",
        "settings_digest": settings.digest(),
        "directory": str(clip_dir.relative_to(root)),
        "onset_index": clip.onset_index,
        "sources": sources,
        "crops": crop_names,
        "alignment": alignment.to_dict(),
        "warnings": list(alignment.warnings),
    }
    _write_json(clip_dir / CLIP_RECORD, record)
    timings["cache"] += time.perf_counter() - tick
    paths = tuple(clip_dir / n for n in crop_names)
    report = ClipReport(clip.clip_id, "prepared", crop_paths=paths, warnings=alignment.warnings,
                        timings=timings)
    return report, record


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"frame file not found: {path}")
    return path


def _cached_report(
    root: Path, clip: Clip, settings: CropConfig
) -> tuple[ClipReport, dict[str, Any]] | None:
    """The report of a clip already complete in the cache with unchanged sources, else None."""
    clip_dir = root / "clips" / clip_directory_name(clip.clip_id)
    try:
        record = json.loads((clip_dir / CLIP_RECORD).read_text(encoding="utf-8"))
        sources = [source_fingerprint(p) for p in clip.frames]
    except (OSError, json.JSONDecodeError):
        return None
    if (
        record.get("clip_id") != clip.clip_id
        or record.get("settings_digest") != settings.digest()
        or record.get("onset_index") != clip.onset_index
        or record.get("sources") != sources
    ):
        return None
    paths = tuple(clip_dir / name for name in record.get("crops", []))
    if len(paths) != len(clip.frames) or not all(p.is_file() for p in paths):
        return None
    report = ClipReport(clip.clip_id, "cached", crop_paths=paths,
                        warnings=tuple(record.get("warnings", [])))
    return report, {**record, "status": "cached"}


def _reset_directory(folder: Path) -> None:
    """Empty a clip folder left by an older or interrupted run."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def _encode(crop: np.ndarray, settings: CropConfig, source: Path) -> bytes:
    crop = cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)  # OpenCV encodes BGR
    if settings.image_format == "jpg":
        ok, data = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, settings.jpeg_quality])
    else:
        ok, data = cv2.imencode(".png", crop)
    if not ok:
        raise ValueError(f"{source}: cannot encode the crop as {settings.image_format}")
    return data.tobytes()


def _update_manifest(
    root: Path, settings: CropConfig, records: dict[str, dict[str, Any]]
) -> None:
    """Merge this run's clip records into the manifest (clips of earlier runs are kept)."""
    path = root / MANIFEST
    clips: dict[str, Any] = {}
    if path.is_file():
        try:
            clips = json.loads(path.read_text(encoding="utf-8")).get("clips", {})
        except json.JSONDecodeError:
            clips = {}
    clips.update(records)
    manifest = {
        "settings_digest": settings.digest(),
        "settings": settings.to_dict(),
        "clips": clips,
        "failed": sorted(k for k, v in clips.items() if v.get("status") == "failed"),
    }
    _write_json(path, manifest)


# ----------------------------------------------------------------------------------------------
# Atomic writes
# ----------------------------------------------------------------------------------------------
def _write_json(path: Path, payload: Any) -> None:
    _write_bytes(path, (json.dumps(payload, indent=1, sort_keys=True) + "\n").encode("utf-8"))


def _write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
