"""From a per-frame signal to spotted intervals (docs/SPOTTING.md steps 5–9).

For one class (micro or macro) with frame distance k, at the signal's (effective) frame rate:

1. Moilanen contrast: C_t = max(0, F_t − ½(F_{t−k} + F_{t+k})), which keeps what stands out from the frames k before
   and k after (a slow drift or a long plateau does not); where one neighbour is missing (the ends of the video, a
   frame without a face) the other is used alone, and where F_t is missing C_t = 0.
2. Optional moving mean over ``window`` frames.
3. Threshold T = mean(C) + p · (max(C) − mean(C)) over the whole video (Moilanen et al. 2014), p the class's factor.
4. Peaks: local maxima of C strictly above T, at least ``min_distance`` frames apart (the higher one wins).
5. Each peak becomes an interval of the class's average length with the apex at the peak
   (``IntervalShape``), clipped to the video; its score is C_peak / T.

Then, over the intervals of both classes of a video: the type of a *prediction* is decided by its duration
(``duration_types``: micro when offset − onset ≤ round(0.5 s · fps) frames, docs/SPOTTING.md; annotated intervals
keep their annotated type), overlapping intervals of one type are suppressed (``suppress_overlaps``), and a micro
interval whose apex lies inside a macro interval is dropped unless it scores clearly higher
(``drop_micro_within_macro``, after MTSN's rule).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from micronbert.spotting.metric import interval_iou

PREDICTION_COLUMNS: tuple[str, ...] = ("video", "onset", "offset", "apex", "type", "score")
MAX_MICRO_S = 0.5


def moilanen_contrast(signal: np.ndarray, k: int) -> np.ndarray:
    """C_t = max(0, F_t − ½(F_{t−k} + F_{t+k})) of a 1-D signal (NaN = missing; see the module docstring)."""
    values = _signal(signal)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    before = np.full_like(values, np.nan)
    after = np.full_like(values, np.nan)
    before[k:], after[:-k] = values[:-k], values[k:]
    neighbours = np.stack([before, after])
    present = np.isfinite(neighbours)
    reference = np.where(present.any(axis=0),
                         np.where(present, neighbours, 0.0).sum(axis=0) / np.maximum(present.sum(axis=0), 1), 0.0)
    contrast = np.where(np.isfinite(values), values - reference, 0.0)
    return np.maximum(contrast, 0.0)


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving mean over ``window`` frames (odd; 1 returns a copy); the window shrinks at the ends."""
    values = _signal(values)
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd positive integer, got {window!r}")
    if window == 1 or values.size == 0:
        return values.copy()
    kernel = np.ones(window)
    return np.convolve(values, kernel, mode="same") / np.convolve(np.ones_like(values), kernel, mode="same")


def moilanen_threshold(contrast: np.ndarray, p: float) -> float:
    """T = mean(C) + p · (max(C) − mean(C)) (0 for an empty signal)."""
    values = _signal(contrast)
    if not (isinstance(p, (int, float)) and math.isfinite(p) and 0.0 <= p <= 1.0):
        raise ValueError(f"threshold factor p must be in [0, 1], got {p!r}")
    if values.size == 0:
        return 0.0
    mean = float(values.mean())
    return mean + p * (float(values.max()) - mean)


def find_peaks(values: np.ndarray, threshold: float, min_distance: int) -> np.ndarray:
    """Indices (ascending) of the local maxima strictly above ``threshold``, at least ``min_distance`` apart: among
    closer ones the higher is kept (the earlier one on a tie). A flat top counts once, at its first frame."""
    values = _signal(values)
    if isinstance(min_distance, bool) or not isinstance(min_distance, (int, np.integer)) or min_distance < 1:
        raise ValueError(f"min_distance must be a positive integer, got {min_distance!r}")
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    previous = np.concatenate([[-np.inf], values[:-1]])
    starts = np.flatnonzero(values[1:] != values[:-1]) + 1  # first frame of each run of equal values
    next_value = np.append(values[starts], -np.inf)[np.searchsorted(starts, np.arange(values.size), side="right")]
    # a maximum rose into its first frame and the next different value is lower
    candidates = np.flatnonzero((values > previous) & (next_value < values) & (values > threshold))
    blocked = np.zeros(values.size, dtype=bool)
    kept = []
    for index in candidates[np.lexsort((candidates, -values[candidates]))]:
        if not blocked[index]:
            kept.append(index)
            blocked[max(0, index - min_distance + 1):index + min_distance] = True
    return np.sort(np.array(kept, dtype=np.int64))


