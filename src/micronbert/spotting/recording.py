"""Spotting in raw recordings: the face followed through a video file or a folder of frames
(:func:`micronbert.data.faces.track_face`: detection once per shot, tracking in between, re-detection after a cut or
when the face is lost), its aligned crops streamed to a spotter, frames without a face reported and never given to
the spotter, and the result written as the MEGC CSV, a JSON report and a timeline figure.

Frame numbers count from 1 (the first frame of the recording is frame 1), as in the MEGC sheets and CSV files.
Memory does not grow with the length of the recording: the tracker and the spotter's signal both stream, and the
thumbnails of the figure are read again at the end (:func:`micronbert.data.faces.crops_at`).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from micronbert.config import Config
from micronbert.data.faces import FaceBackend, FaceTrackConfig, TrackSummary, crops_at, track_face
from micronbert.data.faces.align import AlignConfig
from micronbert.data.frames import list_frames
from micronbert.data.video import VIDEO_EXTENSIONS
from micronbert.io import write_json_atomically
from micronbert.spotting.formats import write_megc_csv
from micronbert.spotting.spotters import (
    FlowRoiConfig,
    MicronBertSpotterConfig,
    Spotter,
    SpotTrace,
    SpotVideo,
    available_spotters,
    get_spotter,
)
from micronbert.viz import save_figure_atomically, spotting_timeline_figure

FIRST_FRAME = 1
MAX_THUMBNAILS = 8


@dataclass(frozen=True)
class SpotConfig(Config):
    """``micronbert spot``: the ``spotter`` (``flow-roi`` or ``micronbert``), the options of each, and the face
    tracking ``track``. The crop geometry of the tracking (eye distance and height, margin) is taken from the
    spotter's own so that its face regions fall where the tracker puts the face."""

    spotter: str = "flow-roi"
    flow_roi: FlowRoiConfig = field(default_factory=FlowRoiConfig)
    micronbert: MicronBertSpotterConfig = field(default_factory=MicronBertSpotterConfig)
    track: FaceTrackConfig = field(default_factory=FaceTrackConfig)

    def __post_init__(self) -> None:
        if self.spotter not in available_spotters():
            raise ValueError(f"spotter must be one of {available_spotters()}, got {self.spotter!r}")

    def build_spotter(self, **options: Any) -> Spotter:
        """The configured spotter (``model=`` may give the μ-BERT model of ``micronbert``)."""
        section = self.flow_roi if self.spotter == "flow-roi" else self.micronbert
        return get_spotter(self.spotter, section, **options)


def tracking_for(spotter: Spotter, track: FaceTrackConfig) -> FaceTrackConfig:
    """``track`` with the crop geometry of ``spotter``'s face regions."""
    section = getattr(spotter.config, "flow", None) or getattr(spotter.config, "change", None)
    align: AlignConfig = section.align if section is not None else AlignConfig()
    return dataclasses.replace(track, eye_distance=align.eye_distance, eye_height=align.eye_height,
                               margin=align.margin)


@dataclass(frozen=True)
class RecordingSpot:
    """What a spotter found in one recording: the ``intervals`` (``video, onset, offset, apex, type, score``), the
    ``trace`` behind them, the tracking ``summary`` (shots, faceless frames) and aligned-face ``thumbnails`` at the
    apex of the highest-scoring intervals (by apex frame number)."""

    video: str
    source: str
    fps: float
    spotter: str
    intervals: pd.DataFrame
    trace: SpotTrace
    summary: TrackSummary
    thumbnails: dict[int, np.ndarray] = field(repr=False)

    def faceless(self) -> list[dict[str, Any]]:
        """The frame ranges without a face (frame numbers from 1), with the reason and the times in seconds."""
        return [{"onset": r.start + FIRST_FRAME, "offset": r.end + FIRST_FRAME, "start_s": _seconds(r.start, self.fps),
                 "end_s": _seconds(r.end + 1, self.fps), "reason": r.reason} for r in self.summary.faceless_ranges]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready report."""
        intervals = [{"onset": int(row.onset), "apex": int(row.apex), "offset": int(row.offset), "type": row.type,
                      "score": round(float(row.score), 4), "onset_s": _seconds(row.onset - FIRST_FRAME, self.fps),
                      "offset_s": _seconds(row.offset + 1 - FIRST_FRAME, self.fps)}
                     for row in self.intervals.itertuples()]
        return {"video": self.video, "source": self.source, "fps": self.fps, "frames": self.summary.frames,
                "spotter": self.spotter, "first_frame": FIRST_FRAME, "intervals": intervals,
                "faceless": self.faceless(),
                "shots": [{"onset": s.start + FIRST_FRAME, "offset": s.end + FIRST_FRAME} for s in self.summary.shots],
                "thresholds": {name: float(value) for name, value in self.trace.threshold.items()},
                "tracking": self.summary.describe()}


def _seconds(frame_index: int, fps: float) -> float:
    return round(float(frame_index) / fps, 3)


def recordings_in(path: str | Path) -> list[Path]:
    """The recordings named by ``path``: a video file, a folder of numbered frames, or a folder holding video files
    and frame folders (each one recording, sorted by name)."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() not in VIDEO_EXTENSIONS:
            raise ValueError(f"{path}: not a video ({', '.join(VIDEO_EXTENSIONS)}) nor a folder of frames")
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"recording not found: {path}")
    if list_frames(path):
        return [path]
    found = [entry for entry in sorted(path.iterdir())
             if (entry.is_file() and entry.suffix.lower() in VIDEO_EXTENSIONS) or (entry.is_dir() and
                                                                                     list_frames(entry))]
    if not found:
        raise ValueError(f"{path}: no video files, numbered frames or frame folders")
    return found


