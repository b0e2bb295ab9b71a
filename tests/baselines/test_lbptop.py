from __future__ import annotations

import numpy as np
import pytest

from micronbert.baselines.lbptop import (
    LBPTOPClassifier,
    LBPTOPConfig,
    block_histograms,
    lbptop_codes,
    lbptop_features,
    uniform_bin_count,
    uniform_lbp_mapping,
)

SMALL = LBPTOPConfig(grid=(2, 2), radius_t=2.0)


def _random_clip(seed: int, shape: tuple[int, int, int] = (9, 20, 22)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _smooth_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    noise = rng.normal(size=(height, width))
    kernel = np.ones(3) / 3.0
    for axis in (0, 1):
        noise = np.apply_along_axis(np.convolve, axis, noise, kernel, mode="same")
    return noise


def _moving_texture_clip(rng: np.random.Generator, direction: int, frames: int = 12, size: int = 20) -> np.ndarray:
    """A subject's texture sliding ``direction`` (−1 left, +1 right) by 1 or 2 pixels a frame, random contrast."""
    speed = int(rng.integers(1, 3))
    texture = _smooth_texture(rng, size, size + 2 * speed * frames)
    start = speed * frames
    clip = np.stack([texture[:, start - direction * speed * t: start - direction * speed * t + size]
                     for t in range(frames)])
    contrast, brightness = rng.uniform(20.0, 60.0), rng.uniform(80.0, 170.0)
    return np.clip(brightness + contrast * clip / clip.std(), 0, 255).astype(np.uint8)


def test_uniform_mapping_has_the_u2_bins():
    mapping = uniform_lbp_mapping(8)
    assert uniform_bin_count(8) == 59 and mapping.max() == 58 and len(np.unique(mapping)) == 59
    assert mapping[0] != mapping[255] and mapping[0b00011100] != mapping[0b00001110]
    assert mapping[0b01010101] == mapping[0b00100101] == 58  # non-uniform patterns share the last bin
    assert (np.bincount(mapping)[:-1] == 1).all()  # one code per uniform bin


def test_features_have_the_grid_layout_and_every_histogram_sums_to_one():
    features = lbptop_features(_random_clip(0), SMALL)
    assert features.shape == (SMALL.feature_length,) == (4 * 3 * 59,)
    histograms = features.reshape(4, 3, 59)
    assert (histograms >= 0).all()
    np.testing.assert_allclose(histograms.sum(axis=2), 1.0)
    assert LBPTOPConfig().feature_length == 25 * 177
    uneven = LBPTOPConfig(grid=(1, 3), points_xy=4, points_xt=6, points_yt=8, radius_t=1.0)
    assert lbptop_features(_random_clip(1), uneven).shape == (3 * (15 + 33 + 59),)


def test_xy_codes_of_identical_frames_equal_the_per_frame_lbp_of_scikit_image():
    local_binary_pattern = pytest.importorskip("skimage.feature").local_binary_pattern
    frame = _random_clip(2, (1, 30, 34))[0]
    for points, radius in ((4, 1.0), (8, 1.0), (8, 2.5)):
        config = LBPTOPConfig(grid=(3, 2), points_xy=points, radius_x=radius, radius_y=radius, radius_t=1.0)
        clip = np.repeat(frame[None], 4, axis=0)
        codes = lbptop_codes(clip, config)
        _, top, left = config.margins
        reference = local_binary_pattern(frame, points, radius, "default").astype(np.int64)
        reference = uniform_lbp_mapping(points)[reference[top:30 - top, left:34 - left]]
        assert all(np.array_equal(xy_frame, reference) for xy_frame in codes[0])
        nri = local_binary_pattern(frame, points, radius, "nri_uniform")[top:30 - top, left:34 - left]
        pairs = set(zip(codes[0][0].ravel().tolist(), nri.ravel().tolist()))
        assert len(pairs) == len({ours for ours, _ in pairs}) == len({theirs for _, theirs in pairs})
        per_frame = block_histograms((codes[0][:1], codes[1][:1], codes[2][:1]), config)
        np.testing.assert_allclose(block_histograms(codes, config), per_frame)


def test_a_flat_clip_reads_all_ones_on_every_plane():
    clip = np.full((11, 16, 16), 97, dtype=np.uint8)
    flat_bin = uniform_lbp_mapping(8)[255]
    for plane_codes in lbptop_codes(clip, SMALL):
        assert (plane_codes == flat_bin).all()
    histograms = lbptop_features(clip, SMALL).reshape(4, 3, 59)
    assert (histograms[:, :, flat_bin] == 1.0).all()


def test_temporal_planes_of_a_static_clip_are_constant_in_time_and_symmetric_under_time_reversal():
    frame = _random_clip(3, (1, 18, 18))[0]
    clip = np.repeat(frame[None], 9, axis=0)
    config = LBPTOPConfig(grid=(1, 1), radius_t=3.0)
    _, xt, yt = lbptop_codes(clip, config)
    for codes in (xt, yt):
        assert all(np.array_equal(codes[0], codes[t]) for t in range(len(codes)))
    # time reversal maps bit p to bit (P − p) mod P; a static clip is its own reversal, so its raw codes are symmetric
    mapping = uniform_lbp_mapping(8)
    raw = np.arange(256)
    bits = (raw[:, None] >> np.arange(8)) & 1
    symmetric = raw[(bits == bits[:, (-np.arange(8)) % 8]).all(axis=1)]
    assert np.isin(xt, mapping[symmetric]).all() and np.isin(yt, mapping[symmetric]).all()
    moving = _moving_texture_clip(np.random.default_rng(4), direction=1)
    assert not np.isin(lbptop_codes(moving, config)[1], mapping[symmetric]).all()


def test_time_reversal_mirrors_the_xt_histogram_of_moving_texture():
    clip = _moving_texture_clip(np.random.default_rng(5), direction=1)
    config = LBPTOPConfig(grid=(1, 1), radius_t=2.0)
    forward = lbptop_codes(clip, config)[1]
    backward = lbptop_codes(clip[::-1].copy(), config)[1]
    assert np.array_equal(forward[::-1], _reverse_time(backward))


def _reverse_time(bins: np.ndarray) -> np.ndarray:
    """Map u2 bins of P = 8 codes through the bit permutation p → (P − p) mod P (uniform patterns stay uniform)."""
    mapping = uniform_lbp_mapping(8)
    raw = np.arange(256)
    bits = (raw[:, None] >> np.arange(8)) & 1
    reversed_raw = (bits[:, (-np.arange(8)) % 8] << np.arange(8)).sum(axis=1)
    first_code = np.full(59, -1)
    for code in raw[::-1]:
        first_code[mapping[code]] = code
    return mapping[reversed_raw[first_code[bins]]]


def test_the_classifier_tells_leftward_from_rightward_motion_on_held_out_subjects():
    rng = np.random.default_rng(6)
    clips, labels, subjects = [], [], []
    for subject in range(10):
        subject_rng = np.random.default_rng(rng.integers(1 << 31))
        for repeat in range(8):
            label = repeat % 2
            clips.append(_moving_texture_clip(subject_rng, direction=1 if label else -1))
            labels.append(label)
            subjects.append(subject)
    labels_array, subjects_array = np.array(labels), np.array(subjects)
    classifier = LBPTOPClassifier(2, SMALL)
    features = classifier.features(clips)
    train = subjects_array < 6
    classifier.fit(features[train], labels_array[train])
    probabilities = classifier.predict_proba(features[~train])
    assert probabilities.shape == (int((~train).sum()), 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    accuracy = (probabilities.argmax(axis=1) == labels_array[~train]).mean()
    assert accuracy >= 0.85
    appearance_only = features.reshape(len(features), 4, 3, 59).copy()
    appearance_only[:, :, 1:] = 0.0  # keep XY, drop XT and YT: the direction of motion is no longer visible
    appearance_only = appearance_only.reshape(len(features), -1)
    blind = LBPTOPClassifier(2, SMALL).fit(appearance_only[train], labels_array[train])
    assert (blind.predict(appearance_only[~train]) == labels_array[~train]).mean() <= 0.75
    again = LBPTOPClassifier(2, SMALL).fit(features[train], labels_array[train])
    np.testing.assert_array_equal(again.predict_proba(features[~train]), probabilities)


def test_a_class_absent_from_training_gets_probability_zero():
    rng = np.random.default_rng(7)
    features = rng.random((12, SMALL.feature_length))
    labels = np.array([0, 2] * 6)
    classifier = LBPTOPClassifier(3, SMALL).fit(features, labels)
    probabilities = classifier.predict_proba(features)
    assert probabilities.shape == (12, 3) and (probabilities[:, 1] == 0).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert set(classifier.predict(features)) <= {0, 2}


def test_bad_clips_and_settings_are_refused_with_clear_messages():
    with pytest.raises(ValueError, match="uint8"):
        lbptop_features(np.zeros((9, 20, 20), dtype=np.float32), SMALL)
    with pytest.raises(ValueError, match="grey clip"):
        lbptop_features(np.zeros((9, 20, 20, 3), dtype=np.uint8), SMALL)
    with pytest.raises(ValueError, match="at least 5"):
        lbptop_features(np.zeros((4, 20, 20), dtype=np.uint8), SMALL)
    with pytest.raises(ValueError, match="too small"):
        lbptop_features(np.zeros((9, 3, 20), dtype=np.uint8), SMALL)
    with pytest.raises(ValueError, match="numpy array"):
        lbptop_features([[[0]]], SMALL)
    with pytest.raises(ValueError, match="points_xt"):
        LBPTOPConfig(points_xt=17)
    with pytest.raises(ValueError, match="radius_t"):
        LBPTOPConfig(radius_t=0)
    with pytest.raises(ValueError, match="grid"):
        LBPTOPConfig(grid=(5,))
    with pytest.raises(ValueError, match="svm_c"):
        LBPTOPConfig(svm_c=-1.0)
    with pytest.raises(ValueError, match="clip 1"):
        LBPTOPClassifier(2, SMALL).features([_random_clip(0), _random_clip(1, (2, 20, 20))])
    classifier = LBPTOPClassifier(2, SMALL)
    with pytest.raises(RuntimeError, match="before fit"):
        classifier.predict_proba(np.zeros((1, SMALL.feature_length)))
    with pytest.raises(ValueError, match="one class"):
        classifier.fit(np.zeros((3, SMALL.feature_length)), [1, 1, 1])
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        classifier.fit(np.zeros((2, SMALL.feature_length)), [0, 2])
    with pytest.raises(ValueError, match="matrix"):
        classifier.fit(np.zeros((2, 5)), [0, 1])
    with pytest.raises(ValueError, match="num_classes"):
        LBPTOPClassifier(1)
