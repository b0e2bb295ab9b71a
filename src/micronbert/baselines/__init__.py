"""Baselines evaluated in the same harness as Micron-BERT."""
from __future__ import annotations

from micronbert.baselines.flowgrid import FlowGridClassifier, FlowGridConfig, flow_grid_features
from micronbert.baselines.framediff import (
    FrameDifferenceClassifier,
    FrameDifferenceConfig,
    frame_difference_features,
)
from micronbert.baselines.linear import LinearReadout, LinearReadoutConfig, PairFeatureClassifier
from micronbert.baselines.ststnet import STSTNet, flow_images_to_tensor

__all__ = [
    "FlowGridClassifier",
    "FlowGridConfig",
    "FrameDifferenceClassifier",
    "FrameDifferenceConfig",
    "LinearReadout",
    "LinearReadoutConfig",
    "PairFeatureClassifier",
    "STSTNet",
    "flow_grid_features",
    "flow_images_to_tensor",
    "frame_difference_features",
]
