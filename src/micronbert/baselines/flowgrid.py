"""Classical-flow baseline: onset→apex optical flow averaged over a grid of cells, fed to a linear classifier.

Each pair's dense flow (:func:`micronbert.data.flow.optical_flow`; Farnebäck by default) is averaged over
``cells``×``cells`` cells (area interpolation), giving where the face moved and in which direction. With
``centred`` the median flow over the cells is subtracted from every cell, so that a global head shift cancels
and the local motion of the action units remains. The read-out is
:class:`~micronbert.baselines.linear.LinearReadout`. It is the classical counterpart of μ-BERT's motion head
(METHOD.md §10), which reads a learned flow per patch the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from micronbert.baselines.linear import LinearReadoutConfig, PairFeatureClassifier
from micronbert.data.flow import FLOW_METHODS, optical_flow
from micronbert.io import check_positive_int


@dataclass(frozen=True)
class FlowGridConfig(LinearReadoutConfig):
    """Settings of :class:`FlowGridClassifier`: those of the read-out, and

    Attributes:
        cells: cells per side of the grid (features = 2·cells²).
        method: optical-flow method (``farneback``, ``dis``, ``tvl1`` or ``auto``; see :mod:`micronbert.data.flow`).
        centred: subtract the median flow over the cells (removes a global shift).
    """

    cells: int = 8
    method: str = "farneback"
    centred: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int("cells", self.cells)
        if self.method not in FLOW_METHODS:
            raise ValueError(f"method must be one of {FLOW_METHODS}, got {self.method!r}")


def flow_grid_features(onset: np.ndarray, apex: np.ndarray, cells: int = 8, method: str = "farneback",
                       centred: bool = True) -> np.ndarray:
    """float32 vector (cells·cells·2,): the onset→apex flow (u, v) in pixels averaged per cell, row-major.

    Raises:
        ValueError: the frames differ in shape or layout, are smaller than 16×16 or than the grid; bad cells/method.
    """
    check_positive_int("cells", cells)
    flow = optical_flow(onset, apex, method)  # type: ignore[arg-type]
    if min(flow.shape[:2]) < cells:
        raise ValueError(f"frames of shape {onset.shape} are smaller than a grid of {cells}×{cells} cells")
    grid = cv2.resize(flow, (cells, cells), interpolation=cv2.INTER_AREA)
    if centred:
        grid = grid - np.median(grid.reshape(-1, 2), axis=0)
    return grid.reshape(-1).astype(np.float32)


class FlowGridClassifier(PairFeatureClassifier):
    """Linear classifier on the cell-averaged onset→apex flow, with a ``fit``/``predict`` API."""

    config: FlowGridConfig

    def __init__(self, num_classes: int, config: FlowGridConfig | None = None) -> None:
        super().__init__(num_classes, config or FlowGridConfig())

    def pair_features(self, onset: np.ndarray, apex: np.ndarray) -> np.ndarray:
        return flow_grid_features(onset, apex, self.config.cells, self.config.method, self.config.centred)
