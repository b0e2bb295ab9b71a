"""The read-out of the linear baselines: standardised features, multinomial logistic regression with an L2 penalty.

Features are standardised with the training set's mean and standard deviation, and the regression is fitted by
full-batch L-BFGS from zero weights, so a fit is deterministic. :class:`PairFeatureClassifier` turns a function of
one (onset, apex) pair into a classifier with a ``fit``/``predict`` API on frame pairs.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from micronbert.config import Config
from micronbert.io import check_positive_int
from micronbert.metrics import balanced_class_weights


@dataclass(frozen=True)
class LinearReadoutConfig(Config):
    """Settings of :class:`LinearReadout`.

    Attributes:
        weight_decay: L2 penalty on the weights (not the biases).
        max_iter: L-BFGS iterations.
        class_weighted: weight the loss by inverse class frequency, which favours UF1/UAR over accuracy.
    """

    weight_decay: float = 1e-3
    max_iter: int = 200
    class_weighted: bool = True

    def __post_init__(self) -> None:
        check_positive_int("max_iter", self.max_iter)
        if not float(self.weight_decay) >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")


class LinearReadout:
    """Standardisation + multinomial logistic regression on feature vectors, ``fit``/``predict_proba``."""

    def __init__(self, num_classes: int, config: LinearReadoutConfig | None = None) -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.num_classes = num_classes
        self.config = config or LinearReadoutConfig()
        self._mean: torch.Tensor | None = None
        self._scale: torch.Tensor | None = None
        self._weight: torch.Tensor | None = None
        self._bias: torch.Tensor | None = None

    @property
    def is_fitted(self) -> bool:
        return self._weight is not None

    def _class_weights(self, labels: torch.Tensor) -> torch.Tensor:
        if self.config.class_weighted:
            return torch.from_numpy(balanced_class_weights(labels.numpy(), self.num_classes))
        return (torch.bincount(labels, minlength=self.num_classes) > 0).double()

    def fit(self, features: np.ndarray, labels: Sequence[int]) -> LinearReadout:
        """Fit on a (N, D) feature matrix and N integer labels in [0, num_classes); returns self."""
        inputs = torch.as_tensor(np.asarray(features, dtype=np.float64))
        if inputs.ndim != 2 or len(inputs) == 0:
            raise ValueError(f"features must be a non-empty (samples, values) matrix, got shape {tuple(inputs.shape)}")
        targets = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        if targets.ndim != 1 or len(targets) != len(inputs):
            raise ValueError(f"labels must be a vector of {len(inputs)} class ids, got shape {tuple(targets.shape)}")
        if targets.min() < 0 or targets.max() >= self.num_classes:
            raise ValueError(f"labels must lie in [0, {self.num_classes}), got range "
                             f"[{int(targets.min())}, {int(targets.max())}]")
        self._mean = inputs.mean(dim=0)
        self._scale = inputs.std(dim=0, unbiased=False).clamp_min(1e-6)
        inputs = (inputs - self._mean) / self._scale
        weight = torch.zeros(inputs.shape[1], self.num_classes, dtype=torch.float64, requires_grad=True)
        bias = torch.zeros(self.num_classes, dtype=torch.float64, requires_grad=True)
        class_weights = self._class_weights(targets)
        optimiser = torch.optim.LBFGS([weight, bias], max_iter=self.config.max_iter, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimiser.zero_grad()
            loss = F.cross_entropy(inputs @ weight + bias, targets, weight=class_weights)
            loss = loss + self.config.weight_decay * weight.pow(2).sum()
            loss.backward()
            return loss

        optimiser.step(closure)
        self._weight, self._bias = weight.detach(), bias.detach()
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities, float64 (N, num_classes)."""
        if self._weight is None or self._bias is None or self._mean is None or self._scale is None:
            raise RuntimeError("LinearReadout.predict_proba called before fit")
        inputs = torch.as_tensor(np.asarray(features, dtype=np.float64))
        if inputs.ndim != 2 or inputs.shape[1] != len(self._mean):
            raise ValueError(f"features must have shape (samples, {len(self._mean)}), got {tuple(inputs.shape)}")
        return torch.softmax((inputs - self._mean) / self._scale @ self._weight + self._bias, dim=1).numpy()


class PairFeatureClassifier:
    """A linear classifier on a feature vector computed from each (onset, apex) pair.

    Subclasses implement :meth:`pair_features`; their configuration extends :class:`LinearReadoutConfig`.
    """

    def __init__(self, num_classes: int, config: LinearReadoutConfig) -> None:
        self.config = config
        self.readout = LinearReadout(num_classes, config)

    @property
    def num_classes(self) -> int:
        return self.readout.num_classes

    def pair_features(self, onset: np.ndarray, apex: np.ndarray) -> np.ndarray:
        """The feature vector of one pair (1-D float array)."""
        raise NotImplementedError

    def features(self, onsets: Sequence[np.ndarray], apexes: Sequence[np.ndarray]) -> np.ndarray:
        """float64 (N, D) features of N pairs; a pair that fails is named by its position."""
        if len(onsets) != len(apexes):
            raise ValueError(f"got {len(onsets)} onset frames but {len(apexes)} apex frames")
        if len(onsets) == 0:
            raise ValueError("no frame pairs given")
        rows = []
        for index, (onset, apex) in enumerate(zip(onsets, apexes)):
            try:
                rows.append(self.pair_features(onset, apex))
            except ValueError as error:
                raise ValueError(f"frame pair {index}: {error}") from None
        return np.stack(rows).astype(np.float64)

    def fit(self, onsets: Sequence[np.ndarray], apexes: Sequence[np.ndarray],
            labels: Sequence[int]) -> PairFeatureClassifier:
        """Fit on onset/apex frame pairs and integer labels in [0, num_classes); returns self."""
        self.readout.fit(self.features(onsets, apexes), labels)
        return self

    def predict_proba(self, onsets: Sequence[np.ndarray], apexes: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities, float64 (N, num_classes)."""
        if not self.readout.is_fitted:
            raise RuntimeError(f"{type(self).__name__}.predict called before fit")
        return self.readout.predict_proba(self.features(onsets, apexes))

    def predict(self, onsets: Sequence[np.ndarray], apexes: Sequence[np.ndarray]) -> np.ndarray:
        """Predicted class ids, int64 (N,)."""
        return self.predict_proba(onsets, apexes).argmax(axis=1).astype(np.int64)
