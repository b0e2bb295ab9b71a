"""Naive baseline: onset→apex frame difference, downsampled, fed to a linear (softmax) classifier.

It shows what a method with no motion model and no learned features reaches under the same protocol. Features
are the grey-level difference ``apex - onset`` resized to ``size``×``size`` (area interpolation) and flattened;
the read-out is :class:`~micronbert.baselines.linear.LinearReadout` (standardised features, L2-penalised
multinomial logistic regression fitted by L-BFGS from zero weights, deterministic).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from micronbert.baselines.linear import LinearReadoutConfig, PairFeatureClassifier
from micronbert.data.frames import to_grey
from micronbert.io import check_positive_int


@dataclass(frozen=True)
class FrameDifferenceConfig(LinearReadoutConfig):
    """Settings of :class:`FrameDifferenceClassifier`: those of the read-out, and ``size``, the side of the
    downsampled difference image (features = size²)."""

    size: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int("size", self.size)


def frame_difference_features(onset: np.ndarray, apex: np.ndarray, size: int = 16) -> np.ndarray:
    """Flattened float32 vector (size²,) of the grey ``apex - onset`` difference resized to size×size.

    Raises:
        ValueError: the frames differ in shape, are empty, or are not uint8 grey/RGB arrays; size < 1.
    """
    if getattr(onset, "shape", None) != getattr(apex, "shape", None):
        raise ValueError(
            f"onset and apex must have the same shape, got {getattr(onset, 'shape', None)} "
            f"and {getattr(apex, 'shape', None)}"
        )
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    difference = to_grey(apex, "apex").astype(np.float32) - to_grey(onset, "onset").astype(np.float32)
    if difference.size == 0:
        raise ValueError(f"frames are empty (shape {onset.shape})")
    return cv2.resize(difference, (size, size), interpolation=cv2.INTER_AREA).reshape(-1)


class FrameDifferenceClassifier(PairFeatureClassifier):
    """Linear classifier on frame differences with a ``fit``/``predict`` API."""

    config: FrameDifferenceConfig

    def __init__(self, num_classes: int, config: FrameDifferenceConfig | None = None) -> None:
        super().__init__(num_classes, config or FrameDifferenceConfig())

    def pair_features(self, onset: np.ndarray, apex: np.ndarray) -> np.ndarray:
        return frame_difference_features(onset, apex, self.config.size)
