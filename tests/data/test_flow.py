from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from micronbert.data import flow as flow_module
from micronbert.data.flow import (
    flow_features,
    minmax_to_uint8,
    optical_flow,
    optical_strain,
    to_grey,
)

MARGIN = 16


def _texture(size: int = 96, seed: int = 0) -> np.ndarray:
    noise = (np.random.default_rng(seed).random((size, size)) * 255).astype(np.uint8)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    return cv2.normalize(smooth, None, 0, 255, cv2.NORM_MINMAX)


def _shifted(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    return np.roll(image, shift=(dy, dx), axis=(0, 1))


def _interior(array: np.ndarray) -> np.ndarray:
    return array[MARGIN:-MARGIN, MARGIN:-MARGIN]


@pytest.mark.parametrize("method", ["auto", "dis", "farneback"])
@pytest.mark.parametrize(("dx", "dy"), [(3, 0), (-2, 0), (0, 2), (1, -2)])
def test_flow_recovers_a_known_shift(method, dx, dy):
    onset = _texture()
    flow = optical_flow(onset, _shifted(onset, dx, dy), method=method)
    assert flow.shape == (96, 96, 2)
    assert flow.dtype == np.float32
    assert np.median(_interior(flow[..., 0])) == pytest.approx(dx, abs=0.25)
    assert np.median(_interior(flow[..., 1])) == pytest.approx(dy, abs=0.25)


def test_rgb_frames_give_the_same_flow_as_their_grey_version():
    grey = _texture()
    rgb = np.repeat(grey[..., None], 3, axis=2)
    shifted = _shifted(grey, 2, 0)
    np.testing.assert_allclose(
        optical_flow(rgb, np.repeat(shifted[..., None], 3, axis=2), "dis"),
        optical_flow(grey, shifted, "dis"),
        atol=1e-5,
    )


def test_strain_of_a_constant_field_is_zero():
    u = np.full((10, 12), 3.5)
    v = np.full((10, 12), -1.0)
    np.testing.assert_array_equal(optical_strain(u, v), 0.0)


def test_strain_of_estimated_pure_translation_is_near_zero():
    onset = _texture()
    flow = optical_flow(onset, _shifted(onset, 3, 1), "dis")
    assert np.median(_interior(optical_strain(flow[..., 0], flow[..., 1]))) < 0.05


def test_strain_of_a_uniform_stretch_and_a_shear():
    ys, xs = np.mgrid[0:8, 0:9].astype(np.float64)
    # u = 0.3·x: u_x = 0.3, all else 0 → sqrt(0.3²)
    np.testing.assert_allclose(optical_strain(0.3 * xs, np.zeros_like(xs)), 0.3, rtol=1e-6)
    # u = 0.4·y: u_y = 0.4 → sqrt(0.5·0.4²)
    np.testing.assert_allclose(optical_strain(0.4 * ys, np.zeros_like(ys)), np.sqrt(0.5) * 0.4, rtol=1e-6)
    # v = 0.2·y and u = 0.1·x: sqrt(0.1² + 0.2²)
    np.testing.assert_allclose(optical_strain(0.1 * xs, 0.2 * ys), np.hypot(0.1, 0.2), rtol=1e-6)


def test_strain_rejects_mismatched_fields():
    with pytest.raises(ValueError, match="same shape"):
        optical_strain(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="at least 2"):
        optical_strain(np.zeros((1, 4)), np.zeros((1, 4)))


def test_minmax_to_uint8_hand_cases():
    np.testing.assert_array_equal(minmax_to_uint8(np.array([[-1.0, 0.0, 1.0]])), [[0, 128, 255]])
    np.testing.assert_array_equal(minmax_to_uint8(np.full((2, 2), 7.0)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        minmax_to_uint8(np.array([[0.0, np.nan]]))


def _zoomed(image: np.ndarray, scale: float) -> np.ndarray:
    centre = (image.shape[1] / 2, image.shape[0] / 2)
    matrix = cv2.getRotationMatrix2D(centre, 0.0, scale)
    return cv2.warpAffine(image, matrix, image.shape[::-1], borderMode=cv2.BORDER_REFLECT)


def test_flow_features_are_the_scaled_resized_u_v_strain():
    onset = _texture()
    apex = _zoomed(onset, 1.05)
    features = flow_features(onset, apex, size=28, method="dis")
    assert features.shape == (28, 28, 3)
    assert features.dtype == np.uint8
    assert features.reshape(-1, 3).min(axis=0).tolist() == [0, 0, 0]
    assert features.reshape(-1, 3).max(axis=0).tolist() == [255, 255, 255]
    flow = optical_flow(onset, apex, "dis")
    u_small = cv2.resize(flow[..., 0], (28, 28), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(features[..., 0], minmax_to_uint8(u_small))
    # a zoom about the centre moves the right side right: u grows from left to right
    assert features[:, -4:, 0].mean() > features[:, :4, 0].mean() + 100


def test_flow_features_size_parameter():
    onset = _texture(64)
    assert flow_features(onset, _shifted(onset, 1, 0), size=14, method="farneback").shape == (14, 14, 3)
    with pytest.raises(ValueError, match="size"):
        flow_features(onset, onset, size=0)


@pytest.mark.parametrize(
    ("onset", "apex", "message"),
    [
        (np.zeros((32, 32), np.uint8), np.zeros((32, 30), np.uint8), "same shape"),
        (np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32), np.uint8), "same shape"),
        (np.zeros((32, 32), np.float32), np.zeros((32, 32), np.float32), "uint8"),
        (np.zeros((32, 32, 4), np.uint8), np.zeros((32, 32, 4), np.uint8), "grey"),
        (np.zeros((15, 40), np.uint8), np.zeros((15, 40), np.uint8), "too small"),
    ],
)
def test_invalid_frames_raise_value_error(onset, apex, message):
    with pytest.raises(ValueError, match=message):
        optical_flow(onset, apex, "dis")


def test_unknown_method_is_rejected():
    frame = _texture(32)
    with pytest.raises(ValueError, match="unknown optical-flow method"):
        optical_flow(frame, frame, "horn-schunck")


def test_to_grey_accepts_single_channel_arrays():
    frame = _texture(32)
    np.testing.assert_array_equal(to_grey(frame[..., None]), frame)


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_smallest_accepted_frames_give_a_flow(method):
    frame = _texture(16)
    assert optical_flow(frame, _shifted(frame, 1, 0), method).shape == (16, 16, 2)


def test_without_contrib_tvl1_raises_and_auto_falls_back_to_dis_once(monkeypatch, caplog):
    monkeypatch.setattr(flow_module, "tvl1_available", lambda: False)
    flow_module._note_tvl1_fallback.cache_clear()
    onset = _texture(48)
    apex = _shifted(onset, 2, 0)
    with pytest.raises(ImportError, match="opencv-contrib"):
        optical_flow(onset, apex, "tvl1")
    with caplog.at_level(logging.INFO, logger=flow_module.__name__):
        first = optical_flow(onset, apex, "auto")
        optical_flow(onset, apex, "auto")
    notes = [record for record in caplog.records if "TV-L1" in record.getMessage()]
    assert len(notes) == 1
    np.testing.assert_array_equal(first, optical_flow(onset, apex, "dis"))
