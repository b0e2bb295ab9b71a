"""Post-processing of spotting signals: Moilanen contrast and threshold, peaks, intervals, the micro/macro split by
duration and overlap suppression, on hand-made signals whose answers are worked out by hand in the comments."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from micronbert.spotting.peaks import (
    IntervalShape,
    PeakRule,
    drop_micro_within_macro,
    duration_types,
    find_peaks,
    moilanen_contrast,
    moilanen_threshold,
    moving_average,
    suppress_overlaps,
)

# F_t of a hand-made signal with one bump at t = 4
SIGNAL = np.array([0.0, 0.0, 1.0, 2.0, 6.0, 2.0, 1.0, 0.0, 0.0])


def test_moilanen_contrast_by_hand() -> None:
    # k = 2: C_t = max(0, F_t - (F_{t-2} + F_{t+2}) / 2); at the ends the one existing neighbour is the reference
    # t=0: 0 - F2=1 -> 0; t=1: 0 - F3=2 -> 0; t=2: 1 - (0+6)/2 -> 0; t=3: 2 - (0+2)/2 = 1; t=4: 6 - (1+1)/2 = 5;
    # t=5: 2 - (2+0)/2 = 1; t=6: 1 - (6+0)/2 -> 0; t=7: 0 - F5=2 -> 0; t=8: 0 - F6=1 -> 0
    np.testing.assert_allclose(moilanen_contrast(SIGNAL, 2), [0, 0, 0, 1, 5, 1, 0, 0, 0])


def test_contrast_with_missing_values() -> None:
    signal = SIGNAL.copy()
    signal[6] = np.nan  # no face at t=6: t=4 is compared with F2 alone (6 - 1 = 5), t=6 itself gets 0
    signal[0] = np.nan  # t=2 is compared with F4 alone: 1 - 6 -> 0
    contrast = moilanen_contrast(signal, 2)
    assert contrast[4] == 5 and contrast[6] == 0 and contrast[0] == 0 and contrast[2] == 0
    assert np.isfinite(contrast).all()


def test_threshold_and_peaks_give_the_hand_computed_interval() -> None:
    contrast = moilanen_contrast(SIGNAL, 2)  # [0, 0, 0, 1, 5, 1, 0, 0, 0]: mean 7/9, max 5
    assert moilanen_threshold(contrast, 0.5) == pytest.approx(7 / 9 + 0.5 * (5 - 7 / 9))  # 26/9 = 2.89
    assert moilanen_threshold(contrast, 0.0) == pytest.approx(7 / 9)
    assert moilanen_threshold(contrast, 1.0) == pytest.approx(5)
    peaks, scores = PeakRule(k=2, p=0.5, window=1, min_distance=2).peaks(contrast)
    assert peaks.tolist() == [4]
    assert scores == pytest.approx([5 / (26 / 9)])
    # p = 0: T = 7/9 keeps t=3, 4, 5 above it, but only t=4 is a local maximum
    assert PeakRule(k=2, p=0.0).peaks(contrast)[0].tolist() == [4]
    # p = 1: nothing is strictly above the maximum
    assert PeakRule(k=2, p=1.0).peaks(contrast)[0].tolist() == []
    # frame 4 of a signal whose first frame is number 11 is frame 15; 5 frames, apex in the middle: [13, 17]
    onset, offset = IntervalShape(5, 0.5).around(11 + peaks, first=11, last=19)
    assert (onset.tolist(), offset.tolist()) == ([13], [17])


def test_flat_signal_has_no_peak() -> None:
    contrast = moilanen_contrast(np.ones(20), 3)
    assert not contrast.any()
    assert PeakRule(k=3, p=0.2).peaks(contrast)[0].size == 0


def test_find_peaks_minimum_distance_and_plateaus() -> None:
    values = np.array([0, 3, 0, 2, 0, 0, 4, 0], dtype=float)
    # maxima 1 (3), 3 (2), 6 (4); by height: 6 kept, 1 kept (5 apart), 3 dropped (2 from 1)
    assert find_peaks(values, 1.0, 3).tolist() == [1, 6]
    assert find_peaks(values, 1.0, 1).tolist() == [1, 3, 6]
    assert find_peaks(values, 3.0, 1).tolist() == [6]  # strictly above the threshold
    assert find_peaks(np.array([0, 2, 2, 0.0]), 1.0, 1).tolist() == [1]  # a flat top counts once
    assert find_peaks(np.array([0, 2, 2, 3.0]), 1.0, 1).tolist() == [3]  # a shelf is not a maximum
    assert find_peaks(np.array([5.0, 1, 5]), 0.0, 2).tolist() == [0, 2]  # equal heights, far enough apart
    assert find_peaks(np.array([5.0, 1, 5]), 0.0, 3).tolist() == [0]  # too close: the earlier one wins


def test_moving_average() -> None:
    np.testing.assert_allclose(moving_average(np.array([0, 0, 3, 0, 0.0]), 3), [0, 1, 1, 1, 0])
    np.testing.assert_allclose(moving_average(np.array([3, 0, 0.0]), 3), [1.5, 1, 0])  # shrinking at the ends
    with pytest.raises(ValueError, match="odd"):
        moving_average(np.zeros(4), 2)


def test_interval_shape_places_the_apex_and_clips() -> None:
    shape = IntervalShape(11, 0.4)  # apex 4 frames after the onset: round(0.4 * 10)
    onset, offset = shape.around(np.array([20, 2, 99]), first=1, last=100)
    assert onset.tolist() == [16, 1, 95]
    assert offset.tolist() == [26, 8, 100]
    with pytest.raises(ValueError, match="length"):
        IntervalShape(0)
    with pytest.raises(ValueError, match="apex_fraction"):
        IntervalShape(5, 1.5)


def test_micro_macro_split_by_duration() -> None:
    # 0.5 s is 15 frames at 30 fps and 100 frames at 200 fps (offset - onset)
    assert duration_types(np.array([1, 1]), np.array([16, 17]), 30).tolist() == ["micro", "macro"]
    assert duration_types(np.array([1, 1]), np.array([101, 102]), 200).tolist() == ["micro", "macro"]
    assert duration_types(np.array([1]), np.array([31]), 30, max_micro_s=1.0).tolist() == ["micro"]


def intervals(*rows: tuple[str, int, int, int, str, float]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=["video", "onset", "offset", "apex", "type", "score"])


def test_suppress_overlaps_keeps_the_best_of_each_cluster() -> None:
    table = intervals(
        ("a", 1, 10, 5, "micro", 1.0),
        ("a", 2, 11, 6, "micro", 2.0),   # IoU with the first 9/11 > 0.5: the first goes
        ("a", 10, 19, 15, "micro", 1.5),  # IoU with the second 2/19: kept
        ("a", 1, 10, 5, "macro", 0.5),    # another type: kept
        ("b", 2, 11, 6, "micro", 0.1),    # another video: kept
    )
    kept = suppress_overlaps(table, 0.5)
    assert kept[["video", "onset", "type"]].values.tolist() == [
        ["a", 2, "micro"], ["a", 10, "micro"], ["a", 1, "macro"], ["b", 2, "micro"]]


def test_micro_inside_a_macro_interval_is_dropped_unless_much_stronger() -> None:
    table = intervals(
        ("a", 10, 60, 35, "macro", 2.0),
        ("a", 20, 30, 25, "micro", 3.0),  # apex inside the macro interval, score 3 <= 2 * 2: dropped
        ("a", 50, 60, 55, "micro", 5.0),  # inside, 5 > 4: kept
        ("a", 70, 80, 75, "micro", 0.1),  # outside: kept
        ("b", 20, 30, 25, "micro", 0.1),  # another video: kept
    )
    kept = drop_micro_within_macro(table, 2.0)
    assert kept[["video", "onset"]].values.tolist() == [["a", 10], ["a", 50], ["a", 70], ["b", 20]]


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="k must"):
        moilanen_contrast(SIGNAL, 0)
    with pytest.raises(ValueError, match="p must"):
        moilanen_threshold(SIGNAL, 1.5)
    with pytest.raises(ValueError, match="1-D"):
        moilanen_contrast(np.zeros((3, 3)), 1)
    with pytest.raises(ValueError, match="min_distance"):
        find_peaks(SIGNAL, 0.0, 0)
