from __future__ import annotations

import numpy as np
import pytest

from micronbert.baselines import FrameDifferenceClassifier, FrameDifferenceConfig, frame_difference_features


def test_features_are_the_downsampled_grey_difference():
    onset = np.zeros((16, 16), np.uint8)
    apex = np.zeros((16, 16), np.uint8)
    apex[:, :8] = 20
    features = frame_difference_features(onset, apex, size=4)
    assert features.dtype == np.float32
    np.testing.assert_array_equal(features.reshape(4, 4), [[20, 20, 0, 0]] * 4)
    # the difference is signed: swapping the frames negates it
    np.testing.assert_array_equal(frame_difference_features(apex, onset, size=4), -features)


def test_rgb_frames_are_converted_to_grey():
    onset = np.zeros((16, 16, 3), np.uint8)
    apex = np.full((16, 16, 3), 10, np.uint8)
    np.testing.assert_allclose(frame_difference_features(onset, apex, size=2), [10.0] * 4)


def test_features_reject_invalid_frames():
    with pytest.raises(ValueError, match="same shape"):
        frame_difference_features(np.zeros((16, 16), np.uint8), np.zeros((16, 18), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        frame_difference_features(np.zeros((0, 16), np.uint8), np.zeros((0, 16), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        frame_difference_features(np.zeros((16, 16)), np.zeros((16, 16)))
    with pytest.raises(ValueError, match="size"):
        frame_difference_features(np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.uint8), size=0)


def _pairs(per_class: int, seed: int, num_classes: int = 3):
    """Class c brightens horizontal band c of a noisy face-sized frame between onset and apex."""
    rng = np.random.default_rng(seed)
    onsets, apexes, labels = [], [], []
    for label in range(num_classes):
        for _ in range(per_class):
            onset = rng.integers(60, 120, size=(48, 40), dtype=np.uint8)
            apex = np.clip(onset.astype(int) + rng.integers(-8, 9, size=onset.shape), 0, 255).astype(np.uint8)
            band = slice(16 * label, 16 * label + 16)
            apex[band] = np.clip(apex[band].astype(int) + 40, 0, 255).astype(np.uint8)
            onsets.append(onset)
            apexes.append(apex)
            labels.append(label)
    return onsets, apexes, np.array(labels)


def test_fit_predict_separates_a_synthetic_problem():
    onsets, apexes, labels = _pairs(6, seed=0)
    classifier = FrameDifferenceClassifier(3, FrameDifferenceConfig(size=8, max_iter=50))
    assert classifier.fit(onsets, apexes, labels) is classifier
    test_onsets, test_apexes, test_labels = _pairs(4, seed=1)
    np.testing.assert_array_equal(classifier.predict(test_onsets, test_apexes), test_labels)
    probabilities = classifier.predict_proba(test_onsets, test_apexes)
    assert probabilities.shape == (12, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


def test_fit_is_deterministic():
    onsets, apexes, labels = _pairs(4, seed=2)
    config = FrameDifferenceConfig(size=8, max_iter=30)
    first = FrameDifferenceClassifier(3, config).fit(onsets, apexes, labels).predict_proba(onsets, apexes)
    second = FrameDifferenceClassifier(3, config).fit(onsets, apexes, labels).predict_proba(onsets, apexes)
    np.testing.assert_array_equal(first, second)


def test_balanced_weighting_helps_the_minority_class():
    # a weak cue for class 1 and five times more class-0 samples: without balancing the minority is lost
    rng = np.random.default_rng(3)
    onsets, apexes, labels = [], [], []
    for label, count in ((0, 30), (1, 6)):
        for _ in range(count):
            onset = rng.integers(60, 120, size=(16, 16), dtype=np.uint8)
            shift = 3 if label == 1 else 0
            apex = np.clip(onset.astype(int) + shift + rng.integers(-12, 13, size=onset.shape), 0, 255)
            onsets.append(onset)
            apexes.append(apex.astype(np.uint8))
            labels.append(label)
    config = dict(size=4, max_iter=100, weight_decay=1.0)
    balanced = FrameDifferenceClassifier(2, FrameDifferenceConfig(class_weighted=True, **config))
    plain = FrameDifferenceClassifier(2, FrameDifferenceConfig(class_weighted=False, **config))
    minority_hits = [
        int((model.fit(onsets, apexes, labels).predict(onsets, apexes)[30:] == 1).sum()) for model in (balanced, plain)
    ]
    assert minority_hits[0] > minority_hits[1]


def test_invalid_use_is_reported():
    onsets, apexes, labels = _pairs(1, seed=4)
    classifier = FrameDifferenceClassifier(3, FrameDifferenceConfig(size=4, max_iter=5))
    with pytest.raises(RuntimeError, match="before fit"):
        classifier.predict(onsets, apexes)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        classifier.fit(onsets, apexes, [0, 1, 3])
    with pytest.raises(ValueError, match="vector of 3"):
        classifier.fit(onsets, apexes, [0, 1])
    with pytest.raises(ValueError, match="3 onset frames but 2 apex"):
        classifier.fit(onsets, apexes[:2], labels)
    with pytest.raises(ValueError, match="frame pair 1"):
        classifier.fit(onsets, [apexes[0], apexes[1][:10], apexes[2]], labels)
    with pytest.raises(ValueError, match="no frame pairs"):
        classifier.fit([], [], [])
    with pytest.raises(ValueError, match="num_classes"):
        FrameDifferenceClassifier(1)
    with pytest.raises(ValueError, match="weight_decay"):
        FrameDifferenceConfig(weight_decay=-1.0)
