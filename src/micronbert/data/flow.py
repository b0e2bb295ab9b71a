"""Onset→apex optical flow, optical strain and the STSTNet-style 3-channel flow image.

Flow convention (OpenCV): for ``flow = optical_flow(onset, apex)``, the pixel at ``(x, y)`` of the onset frame is
found at ``(x + u, y + v)`` in the apex frame; ``u`` is horizontal (positive to the right), ``v`` vertical
(positive downwards), both in pixels.

Methods:

- ``"tvl1"``: Dual TV-L1 (Zach et al. 2007), the flow used by STSTNet and its lineage. It lives in
  ``cv2.optflow``, which only the opencv-contrib wheels provide; the project depends on plain
  ``opencv-python-headless``, so it is normally unavailable and asking for it raises ``ImportError``.
- ``"dis"``: Dense Inverse Search (Kroeger et al. 2016), in core OpenCV. The documented alternative: dense,
  variational refinement included, fast on CPU.
- ``"farneback"``: Farnebäck polynomial expansion, in core OpenCV.
- ``"auto"``: TV-L1 when ``cv2.optflow`` exists, otherwise DIS (logged once per process).

Because the fallback changes the input distribution, published STSTNet weights trained on TV-L1 images are
expected to score somewhat differently on DIS features; record the method used with any result.
"""
from __future__ import annotations

import functools
import logging
from typing import Literal

import cv2
import numpy as np

from micronbert.data.frames import to_grey
from micronbert.io import check_positive_int

FlowMethod = Literal["auto", "tvl1", "dis", "farneback"]
FLOW_METHODS: tuple[str, ...] = ("auto", "tvl1", "dis", "farneback")
MIN_FLOW_SIZE = 16  # DIS refuses frames below 12 pixels a side; keep a margin

logger = logging.getLogger(__name__)


def tvl1_available() -> bool:
    """Whether OpenCV's Dual TV-L1 flow (``cv2.optflow``, opencv-contrib only) can be used."""
    return hasattr(cv2, "optflow") and hasattr(cv2.optflow, "DualTVL1OpticalFlow_create")


@functools.cache
def _note_tvl1_fallback() -> None:
    logger.info(
        "TV-L1 optical flow needs cv2.optflow (opencv-contrib), which is not installed; "
        "method='auto' uses DIS optical flow instead"
    )


def _resolve_method(method: str) -> str:
    if method not in FLOW_METHODS:
        raise ValueError(f"unknown optical-flow method {method!r}; choose one of {FLOW_METHODS}")
    if method == "tvl1" and not tvl1_available():
        raise ImportError(
            "method='tvl1' needs cv2.optflow from opencv-contrib-python(-headless), which is not installed; "
            "use method='dis' or 'farneback', or 'auto' to fall back automatically"
        )
    if method == "auto":
        if tvl1_available():
            return "tvl1"
        _note_tvl1_fallback()
        return "dis"
    return method


def _check_same_shape(onset: np.ndarray, apex: np.ndarray) -> None:
    if getattr(onset, "shape", None) != getattr(apex, "shape", None):
        raise ValueError(
            f"onset and apex must have the same shape, got {getattr(onset, 'shape', None)} "
            f"and {getattr(apex, 'shape', None)}"
        )


def _dense_flow(onset_grey: np.ndarray, apex_grey: np.ndarray, method: str) -> np.ndarray:
    if method == "tvl1":
        return cv2.optflow.DualTVL1OpticalFlow_create().calc(onset_grey, apex_grey, None)
    if method == "dis":
        return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(onset_grey, apex_grey, None)
    return cv2.calcOpticalFlowFarneback(
        onset_grey, apex_grey, None, pyr_scale=0.5, levels=3, winsize=15, iterations=3,
        poly_n=5, poly_sigma=1.2, flags=0,
    )


