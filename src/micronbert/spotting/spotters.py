"""Spotters: find micro- and macro-expression intervals in long videos (docs/SPOTTING.md).

A spotter turns each video (``SpotVideo``: a stream of aligned face crops, ``None`` where there is no face) into a
per-frame signal (``micronbert.spotting.signals``) and the signal into intervals (``micronbert.spotting.peaks``):
one pass per class with the class's frame distance k = ⌊(N̄ + 1) / 2⌋, N̄ the class's mean offset − onset in frames
of the signal (SOFTNet's rule: 6 and 18 at 30 fps for CAS(ME)^2's micro- and macro-expressions), the Moilanen
contrast (smoothed over about k/2 frames) and threshold, peaks at least 2k apart, each peak an interval of the class's
mean length around it, the type of each prediction by its duration, overlaps suppressed. The smoothing and the 2k
distance were chosen on synthetic CAS(ME)^2-like videos (docs/SPOTTING.md suggests 2k + 1 and k).

Registered spotters (``SPOTTERS``, ``get_spotter``):

- ``flow-roi``: training-free; the ROI optical-flow signal;
- ``micronbert``: the μ-BERT change signal of a (pre-trained) model in place of the flow, same post-processing.

``fit(videos, truth)`` returns a copy whose settings come from those (training) videos only: each class's mean
duration and apex position from their annotated intervals (hence k and the interval shape) and its threshold factor p
from ``p_grid``, the macro factor maximising macro F1 and then the micro factor maximising micro F1 given the macro
intervals (``micronbert.spotting.spotting_scores``, rule ``fit_rule``; on a tie the factor giving fewer predictions).
``spot_loso`` runs leave-one-subject-out over videos: each subject's videos are spotted by a spotter fitted on the
other subjects' videos and annotations, never on its own.

SAMM's 200 fps: signals are computed on every ``temporal_stride(fps, target_fps)``-th frame (7 for 200 fps at the
default 30) and peaks are mapped back to the video's frame numbers; interval lengths are in the video's frames.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from micronbert.config import Config
from micronbert.io import atomic_path, read_json_mapping, write_json_atomically
from micronbert.model.factory import ModelInitConfig
from micronbert.spotting.intervals import validate_intervals
from micronbert.spotting.metric import RULES, spotting_scores
from micronbert.spotting.peaks import (
    MAX_MICRO_S,
    PREDICTION_COLUMNS,
    IntervalShape,
    PeakRule,
    drop_micro_within_macro,
    duration_types,
    empty_predictions,
    moilanen_threshold,
    suppress_overlaps,
)
from micronbert.spotting.signals import (
    DEFAULT_TARGET_FPS,
    FlowSignalConfig,
    Frame,
    FrameSignal,
    MicronBertSignalConfig,
    micronbert_signal,
    roi_flow_signal,
    temporal_stride,
)
from micronbert.train.device import DEVICES, pick_device

SPOT_CLASSES: tuple[str, ...] = ("micro", "macro")
DEFAULT_P_GRID: tuple[float, ...] = (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


# --- inputs ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpotVideo:
    """One long video as spotters read it.

    ``frames``: a function returning a fresh iterable of aligned face crops (RGB uint8 S×S, ``None`` where there is
    no face), or a sequence of them; spotters may read a video more than once (once per new frame distance).
    ``first_frame``: the frame number of the first crop (1 for the CAS(ME)^2 and SAMM-LV sheets); intervals are given
    in these numbers. ``subject`` groups videos for leave-one-subject-out (or comes from the annotations).
    """

    video: str
    fps: float
    frames: Callable[[], Iterable[Frame]] | Sequence[Frame]
    subject: str | None = None
    first_frame: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.video, str) or not self.video.strip():
            raise ValueError(f"video id must be a non-empty string, got {self.video!r}")
        if isinstance(self.fps, bool) or not isinstance(self.fps, (int, float)) or not (
                math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"video {self.video}: fps must be a positive number, got {self.fps!r}")
        if isinstance(self.first_frame, bool) or not isinstance(self.first_frame, (int, np.integer)) \
                or self.first_frame < 0:
            raise ValueError(f"video {self.video}: first_frame must be a non-negative integer, "
                             f"got {self.first_frame!r}")
        if not callable(self.frames) and (isinstance(self.frames, Iterator) or not isinstance(self.frames, Sequence)):
            raise ValueError(f"video {self.video}: frames must be a function returning the frames or a sequence of "
                             f"them (an iterator can be read only once), got {type(self.frames).__name__}")

    def stream(self) -> Iterable[Frame]:
        """A fresh pass over the frames."""
        return self.frames() if callable(self.frames) else self.frames


def _checked_videos(videos: SpotVideo | Sequence[SpotVideo]) -> list[SpotVideo]:
    videos = [videos] if isinstance(videos, SpotVideo) else list(videos)
    for video in videos:
        if not isinstance(video, SpotVideo):
            raise ValueError(f"expected SpotVideo items, got {type(video).__name__}")
    ids = [video.video for video in videos]
    repeated = sorted({name for name in ids if ids.count(name) > 1})
    if repeated:
        raise ValueError(f"video ids repeat: {repeated}")
    return videos


# --- settings ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassSettings:
    """What a spotter uses for one class: its mean duration ``duration_s`` (offset − onset, seconds), where its apex
    lies (``apex_fraction`` of the way from onset to offset) and its threshold factor ``p``."""

    duration_s: float
    apex_fraction: float
    p: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise ValueError(f"duration_s must be a positive number, got {self.duration_s!r}")
        if not (math.isfinite(self.apex_fraction) and 0 <= self.apex_fraction <= 1):
            raise ValueError(f"apex_fraction must be in [0, 1], got {self.apex_fraction!r}")
        if not (math.isfinite(self.p) and 0 <= self.p <= 1):
            raise ValueError(f"p must be in [0, 1], got {self.p!r}")

    def k(self, fps: float, stride: int) -> int:
        """Frame distance in kept frames: ⌊(N̄ + 1) / 2⌋ with N̄ the mean duration in kept frames (at least 1)."""
        return max(1, int((self.duration_s * fps / stride + 1) // 2))

    def shape(self, fps: float) -> IntervalShape:
        """The interval given to a peak, in the video's frames: the mean duration plus the onset frame."""
        return IntervalShape(max(0, round(self.duration_s * fps)) + 1, self.apex_fraction)


