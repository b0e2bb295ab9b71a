"""Configuration of a synthetic dataset (`micronbert synth`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from micronbert.config import Config

from .actions import CLASSES, DEFAULT_AMPLITUDE, DEFAULT_DURATION_S
from .faces import MIN_SIZE

MAX_SUBJECTS = 99


@dataclass(frozen=True)
class SynthConfig(Config):
    """What `write_synthetic_dataset` generates.

    Labelled part (CASME II-like): `subjects` x `clips_per_subject` clips, classes taken in turn from
    `classes`. Unlabeled part: `unlabeled_videos` long videos of `unlabeled_frames` frames each, with on average
    `expressions_per_second` micro-expressions of random classes. `amplitude` is the apex displacement as a
    fraction of the face width; `duration_s` bounds onset-to-offset; `nuisance_strength` scales every
    nuisance of `NuisanceConfig()` (0 gives clean clips); frames are `size` x `size`, JPEG at `jpeg_quality`.
    """

    seed: int = 0
    subjects: int = 3
    clips_per_subject: int = 4
    classes: tuple[str, ...] = CLASSES
    amplitude: tuple[float, float] = DEFAULT_AMPLITUDE
    duration_s: tuple[float, float] = DEFAULT_DURATION_S
    nuisance_strength: float = 1.0
    size: int = 128
    fps: int = 200
    jpeg_quality: int = 95
    unlabeled_videos: int = 2
    unlabeled_frames: int = 400
    expressions_per_second: float = 2.0
    write_frame_folders: bool = True
    write_mp4: bool = True

    def __post_init__(self) -> None:
        _check_int("seed", self.seed, 0)
        _check_int("subjects", self.subjects, 0, MAX_SUBJECTS)
        _check_int("clips_per_subject", self.clips_per_subject, 0, 99)
        _check_int("size", self.size, MIN_SIZE)
        if self.size % 2:
            raise ValueError(f"size must be even (H.264/MPEG-4 need even frame sizes), got {self.size}")
        _check_int("fps", self.fps, 1)
        _check_int("jpeg_quality", self.jpeg_quality, 1, 100)
        _check_int("unlabeled_videos", self.unlabeled_videos, 0)
        _check_int("unlabeled_frames", self.unlabeled_frames, 1)
        if not self.classes or any(c not in CLASSES for c in self.classes):
            raise ValueError(f"classes must be a non-empty subset of {CLASSES}, got {self.classes!r}")
        _check_pair("amplitude", self.amplitude, 0.0, 0.2)
        _check_pair("duration_s", self.duration_s, 0.0, 60.0)
        if np.floor(self.duration_s[1] * self.fps + 1e-9) < max(2, np.ceil(self.duration_s[0] * self.fps - 1e-9)):
            raise ValueError(f"duration_s {self.duration_s} at {self.fps} fps is shorter than 2 frames")
        if not np.isfinite(self.nuisance_strength) or self.nuisance_strength < 0:
            raise ValueError(f"nuisance_strength must be a non-negative number, got {self.nuisance_strength!r}")
        if not np.isfinite(self.expressions_per_second) or self.expressions_per_second <= 0:
            raise ValueError(f"expressions_per_second must be positive, got {self.expressions_per_second!r}")


def _check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{name} must be {bounds}, got {value}")


def _check_pair(name: str, bounds: tuple[float, float], low: float, high: float) -> None:
    if len(bounds) != 2 or not all(np.isfinite(b) for b in bounds) or not low < bounds[0] <= bounds[1] <= high:
        raise ValueError(f"{name} must be (min, max) with {low} < min <= max <= {high}, got {bounds!r}")
