"""Baselines evaluated in the same harness as Micron-BERT."""
from __future__ import annotations

from micronbert.baselines.framediff import (
    FrameDifferenceClassifier,
    FrameDifferenceConfig,
    frame_difference_features,
)
from micronbert.baselines.ststnet import STSTNet, flow_images_to_tensor

__all__ = [
    "FrameDifferenceClassifier",
    "FrameDifferenceConfig",
    "STSTNet",
    "flow_images_to_tensor",
    "frame_difference_features",
]