@dataclass(frozen=True)
class SpotterConfig(Config):
    """Options shared by the spotters (see the module docstring).

    ``target_fps``: signals at every round(fps / target_fps)-th frame. ``classes``: the passes to run. Before
    ``fit`` (or without annotations of a class): ``micro_duration_s`` / ``macro_duration_s`` (0.4 s and 1.2 s give
    k = 6 and 18 at 30 fps), ``apex_fraction`` and ``micro_p`` / ``macro_p``. ``shape_from_truth``: ``fit`` takes the
    durations and apex positions from the training annotations. ``p_grid``: the factors ``fit`` tries. ``smoothing``:
    moving mean of the contrast over 2·round(smoothing·k) + 1 frames (0: none). ``min_distance``: between peaks, in
    units of k. ``nms_iou``: overlap above which the lower-scoring interval of a type is dropped.
    ``micro_over_macro``: a micro interval with its apex inside a macro interval survives only when its score is
    above this multiple of the macro one. ``max_micro_s``: predictions up to this duration are micro.
    ``fit_rule``: the spotting rule ``fit`` scores with.
    """

    target_fps: float = DEFAULT_TARGET_FPS
    classes: tuple[str, ...] = SPOT_CLASSES
    micro_duration_s: float = 0.4
    macro_duration_s: float = 1.2
    apex_fraction: float = 0.5
    micro_p: float = 0.3
    macro_p: float = 0.3
    shape_from_truth: bool = True
    p_grid: tuple[float, ...] = DEFAULT_P_GRID
    smoothing: float = 0.25
    min_distance: float = 2.0
    nms_iou: float = 0.5
    micro_over_macro: float = 1.0
    max_micro_s: float = MAX_MICRO_S
    fit_rule: str = "megc2020"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.target_fps) and self.target_fps > 0):
            raise ValueError(f"target_fps must be a positive number, got {self.target_fps!r}")
        if not self.classes or any(name not in SPOT_CLASSES for name in self.classes) or \
                len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be distinct names from {SPOT_CLASSES}, got {self.classes!r}")
        if not self.p_grid or any(not (math.isfinite(p) and 0 <= p <= 1) for p in self.p_grid):
            raise ValueError(f"p_grid must hold factors in [0, 1], got {self.p_grid!r}")
        for name in ("smoothing", "micro_over_macro"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be a non-negative number, got {getattr(self, name)!r}")
        for name in ("min_distance", "max_micro_s"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be a positive number, got {getattr(self, name)!r}")
        if not 0 <= self.nms_iou <= 1:
            raise ValueError(f"nms_iou must be in [0, 1], got {self.nms_iou!r}")
        if self.fit_rule not in RULES:
            raise ValueError(f"fit_rule must be one of {RULES}, got {self.fit_rule!r}")
        self.default_settings()

    def default_settings(self) -> dict[str, ClassSettings]:
        """The settings of each class before ``fit``."""
        return {"micro": ClassSettings(self.micro_duration_s, self.apex_fraction, self.micro_p),
                "macro": ClassSettings(self.macro_duration_s, self.apex_fraction, self.macro_p)}


# --- signal cache ------------------------------------------------------------------------------------------------


class SignalCache:
    """Signal columns already computed, by spotter signal, video and k, so that the folds of ``spot_loso`` read each
    video once per frame distance.

    folder: where the columns are also kept on disk (one ``.npy`` file per video and k, written atomically, under a
    sub-folder named by a digest of the signal key and ``scope``), so that an interrupted run resumes with the
    videos it finished; None: in memory only. scope: what else the signal depends on that its key does not say (the
    face tracking, the datasets' folders); a different scope never reads another one's files.
    """

    def __init__(self, folder: str | Path | None = None, scope: str = "") -> None:
        self.folder = Path(folder) if folder is not None else None
        self.scope = scope
        self._columns: dict[tuple[str, str, int], np.ndarray] = {}
        self._shape: dict[tuple[str, str], tuple[int, int]] = {}
        self.read_from_disk: set[str] = set()

    def missing(self, key: str, video: str, ks: Iterable[int]) -> list[int]:
        """The frame distances not stored yet (in memory, or on disk, from where they are then read)."""
        return sorted({k for k in ks if not self._has(key, video, k)})

    def store(self, key: str, video: str, signal: FrameSignal) -> None:
        """Keep every column of ``signal`` (and write it to disk when the cache has a folder)."""
        self._shape[(key, video)] = (signal.stride, signal.n_frames)
        for k in signal.ks:
            self._columns[(key, video, k)] = signal.column(k)
        if self.folder is not None:
            place = self._place(key)
            for k in signal.ks:
                with atomic_path(place / f"{_file_stem(video)}.k{k}.npy") as temporary, temporary.open("wb") as file:
                    np.save(file, signal.column(k), allow_pickle=False)
            write_json_atomically(place / f"{_file_stem(video)}.json",
                                  {"video": video, "stride": signal.stride, "n_frames": signal.n_frames})

    def signal(self, key: str, video: str, ks: Sequence[int]) -> FrameSignal:
        """The stored columns ``ks`` as one signal."""
        stride, n_frames = self._shape[(key, video)]
        values = np.stack([self._columns[(key, video, k)] for k in ks], axis=1)
        return FrameSignal(values, tuple(ks), stride, n_frames)

    def _has(self, key: str, video: str, k: int) -> bool:
        if (key, video, k) in self._columns:
            return True
        if self.folder is None:
            return False
        place = self._place(key)
        column, shape = place / f"{_file_stem(video)}.k{k}.npy", place / f"{_file_stem(video)}.json"
        if not (column.is_file() and shape.is_file()):
            return False
        facts = read_json_mapping(shape, "spotting signal cache entry")
        if facts.get("video") != video:
            return False
        self._columns[(key, video, k)] = np.load(column, allow_pickle=False)
        self._shape[(key, video)] = (int(facts["stride"]), int(facts["n_frames"]))
        self.read_from_disk.add(video)
        return True

    def _place(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / hashlib.sha1(f"{self.scope}\n{key}".encode()).hexdigest()[:16]


_RUN_TOKEN = uuid.uuid4().hex  # tells this interpreter's objects from those of any other run


def _file_stem(video: str) -> str:
    """A file name for a video id (ids are checked to be unique; characters a file system rejects become _)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", video)


# --- spotters ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Contrasts:
    """One video's smoothed contrast per class, with what maps it back to the video's frames."""

    video: SpotVideo
    stride: int
    n_frames: int
    contrast: Mapping[str, np.ndarray]
    rules: Mapping[str, PeakRule]


@dataclass(frozen=True)
class SpotTrace:
    """One video's spotting in detail (for the timeline figure): each class's smoothed contrast at the video's frame
    numbers ``frames`` (NaN-free; 0 where there is no face) and its threshold, and the ``intervals`` spotted."""

    video: str
    frames: np.ndarray
    contrast: Mapping[str, np.ndarray]
    threshold: Mapping[str, float]
    intervals: pd.DataFrame


class Spotter(ABC):
    """A spotter: a per-frame signal plus the shared post-processing (see the module docstring)."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    config_class: ClassVar[type[SpotterConfig]] = SpotterConfig

    def __init__(self, config: SpotterConfig | Mapping[str, Any] | None = None,
                 settings: Mapping[str, ClassSettings] | None = None) -> None:
        self.config = self.config_class.from_dict(config) if isinstance(config, Mapping) else (
            config if config is not None else self.config_class())
        if not isinstance(self.config, self.config_class):
            raise ValueError(f"{self.name}: expected a {self.config_class.__name__}, got {type(self.config).__name__}")
        self.settings: dict[str, ClassSettings] = {**self.config.default_settings(), **(settings or {})}
        self.fit_table: pd.DataFrame | None = None

    @abstractmethod
    def signal(self, video: SpotVideo, ks: Sequence[int]) -> FrameSignal:
        """The per-frame signal of ``video`` at frame distances ``ks`` (kept frames)."""

    @abstractmethod
    def signal_key(self) -> str:
        """Identifies what ``signal`` computes (for ``SignalCache``)."""

    def with_settings(self, settings: Mapping[str, ClassSettings]) -> Spotter:
        """A copy of this spotter with other class settings (same configuration and signal)."""
        return type(self)(self.config, settings)

    # -- spotting
    def spot(self, videos: SpotVideo | Sequence[SpotVideo], cache: SignalCache | None = None) -> pd.DataFrame:
        """Intervals found in ``videos``: ``video, onset, offset, apex, type, score`` (frame numbers from each video's
        ``first_frame``; ``score`` is the contrast at the peak over the threshold), sorted by video and onset."""
        videos = _checked_videos(videos)
        cache = cache if cache is not None else SignalCache()
        tables = [self._intervals(self._contrasts(video, self.settings, cache), self.settings) for video in videos]
        return _sorted(pd.concat(tables, ignore_index=True)) if tables else empty_predictions()

    def trace(self, video: SpotVideo, cache: SignalCache | None = None) -> SpotTrace:
        """What ``spot`` finds in one video, with each class's contrast curve and threshold."""
        video = _checked_videos(video)[0]
        contrasts = self._contrasts(video, self.settings, cache if cache is not None else SignalCache())
        length = max((len(curve) for curve in contrasts.contrast.values()), default=0)
        thresholds = {name: moilanen_threshold(curve, self.settings[name].p)
                      for name, curve in contrasts.contrast.items()}
        return SpotTrace(video.video, video.first_frame + np.arange(length) * contrasts.stride,
                         dict(contrasts.contrast), thresholds, _sorted(self._intervals(contrasts, self.settings)))

    def _contrasts(self, video: SpotVideo, settings: Mapping[str, ClassSettings], cache: SignalCache) -> _Contrasts:
        stride = temporal_stride(video.fps, self.config.target_fps)
        ks = {name: settings[name].k(video.fps, stride) for name in self.config.classes}
        key = self.signal_key()
        missing = cache.missing(key, video.video, ks.values())
        if missing:
            cache.store(key, video.video, self.signal(video, missing))
        signal = cache.signal(key, video.video, sorted(set(ks.values())))
        rules = {name: PeakRule(k, settings[name].p, 2 * round(self.config.smoothing * k) + 1,
                                max(1, round(self.config.min_distance * k))) for name, k in ks.items()}
        contrast = {name: rule.contrast(signal.column(rule.k)) for name, rule in rules.items()}
        return _Contrasts(video, signal.stride, signal.n_frames, contrast, rules)

    def _class_intervals(self, contrasts: _Contrasts, name: str, settings: ClassSettings) -> pd.DataFrame:
        video = contrasts.video
        rule = PeakRule(contrasts.rules[name].k, settings.p, contrasts.rules[name].window,
                        contrasts.rules[name].min_distance)
        peaks, scores = rule.peaks(contrasts.contrast[name])
        last = video.first_frame + max(contrasts.n_frames, 1) - 1
        apex = video.first_frame + peaks * contrasts.stride
        onset, offset = settings.shape(video.fps).around(apex, video.first_frame, last)
        return pd.DataFrame({"video": video.video, "onset": onset, "offset": offset, "apex": apex,
                             "type": duration_types(onset, offset, video.fps, self.config.max_micro_s),
                             "score": scores}, columns=list(PREDICTION_COLUMNS))

    def _intervals(self, contrasts: _Contrasts, settings: Mapping[str, ClassSettings]) -> pd.DataFrame:
        tables = [self._class_intervals(contrasts, name, settings[name]) for name in self.config.classes]
        return self._combined(tables)

    def _combined(self, tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
        tables = [table for table in tables if len(table)]
        if not tables:
            return empty_predictions()
        intervals = suppress_overlaps(pd.concat(tables, ignore_index=True), self.config.nms_iou)
        return drop_micro_within_macro(intervals, self.config.micro_over_macro)

    # -- fitting
    def fit(self, videos: SpotVideo | Sequence[SpotVideo], truth: pd.DataFrame,
            cache: SignalCache | None = None) -> Spotter:
        """A copy fitted on ``videos`` and their annotated intervals in ``truth`` (rows of other videos are ignored):
        class durations and apex positions (when ``shape_from_truth``), then each class's factor p (module
        docstring). ``fit_table`` of the copy lists every factor tried with its scores."""
        videos = _checked_videos(videos)
        if not videos:
            raise ValueError("fit needs at least one training video")
        truth = _training_truth(truth, videos)
        settings = self._shapes_from(truth, videos) if self.config.shape_from_truth else dict(self.settings)
        cache = cache if cache is not None else SignalCache()
        contrasts = [self._contrasts(video, settings, cache) for video in videos]
        rows: list[dict[str, Any]] = []
        order = [name for name in ("macro", "micro") if name in self.config.classes]
        for name in order:
            best = None
            for p in self.config.p_grid:
                trial = {**settings, name: _with_p(settings[name], p)}
                predicted = pd.concat([self._intervals(item, trial) for item in contrasts], ignore_index=True)
                counts = spotting_scores(predicted, truth, rule=self.config.fit_rule)[name]
                rows.append({"type": name, "p": p, **counts.as_dict()})
                if best is None or (counts.f1, -counts.n_pred) > best[0]:
                    best = ((counts.f1, -counts.n_pred), p)
            assert best is not None
            settings[name] = _with_p(settings[name], best[1])
        fitted = self.with_settings(settings)
        fitted.fit_table = pd.DataFrame(rows)
        return fitted

    def _shapes_from(self, truth: pd.DataFrame, videos: Sequence[SpotVideo]) -> dict[str, ClassSettings]:
        fps = {video.video: float(video.fps) for video in videos}
        settings = dict(self.settings)
        for name in SPOT_CLASSES:
            rows = truth[truth["type"] == name]
            if rows.empty:
                continue
            rates = rows["video"].map(fps).to_numpy(dtype=np.float64)
            span = (rows["offset"] - rows["onset"]).to_numpy(dtype=np.float64)
            duration = float(np.mean(span / rates))
            apex_fraction = settings[name].apex_fraction
            if "apex" in rows.columns:
                apex = pd.to_numeric(rows["apex"], errors="coerce").to_numpy(dtype=np.float64)
                usable = np.isfinite(apex) & (span > 0)
                if usable.any():
                    fraction = (apex[usable] - rows["onset"].to_numpy()[usable]) / span[usable]
                    apex_fraction = float(np.clip(fraction, 0, 1).mean())
            settings[name] = ClassSettings(duration if duration > 0 else settings[name].duration_s, apex_fraction,
                                           settings[name].p)
        return settings


def _with_p(settings: ClassSettings, p: float) -> ClassSettings:
    return ClassSettings(settings.duration_s, settings.apex_fraction, float(p))


def _training_truth(truth: pd.DataFrame, videos: Sequence[SpotVideo]) -> pd.DataFrame:
    checked = validate_intervals(truth, "truth")
    ids = {video.video for video in videos}
    return checked[checked["video"].isin(ids) & checked["type"].isin(SPOT_CLASSES)].reset_index(drop=True)


def _sorted(predictions: pd.DataFrame) -> pd.DataFrame:
    return predictions.sort_values(["video", "onset", "offset"], kind="stable").reset_index(drop=True)


# --- registry ----------------------------------------------------------------------------------------------------


SPOTTERS: dict[str, type[Spotter]] = {}


def register_spotter(cls: type[Spotter]) -> type[Spotter]:
    """Class decorator adding a :class:`Spotter` to the registry under its ``name``."""
    if not cls.name or cls.name in SPOTTERS:
        raise ValueError(f"spotter name {cls.name!r} is empty or registered twice")
    SPOTTERS[cls.name] = cls
    return cls


def available_spotters() -> list[str]:
    """Names of the registered spotters."""
    return list(SPOTTERS)


def get_spotter(name: str, config: SpotterConfig | Mapping[str, Any] | None = None, **options: Any) -> Spotter:
    """A new spotter called ``name`` with ``config`` (its configuration class or a mapping of options) and any
    constructor ``options`` (``model=`` for ``micronbert``); ``ValueError`` lists the names."""
    if name not in SPOTTERS:
        raise ValueError(f"unknown spotter {name!r}; available: {', '.join(SPOTTERS)}")
    return SPOTTERS[name](config, **options)


def _key(name: str, section: Config, target_fps: float) -> str:
    return json.dumps({"spotter": name, "signal": section.to_dict(), "target_fps": target_fps}, sort_keys=True)


@dataclass(frozen=True)
class FlowRoiConfig(SpotterConfig):
    """``flow-roi`` options: the shared ones and the ROI flow signal ``flow``."""

    flow: FlowSignalConfig = field(default_factory=FlowSignalConfig)


@register_spotter
class FlowRoiSpotter(Spotter):
    """Training-free ROI optical-flow k-difference spotter (docs/SPOTTING.md)."""

    name = "flow-roi"
    summary = "ROI optical flow of frame t against t−k and t+k, head motion removed, eyes masked; Moilanen contrast"
    config_class = FlowRoiConfig
    config: FlowRoiConfig

    def signal(self, video: SpotVideo, ks: Sequence[int]) -> FrameSignal:
        return roi_flow_signal(video.stream(), video.fps, ks, self.config.flow, self.config.target_fps)

    def signal_key(self) -> str:
        return _key(self.name, self.config.flow, self.config.target_fps)


@dataclass(frozen=True)
class MicronBertSpotterConfig(SpotterConfig):
    """``micronbert`` options: the shared ones, the change signal ``change``, the ``model`` to build when none is
    given (a ``micronbert.save`` folder in ``model.weights``) and the ``device`` to run it on (None: where its
    parameters are)."""

    change: MicronBertSignalConfig = field(default_factory=MicronBertSignalConfig)
    model: ModelInitConfig = field(default_factory=ModelInitConfig)
    device: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.device is not None and self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)} or None, got {self.device!r}")


@register_spotter
class MicronBertSpotter(Spotter):
    """The μ-BERT change of frame t against t−k in place of the flow (docs/SPOTTING.md)."""

    name = "micronbert"
    summary = "μ-BERT change of frame t against t−k and t+k over the face regions' patches; Moilanen contrast"
    config_class = MicronBertSpotterConfig
    config: MicronBertSpotterConfig

    def __init__(self, config: MicronBertSpotterConfig | Mapping[str, Any] | None = None,
                 settings: Mapping[str, ClassSettings] | None = None, model: torch.nn.Module | None = None) -> None:
        super().__init__(config, settings)
        self._model = model
        self._digest: str | None = None

    @property
    def model(self) -> torch.nn.Module:
        """The μ-BERT model (built from ``config.model`` on first use when none was given)."""
        if self._model is None:
            model = self.config.model.build()
            self._model = model.to(pick_device(self.config.device)) if self.config.device is not None else model
        return self._model

    def with_settings(self, settings: Mapping[str, ClassSettings]) -> Spotter:
        copy = type(self)(self.config, settings, model=self._model)
        copy._digest = self._digest
        return copy

    def model_digest(self) -> str:
        """A digest of the model's weights, the same in every process for the same weights (a signal on disk is
        reused only for the model that computed it). A model without a state (an ONNX export) is told apart by
        object, so its signals are never reused by another process."""
        if self._digest is None:
            state = self.model.state_dict()
            digest = hashlib.sha1(b"" if state else f"object {id(self.model)} of run {_RUN_TOKEN}".encode())
            for name, tensor in state.items():
                digest.update(name.encode())
                digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
            self._digest = digest.hexdigest()[:16]
        return self._digest

    def signal(self, video: SpotVideo, ks: Sequence[int]) -> FrameSignal:
        return micronbert_signal(self.model, video.stream(), ks, fps=video.fps, config=self.config.change,
                                 target_fps=self.config.target_fps)

    def signal_key(self) -> str:
        return _key(self.name, self.config.change, self.config.target_fps) + f"#model{self.model_digest()}"


# --- leave one subject out ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LosoSpotting:
    """Leave-one-subject-out spotting: the ``predictions`` of every video (with its ``subject``) and the
    ``settings`` each fold chose (``subject, type, duration_s, apex_fraction, p``)."""

    predictions: pd.DataFrame
    settings: pd.DataFrame


def spot_loso(videos: Sequence[SpotVideo], truth: pd.DataFrame, spotter: Spotter,
              cache: SignalCache | None = None) -> LosoSpotting:
    """For each subject, fit ``spotter`` on the other subjects' videos and their annotations only, then spot the
    subject's videos. A video's subject is its ``subject`` or, when that is None, the ``subject`` of its rows in
    ``truth``."""
    videos = _checked_videos(videos)
    subjects = _subjects(videos, truth)
    names = list(dict.fromkeys(subjects.values()))
    if len(names) < 2:
        raise ValueError(f"leave-one-subject-out needs at least two subjects, got {names}")
    cache = cache if cache is not None else SignalCache()
    tables, settings = [], []
    for subject in names:
        held_out = [video for video in videos if subjects[video.video] == subject]
        training = [video for video in videos if subjects[video.video] != subject]
        training_ids = {video.video for video in training}
        fitted = spotter.fit(training, truth[truth["video"].astype(str).isin(training_ids)], cache)
        tables.append(fitted.spot(held_out, cache).assign(subject=subject))
        settings += [{"subject": subject, "type": name, "duration_s": value.duration_s,
                      "apex_fraction": value.apex_fraction, "p": value.p} for name, value in fitted.settings.items()]
    predictions = _sorted(pd.concat(tables, ignore_index=True))
    return LosoSpotting(predictions, pd.DataFrame(settings))


def _subjects(videos: Sequence[SpotVideo], truth: pd.DataFrame) -> dict[str, str]:
    owners = truth.groupby(truth["video"].astype(str))["subject"].first() if "subject" in truth.columns else {}
    subjects = {}
    for video in videos:
        subject = video.subject if video.subject is not None else owners.get(video.video)
        if subject is None or (isinstance(subject, float) and math.isnan(subject)):
            raise ValueError(f"video {video.video}: no subject (set SpotVideo.subject or give truth a subject column "
                             "with a row of this video)")
        subjects[video.video] = str(subject)
    return subjects