def optical_flow(onset: np.ndarray, apex: np.ndarray, method: FlowMethod = "auto") -> np.ndarray:
    """Dense optical flow from ``onset`` to ``apex`` as a float32 (H, W, 2) array of (u, v) in pixels.

    Args:
        onset, apex: uint8 frames of the same shape, grey (H, W) or RGB (H, W, 3), at least 16×16.
        method: ``"auto"``, ``"tvl1"``, ``"dis"`` or ``"farneback"`` (see the module docstring).

    Raises:
        ValueError: shapes differ, wrong dtype or layout, or an unknown method.
        ImportError: ``method="tvl1"`` without opencv-contrib.
    """
    _check_same_shape(onset, apex)
    resolved = _resolve_method(method)
    onset_grey, apex_grey = to_grey(onset, "onset"), to_grey(apex, "apex")
    if min(onset_grey.shape) < MIN_FLOW_SIZE:
        raise ValueError(
            f"frames of shape {onset.shape} are too small for optical flow "
            f"(need at least {MIN_FLOW_SIZE}×{MIN_FLOW_SIZE})"
        )
    flow = _dense_flow(onset_grey, apex_grey, resolved)
    return flow.astype(np.float32, copy=False)


def optical_strain(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Optical-strain magnitude of the flow field (u, v), float32 (H, W).

    With the strain tensor ε = ½(∇w + ∇wᵀ) of w = (u, v), the magnitude is
    sqrt(ε_xx² + ε_yy² + 2·ε_xy²) = sqrt(u_x² + v_y² + ½·(u_y + v_x)²); derivatives are central differences
    (one-sided at the borders). A pure translation has zero strain.

    Raises:
        ValueError: u and v are not 2-D arrays of the same shape, at least 2×2.
    """
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if u.ndim != 2 or u.shape != v.shape:
        raise ValueError(f"u and v must be 2-D arrays of the same shape, got {u.shape} and {v.shape}")
    if min(u.shape) < 2:
        raise ValueError(f"strain needs a field of at least 2×2, got {u.shape}")
    u_y, u_x = np.gradient(u)
    v_y, v_x = np.gradient(v)
    return np.sqrt(u_x**2 + v_y**2 + 0.5 * (u_y + v_x) ** 2).astype(np.float32)


def minmax_to_uint8(channel: np.ndarray) -> np.ndarray:
    """Scale a 2-D array linearly so its minimum is 0 and maximum 255, rounded to uint8.

    A constant channel (no range) becomes all zeros.
    """
    channel = np.asarray(channel, dtype=np.float64)
    if not np.all(np.isfinite(channel)):
        raise ValueError("channel holds NaN or infinite values")
    low, high = channel.min(), channel.max()
    if high == low:
        return np.zeros(channel.shape, dtype=np.uint8)
    return np.rint((channel - low) * (255.0 / (high - low))).astype(np.uint8)


def flow_features(
    onset: np.ndarray, apex: np.ndarray, size: int = 28, method: FlowMethod = "auto"
) -> np.ndarray:
    """The STSTNet input image: onset→apex (u, v, optical strain) as uint8 (size, size, 3).

    Flow and strain are computed at the frames' resolution, each channel is resized to size×size (area
    interpolation) and then min-max scaled to 0–255 on its own. Channel order is (u, v, strain). Weights
    trained on PNGs whose RGB channels held (u, v, strain) but were read with ``cv2.imread`` (BGR) saw the
    reversed order; feed such weights ``features[..., ::-1]``.

    Raises:
        ValueError: frames differ in shape or layout, or size < 1.
    """
    check_positive_int("size", size)
    flow = optical_flow(onset, apex, method)
    u, v = flow[..., 0], flow[..., 1]
    channels = (u, v, optical_strain(u, v))
    resized = [cv2.resize(channel, (size, size), interpolation=cv2.INTER_AREA) for channel in channels]
    return np.stack([minmax_to_uint8(channel) for channel in resized], axis=-1)
