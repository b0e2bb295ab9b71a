"""Naive baseline: onset→apex frame difference, downsampled, fed to a linear (softmax) classifier.

It shows what a method with no motion model and no learned features reaches under the same protocol. Features
are the grey-level difference ``apex - onset`` resized to ``size``×``size`` (area interpolation) and flattened;
they are standardised with the training set's mean and standard deviation, and a multinomial logistic
regression with L2 penalty is fitted by full-batch L-BFGS from zero weights (deterministic).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from micronbert.data.flow import to_grey


@dataclass(frozen=True)
class FrameDifferenceConfig:
    """Settings of :class:`FrameDifferenceClassifier`.

    Attributes:
        size: side of the downsampled difference image (features = size²).
        weight_decay: L2 penalty on the weights (not the biases).
        max_iter: L-BFGS iterations.
        balanced: weight the loss by inverse class frequency, which favours UF1/UAR over accuracy.
    """

    size: int = 16
    weight_decay: float = 1e-3
    max_iter: int = 200
    balanced: bool = True

    def __post_init__(self) -> None:
        if self.size < 1 or self.max_iter < 1:
            raise ValueError(f"size and max_iter must be positive, got {self.size}, {self.max_iter}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")


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


class FrameDifferenceClassifier:
    """Linear classifier on frame differences with a ``fit``/``predict`` API."""

    def __init__(self, num_classes: int, config: FrameDifferenceConfig | None = None) -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.num_classes = num_classes
        self.config = config or FrameDifferenceConfig()
        self._mean: torch.Tensor | None = None
        self._scale: torch.Tensor | None = None
        self._weight: torch.Tensor | None = None
        self._bias: torch.Tensor | None = None

    def _features(self, onsets: Sequence[np.ndarray], apexes: Sequence[np.ndarray]) -> torch.Tensor:
        if len(onsets) != len(apexes):
            raise ValueError(f"got {len(onsets)} onset frames but {len(apexes)} apex frames")
        if len(onsets) == 0:
            raise ValueError("no frame pairs given")
        rows = []
        for index, (onset, apex) in enumerate(zip(onsets, apexes)):
            try:
                rows.append(frame_difference_features(onset, apex, self.config.size))
            except ValueError as error:
                raise ValueError(f"frame pair {index}: {error}") from None
        return torch.from_numpy(np.stack(rows)).double()

    def _class_weights(self, labels: torch.Tensor) -> torch.Tensor:
        counts = torch.bincount(labels, minlength=self.num_classes).double()
        if not self.config.balanced:
            return (counts > 0).double()
        present = int((counts > 0).sum())
        weights = torch.zeros(self.num_classes, dtype=torch.float64)
        weights[counts > 0] = len(labels) / (present * counts[counts > 0])
        return weights

    def fit(
        self, onsets: Sequence[np.ndarray], apexes: Sequence[np.ndarray], labels: Sequence[int]
    ) -> FrameDifferenceClassifier:
        """Fit on onset/apex frame pairs and integer labels in [0, num_classes); returns self."""
        features = self._features(onsets, apexes)
        targets = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        if targets.ndim != 1 or len(targets) != len(features):
            raise ValueError(f"labels must be a vector of {len(features)} class ids, got shape {tuple(targets.shape)}")
        if targets.min() < 0 or targets.max() >= self.num_classes:
            raise ValueError(f"labels must lie in [0, {self.num_classes}), got range "
                             f"[{int(targets.min())}, {int(targets.max())}]")
        self._mean = features.mean(dim=0)
        self._scale = features.std(dim=0, unbiased=False).clamp_min(1e-6)
        inputs = (features - self._mean) / self._scale
        weight = torch.zeros(inputs.shape[1], self.num_classes, dtype=torch.float64, requires_grad=True)
        bias = torch.zeros(self.num_classes, dtype=torch.float64, requires_grad=True)
        class_weights = self._class_weights(targets)
        optimiser = torch.optim.LBFGS(
            [weight, bias], max_iter=self.config.max_iter, line_search_fn="strong_wolfe"
        )

        def closure() -> torch.Tensor:
            optimiser.zero_grad()
            loss = F.cross_entropy(inputs @ weight + bias, targets, weight=class_weights)
            loss = loss + self.config.weight_decay * weight.pow(2).sum()
            loss.backward()
            return loss

        optimiser.step(closure)
        self._weight, self._bias = weight.detach(), bias.detach()
        return self

    def predict_proba(self, onsets: Sequence[np.ndarray], apexes: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities, float64 (N, num_classes)."""
        if self._weight is None or self._bias is None or self._mean is None or self._scale is None:
            raise RuntimeError("FrameDifferenceClassifier.predict called before fit")
        inputs = (self._features(onsets, apexes) - self._mean) / self._scale
        return torch.softmax(inputs @ self._weight + self._bias, dim=1).numpy()

    def predict(self, onsets: Sequence[np.ndarray], apexes: Sequence[np.ndarray]) -> np.ndarray:
        """Predicted class ids, int64 (N,)."""
        return self.predict_proba(onsets, apexes).argmax(axis=1).astype(np.int64)