@dataclass(frozen=True)
class IntervalShape:
    """The interval given to a peak: ``length`` frames (both ends included) with the apex ``apex_fraction`` of the
    way from onset to offset."""

    length: int
    apex_fraction: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.length, bool) or not isinstance(self.length, (int, np.integer)) or self.length < 1:
            raise ValueError(f"interval length must be a positive integer, got {self.length!r}")
        if not (math.isfinite(self.apex_fraction) and 0.0 <= self.apex_fraction <= 1.0):
            raise ValueError(f"apex_fraction must be in [0, 1], got {self.apex_fraction!r}")

    def around(self, apex: np.ndarray, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """(onsets, offsets) of intervals with their apex at ``apex``, clipped to frames [first, last]."""
        apex = np.asarray(apex, dtype=np.int64)
        onset = apex - int(round(self.apex_fraction * (self.length - 1)))
        offset = onset + self.length - 1
        return np.clip(onset, first, last), np.clip(offset, first, last)


def duration_types(onset: np.ndarray, offset: np.ndarray, fps: float, max_micro_s: float = MAX_MICRO_S) -> np.ndarray:
    """``micro`` where offset − onset ≤ round(max_micro_s · fps) frames, else ``macro`` (for predictions only)."""
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    limit = round(max_micro_s * fps)
    span = np.asarray(offset) - np.asarray(onset)
    return np.where(span <= limit, "micro", "macro")


def suppress_overlaps(intervals: pd.DataFrame, iou_threshold: float) -> pd.DataFrame:
    """Per video and type, greedily keep the highest-scoring intervals and drop any whose IoU (inclusive frames) with
    a kept one exceeds ``iou_threshold``; rows keep their order."""
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold!r}")
    keep = np.zeros(len(intervals), dtype=bool)
    positions = pd.RangeIndex(len(intervals))
    for _, group in intervals.assign(_row=positions).groupby(["video", "type"], sort=False):
        order = group.sort_values("score", ascending=False, kind="stable")
        iou = interval_iou(order["onset"], order["offset"], order["onset"], order["offset"])
        chosen: list[int] = []
        for i in range(len(order)):
            if all(iou[i, j] <= iou_threshold for j in chosen):
                chosen.append(i)
        keep[order["_row"].to_numpy()[chosen]] = True
    return intervals[keep].reset_index(drop=True)


def drop_micro_within_macro(intervals: pd.DataFrame, ratio: float) -> pd.DataFrame:
    """Drop each micro interval whose apex lies inside a macro interval of the same video unless its score exceeds
    ``ratio`` times that macro interval's score (the highest such one)."""
    if not (math.isfinite(ratio) and ratio >= 0):
        raise ValueError(f"ratio must be a non-negative number, got {ratio!r}")
    keep = np.ones(len(intervals), dtype=bool)
    videos = intervals["video"].to_numpy()
    types = intervals["type"].to_numpy()
    onset, offset = intervals["onset"].to_numpy(), intervals["offset"].to_numpy()
    apex, score = intervals["apex"].to_numpy(), intervals["score"].to_numpy(dtype=np.float64)
    for i in np.flatnonzero(types == "micro"):
        covering = (videos == videos[i]) & (types == "macro") & (onset <= apex[i]) & (offset >= apex[i])
        if covering.any() and score[i] <= ratio * score[covering].max():
            keep[i] = False
    return intervals[keep].reset_index(drop=True)


def empty_predictions() -> pd.DataFrame:
    """A prediction table without rows."""
    return pd.DataFrame({"video": pd.Series(dtype=object), "onset": pd.Series(dtype="int64"),
                         "offset": pd.Series(dtype="int64"), "apex": pd.Series(dtype="int64"),
                         "type": pd.Series(dtype=object), "score": pd.Series(dtype="float64")})


@dataclass(frozen=True)
class PeakRule:
    """How one class's peaks are found in its signal: frame distance ``k``, threshold factor ``p``, moving-mean
    ``window`` (odd) and ``min_distance`` between peaks, all in frames of the signal."""

    k: int
    p: float
    window: int = 1
    min_distance: int = 1

    def contrast(self, signal: np.ndarray) -> np.ndarray:
        """The smoothed Moilanen contrast of ``signal``."""
        return moving_average(moilanen_contrast(signal, self.k), self.window)

    def peaks(self, contrast: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(peak indices, scores C_peak / T) of an already computed contrast."""
        threshold = moilanen_threshold(contrast, self.p)
        peaks = find_peaks(contrast, threshold, self.min_distance)
        if threshold <= 0:
            return peaks[:0], np.zeros(0)
        return peaks, contrast[peaks] / threshold


def _signal(values: np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"expected a 1-D signal, got shape {array.shape}")
    return array
