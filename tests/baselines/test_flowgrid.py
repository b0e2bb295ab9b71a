from __future__ import annotations

import cv2
import numpy as np
import pytest

from micronbert.baselines import FlowGridClassifier, FlowGridConfig, flow_grid_features


def _texture(seed: int, size: int = 64) -> np.ndarray:
    noise = np.random.default_rng(seed).random((size, size)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    return cv2.normalize(smooth, None, 30, 220, cv2.NORM_MINMAX).astype(np.uint8)


def _shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` moved by (dx, dy) px: the pixel at (x, y) ends up at (x + dx, y + dy)."""
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, image.shape[::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def _cells(features: np.ndarray, cells: int) -> np.ndarray:
    return features.reshape(cells, cells, 2)


def test_features_are_the_flow_in_pixels_per_cell():
    onset = _texture(0)
    apex = onset.copy()
    apex[:32] = _shifted(onset, 1.5, 0.0)[:32]  # the top half moves right, the bottom half stays
    grid = _cells(flow_grid_features(onset, apex, cells=4, centred=False), 4)
    assert grid.dtype == np.float32
    # away from the seam (rows 0 and 3 of the grid) the flow is the shift, in OpenCV's convention
    np.testing.assert_allclose(grid[0, :, 0], 1.5, atol=0.3)
    np.testing.assert_allclose(grid[3, :, 0], 0.0, atol=0.3)
    np.testing.assert_allclose(grid[[0, 3], :, 1], 0.0, atol=0.3)


def test_centring_removes_a_global_shift_and_keeps_the_local_motion():
    onset = _texture(1)
    moved = _shifted(onset, 0.0, 1.0)  # the whole head moves down by a pixel ...
    apex = moved.copy()
    apex[:, :16] = _shifted(onset, 0.0, 2.5)[:, :16]  # ... and the left quarter by 1.5 px more
    raw = _cells(flow_grid_features(onset, apex, cells=4, centred=False), 4)
    centred = _cells(flow_grid_features(onset, apex, cells=4), 4)
    np.testing.assert_allclose(raw[:, 2:, 1], 1.0, atol=0.3)
    np.testing.assert_allclose(centred[:, 2:, 1], 0.0, atol=0.3)
    assert centred[:, 0, 1].mean() > 1.0
    assert np.median(centred.reshape(-1, 2), axis=0) == pytest.approx([0.0, 0.0], abs=1e-6)


def test_features_reject_invalid_input():
    frame = _texture(2)
    with pytest.raises(ValueError, match="same shape"):
        flow_grid_features(frame, frame[:, :40])
    with pytest.raises(ValueError, match="cells"):
        flow_grid_features(frame, frame, cells=0)
    with pytest.raises(ValueError, match="optical-flow method"):
        flow_grid_features(frame, frame, method="lucas")
    with pytest.raises(ValueError, match="smaller than a grid of 32"):
        flow_grid_features(frame[:20, :20], frame[:20, :20], cells=32)
    with pytest.raises(ValueError, match="cells must be"):
        FlowGridConfig(cells=0)
    with pytest.raises(ValueError, match="method must be"):
        FlowGridConfig(method="lucas")


def _pairs(per_class: int, seed: int):
    """Class 0: the top band moves right; class 1: it moves left. A random global shift is added to both."""
    rng = np.random.default_rng(seed)
    onsets, apexes, labels = [], [], []
    for label, direction in ((0, 1.0), (1, -1.0)):
        for _ in range(per_class):
            onset = _texture(int(rng.integers(1 << 30)), 48)
            dx, dy = rng.uniform(-1.0, 1.0, size=2)
            apex = _shifted(onset, dx, dy)
            apex[:16] = _shifted(onset, dx + 1.5 * direction, dy)[:16]
            onsets.append(onset)
            apexes.append(apex)
            labels.append(label)
    return onsets, apexes, np.array(labels)


def test_classifier_tells_the_direction_of_a_local_motion():
    onsets, apexes, labels = _pairs(6, seed=0)
    classifier = FlowGridClassifier(2, FlowGridConfig(cells=3, max_iter=50))
    assert classifier.fit(onsets, apexes, labels) is classifier
    test_onsets, test_apexes, test_labels = _pairs(4, seed=1)
    np.testing.assert_array_equal(classifier.predict(test_onsets, test_apexes), test_labels)
    with pytest.raises(ValueError, match="frame pair 1"):
        classifier.predict(test_onsets[:2], [test_apexes[0], test_apexes[1][:, :30]])
