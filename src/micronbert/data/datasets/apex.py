"""Apex estimation for samples whose apex is not annotated (SMIC, CAS(ME)^3 Part C, CASME II ``/``).

Two methods: ``estimate`` takes the frame that differs most from the onset frame (mean absolute
luminance difference on a downscaled copy) and falls back to the midpoint when the frames are not
available or cannot be read; ``midpoint`` takes the onset-offset midpoint directly.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from micronbert.data.frames import frame_number, read_grey

APEX_METHODS: tuple[str, ...] = ("estimate", "midpoint")
_COMPARE_WIDTH = 64


@dataclass(frozen=True)
class ApexEstimate:
    """An apex frame number and how it was obtained (``estimated`` or ``midpoint``)."""

    frame: int
    source: str
    problem: str | None = None


def midpoint_apex(onset: int, offset: int) -> int:
    """The onset-offset midpoint, rounded down."""
    if onset > offset:
        raise ValueError(f"onset {onset} after offset {offset}")
    return onset + (offset - onset) // 2


def largest_change_apex(frames: Sequence[str | Path]) -> int:
    """Frame number of the frame that differs most from the first frame (the onset).

    Raises ValueError for fewer than two frames and propagates frame-reading errors.
    """
    if len(frames) < 2:
        raise ValueError(f"need at least two frames to estimate an apex, got {len(frames)}")
    reference = _small_grey(frames[0])
    changes = [_mean_abs_difference(reference, _small_grey(path)) for path in frames[1:]]
    return frame_number(frames[1 + int(np.argmax(changes))])


def resolve_apex(frames: Sequence[str | Path], onset: int, offset: int, method: str) -> ApexEstimate:
    """Apex for a sample without a usable annotated apex, by ``method`` (see module docstring)."""
    if method not in APEX_METHODS:
        raise ValueError(f"unknown apex method {method!r}; choose one of {list(APEX_METHODS)}")
    if method == "midpoint":
        return ApexEstimate(midpoint_apex(onset, offset), "midpoint")
    if len(frames) < 2:
        return ApexEstimate(midpoint_apex(onset, offset), "midpoint", "frames unavailable for apex estimation")
    try:
        return ApexEstimate(largest_change_apex(frames), "estimated")
    except (OSError, ValueError) as error:
        return ApexEstimate(midpoint_apex(onset, offset), "midpoint", f"apex estimation failed: {error}")


def _small_grey(path: str | Path) -> np.ndarray:
    grey = read_grey(path)
    height, width = grey.shape
    if width > _COMPARE_WIDTH:
        size = (_COMPARE_WIDTH, max(1, round(height * _COMPARE_WIDTH / width)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return grey.astype(np.float32)


def _mean_abs_difference(reference: np.ndarray, image: np.ndarray) -> float:
    if image.shape != reference.shape:
        raise ValueError(f"frame size {image.shape} differs from the onset frame's {reference.shape}")
    return float(np.mean(np.abs(image - reference)))