def _once(frames: Iterator[np.ndarray | None], source: Path) -> Any:
    used = []

    def stream() -> Iterator[np.ndarray | None]:
        if used:
            raise RuntimeError(f"{source}: a recording is tracked once; the spotter asked for a second pass")
        used.append(True)
        return frames

    return stream


def spot_recording(path: str | Path, spotter: Spotter, track: FaceTrackConfig | None = None, *,
                   progress: bool = False, backend: FaceBackend | None = None) -> RecordingSpot:
    """Spot ``spotter``'s classes in one recording (a video file or a folder of frames; ``track.fps`` gives a
    folder's frame rate). Raises :class:`~micronbert.data.faces.NoFaceError` when no frame has a face,
    FileNotFoundError or ValueError naming the file when it cannot be read."""
    source = Path(path)
    config = tracking_for(spotter, track if track is not None else FaceTrackConfig())
    tracked = track_face(source, config, progress, backend=backend)
    crops = (frame.crop for frame in tracked)
    video = SpotVideo(source.stem if source.is_file() else source.name, tracked.summary.fps, _once(crops, source),
                      first_frame=FIRST_FRAME)
    trace = spotter.trace(video)
    for _ in crops:  # a spotter may stop reading early; the summary needs every frame
        pass
    summary = tracked.summary
    trace = _masked_trace(trace, summary)
    best = trace.intervals.nlargest(MAX_THUMBNAILS, "score")
    thumbnails = crops_at(source, summary, (best["apex"] - FIRST_FRAME).tolist()) if len(best) else {}
    return RecordingSpot(video.video, str(source), float(summary.fps), spotter.name, trace.intervals, trace, summary,
                         {index + FIRST_FRAME: crop for index, crop in thumbnails.items()})


def _masked_trace(trace: SpotTrace, summary: TrackSummary) -> SpotTrace:
    """The trace with its curves set to 0 on frames without a face (they carry no signal) and its intervals kept
    to the faces: one whose apex has no face is dropped, the others are clipped to the stretch of consecutive frames
    with a face around their apex."""
    index = trace.frames - FIRST_FRAME
    faceless = np.zeros(len(index), dtype=bool)
    for span in summary.faceless_ranges:
        faceless |= (index >= span.start) & (index <= span.end)
    curves = {name: np.where(faceless, 0.0, np.nan_to_num(curve)) for name, curve in trace.contrast.items()}
    kept = []
    for row in trace.intervals.itertuples(index=False):
        stretch = next((r for r in summary.face_ranges if r.start <= row.apex - FIRST_FRAME <= r.end), None)
        if stretch is not None:
            kept.append(row._replace(onset=max(row.onset, stretch.start + FIRST_FRAME),
                                     offset=min(row.offset, stretch.end + FIRST_FRAME)))
    intervals = pd.DataFrame(kept, columns=trace.intervals.columns).astype(trace.intervals.dtypes.to_dict())
    return dataclasses.replace(trace, contrast=curves, intervals=intervals.reset_index(drop=True))


def write_recording_spot(result: RecordingSpot, out_dir: str | Path, figure: bool = True) -> dict[str, Path]:
    """Write ``<video>.csv`` (MEGC 2023: ``vid,onset,offset,type``), ``<video>.json`` (the report) and, with
    ``figure``, ``<video>_timeline.png`` into ``out_dir``; returns the paths by kind."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": write_megc_csv(out / f"{result.video}.csv", result.intervals),
             "json": write_json_atomically(out / f"{result.video}.json", result.to_dict())}
    if figure:
        paths["figure"] = save_figure_atomically(timeline_figure(result), out / f"{result.video}_timeline.png")
    return paths


def timeline_figure(result: RecordingSpot) -> Any:
    """The timeline of one recording: each class's contrast and threshold over time, the spotted intervals, the
    frames without a face, and the face at the apex of the best intervals."""
    seconds = (result.trace.frames - FIRST_FRAME) / result.fps
    curves = {name: (curve, result.trace.threshold[name]) for name, curve in result.trace.contrast.items()}
    intervals = [((row.onset - FIRST_FRAME) / result.fps, (row.offset + 1 - FIRST_FRAME) / result.fps, row.type)
                 for row in result.intervals.itertuples()]
    faceless = [(span["start_s"], span["end_s"]) for span in result.faceless()]
    thumbnails = [((frame - FIRST_FRAME) / result.fps, image) for frame, image in sorted(result.thumbnails.items())]
    duration = result.summary.frames / result.fps if result.fps > 0 and math.isfinite(result.fps) else 0.0
    title = (f"{result.video}: {len(result.intervals)} interval(s) spotted by {result.spotter} "
             f"({(result.intervals['type'] == 'micro').sum()} micro, {(result.intervals['type'] == 'macro').sum()} "
             f"macro); {result.summary.faceless_frames} of {result.summary.frames} frames without a face")
    return spotting_timeline_figure(seconds, curves, intervals, faceless, thumbnails, duration, title)
