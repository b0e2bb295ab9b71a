"""TGSR, Transfer Group Sparse Regression (Jiang, Zong, Zheng, Liu, Wei, arXiv 2111.15361), for cross-database
recognition: train on a labelled source database, predict an unlabelled target database (leave one dataset out).

Only the paper's abstract is known (docs/BASELINES.md): a sparse regression matrix that selects salient facial
regions, each region owning a group of features, and relates the source and target sets. Everything below the
abstract is re-derived here and marked [PROPOSED].

Features [PROPOSED, docs/BASELINES.md]: LBP-TOP with P = 8 and R = 3 on every axis, 59 uniform bins per
plane (177 per region), on a hierarchical grid of 1×1, 2×2, 4×4 and 8×8 regions (85 regions = 85 groups):
:func:`region_grouped_features` and :func:`region_groups`.

Model [PROPOSED, docs/BASELINES.md]. With source rows X_s (n_s × d), one-hot labels Y_s (n_s × c), target
rows X_t (n_t × d) and the regression matrix U (d × c) cut into row blocks U_k, one per group, TGSR minimises

    (1/n_s) Σ_i w_i ‖y_i − Uᵀx_i − b‖² + λ Σ_k ‖U_k‖_F + μ ‖Uᵀ(m_s − m_t)‖²

where m_s and m_t are the plain feature means of the source and target rows: the last term aligns the mean
prediction on the two databases (the transfer term), the middle one zeroes whole regions (group sparsity). This is
The paper's objective with these re-derived additions, each [PROPOSED]:

- the loss is a mean over source rows, so λ and μ do not grow with n_s (the paper's λ and μ equal n_s times these);
- an unpenalised intercept b (eliminated exactly by centring on the weighted source means);
- features divided by their standard deviation over source and target rows together (no labels are used; a
  feature constant on both keeps scale 1), so that no group wins the penalty by its units;
- ``balanced``: row weights w_i inverse to the class frequency (mean 1), which favours UF1/UAR; otherwise w_i = 1;
- λ is given as ``group_penalty`` × λ_max, λ_max = max_k 2‖A_kᵀB‖_F being the smallest λ that zeroes every group
  (A, B the weighted, centred, scaled features and labels), so that the setting does not depend on the data's scale.

Optimisation [PROPOSED]: monotone FISTA (Beck & Teboulle 2009) on the smooth part, step 1/L with L = 2σ_max([A;
√μ·δᵀ])², and the proximal step of the group penalty, block soft-thresholding U_k ← max(0, 1 − λ/(L‖V_k‖)) V_k.
Monotone FISTA never increases the objective (recorded in :attr:`TGSR.objective_history`); it stops when the
proximal-gradient step moves U by less than ``tol`` relative to its size, or after ``max_iter`` steps.

Prediction: the class of the largest regression output Uᵀx + b (as in the paper); :meth:`TGSR.predict_proba` is the
softmax of those outputs [PROPOSED], which keeps the argmax but is not calibrated.

Defaults [PROPOSED]: ``group_penalty`` 0.1 and ``transfer_weight`` (μ) 1, chosen on synthetic two-domain data,
never on a real target (there, μ from 1 to 100 gave the same target accuracy; a larger μ only slows convergence,
since L grows with μ‖m_s − m_t‖²). The DR-family code grid-searched λ and μ on the target's test results;
micronbert's recommendation is to choose them by leave-one-subject-out on the source alone. The mean-alignment term
assumes that both databases have similar class proportions.

The model never sees target labels: :meth:`TGSR.fit` has no argument for them.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from micronbert.baselines.lbptop import LBPTOPConfig, block_histograms, lbptop_codes
from micronbert.io import check_positive_int

REGION_LEVELS = (1, 2, 4, 8)
TGSR_LBPTOP = LBPTOPConfig(grid=(1, 1), radius_x=3.0, radius_y=3.0, radius_t=3.0)


def _check_levels(levels: Sequence[int]) -> tuple[int, ...]:
    levels = tuple(levels)
    if not levels:
        raise ValueError("levels must name at least one grid size")
    for level in levels:
        check_positive_int("grid level", level)
    return levels


def region_groups(levels: Sequence[int] = REGION_LEVELS, config: LBPTOPConfig = TGSR_LBPTOP) -> np.ndarray:
    """int64 (d,): the region (group) of every value of :func:`region_grouped_features`, numbered level by level,
    then row-major within a level (85 groups of 177 values for the defaults)."""
    regions = sum(level * level for level in _check_levels(levels))
    return np.repeat(np.arange(regions), sum(config.bin_counts))


def region_grouped_features(clip: np.ndarray, levels: Sequence[int] = REGION_LEVELS,
                            config: LBPTOPConfig = TGSR_LBPTOP) -> np.ndarray:
    """float64 (d,): LBP-TOP histograms of every region of an n×n grid for each n in ``levels``, region by region
    (each region's XY, XT and YT histograms, each summing to 1). The codes are computed once for all levels.

    Raises:
        ValueError: the clip is not a uint8 (T, H, W) array, is too small for the radii or for the finest grid.
    """
    levels = _check_levels(levels)
    codes = lbptop_codes(clip, config)
    return np.concatenate([block_histograms(codes, config, (level, level)) for level in levels]).reshape(-1)


@dataclass(frozen=True)
class TGSRConfig:
    """Settings of :class:`TGSR` (all [PROPOSED]; see the module docstring).

    Attributes:
        group_penalty: λ as a fraction of λ_max (0: no sparsity; 1 or more: every group zero).
        transfer_weight: μ, the weight of the source/target mean alignment (0: plain group-sparse regression).
        balanced: weight source rows by inverse class frequency.
        max_iter: monotone-FISTA steps at most.
        tol: stop when a proximal-gradient step changes U by less than ``tol``·max(1, ‖U‖_F).
    """

    group_penalty: float = 0.1
    transfer_weight: float = 1.0
    balanced: bool = True
    max_iter: int = 1000
    tol: float = 1e-6

    def __post_init__(self) -> None:
        for name in ("group_penalty", "transfer_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < math.inf:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        check_positive_int("max_iter", self.max_iter)
        if isinstance(self.tol, bool) or not isinstance(self.tol, numbers.Real) or not 0 < self.tol < 1:
            raise ValueError(f"tol must lie in (0, 1), got {self.tol!r}")


def _as_matrix(values: object, name: str, width: int | None = None) -> np.ndarray:
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2 or len(matrix) == 0 or (width is not None and matrix.shape[1] != width):
        expected = f"(samples, {width})" if width is not None else "(samples, values)"
        raise ValueError(f"{name} must be a non-empty {expected} matrix, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return matrix


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


class _Problem:
    """The smooth part ‖B − AU‖² + μ‖Uᵀδ‖² and the group penalty λ Σ_k ‖U_k‖_F of one fit."""

    def __init__(self, inputs: np.ndarray, targets: np.ndarray, shift: np.ndarray, transfer_weight: float,
                 group_penalty: float, group_index: np.ndarray, group_count: int) -> None:
        self.inputs, self.targets, self.shift, self.transfer_weight = inputs, targets, shift, transfer_weight
        self.group_index, self.group_count = group_index, group_count
        stacked = np.vstack([inputs, math.sqrt(transfer_weight) * shift[None]])
        gram = stacked @ stacked.T if len(stacked) <= stacked.shape[1] else stacked.T @ stacked
        self.lipschitz = 2.0 * float(np.linalg.eigvalsh(gram)[-1])
        self.penalty = group_penalty * float(self.group_norms(2.0 * inputs.T @ targets).max())

    def group_norms(self, weights: np.ndarray) -> np.ndarray:
        squares = np.bincount(self.group_index, weights=(weights**2).sum(axis=1), minlength=self.group_count)
        return np.sqrt(squares)

    def gradient(self, weights: np.ndarray) -> np.ndarray:
        residual = self.inputs @ weights - self.targets
        return 2.0 * (self.inputs.T @ residual + self.transfer_weight * np.outer(self.shift, self.shift @ weights))

    def objective(self, weights: np.ndarray) -> float:
        residual = self.targets - self.inputs @ weights
        alignment = self.shift @ weights
        return float((residual**2).sum() + self.transfer_weight * (alignment**2).sum()
                     + self.penalty * self.group_norms(weights).sum())

    def proximal_step(self, weights: np.ndarray) -> np.ndarray:
        moved = weights - self.gradient(weights) / self.lipschitz
        norms = self.group_norms(moved)
        shrink = np.maximum(0.0, 1.0 - (self.penalty / self.lipschitz) / np.maximum(norms, 1e-300))
        return moved * shrink[self.group_index][:, None]


def _monotone_fista(problem: _Problem, max_iter: int, tol: float) -> tuple[np.ndarray, list[float]]:
    weights = np.zeros((problem.inputs.shape[1], problem.targets.shape[1]))
    history = [problem.objective(weights)]
    if problem.lipschitz <= 0:
        return weights, history
    point, momentum = weights, 1.0
    for _ in range(max_iter):
        candidate = problem.proximal_step(point)
        candidate_objective = problem.objective(candidate)
        step = float(np.linalg.norm(candidate - point))
        next_momentum = (1.0 + math.sqrt(1.0 + 4.0 * momentum**2)) / 2.0
        previous = weights
        if candidate_objective <= history[-1]:
            weights = candidate
        history.append(min(candidate_objective, history[-1]))
        point = (weights + (momentum / next_momentum) * (candidate - weights)
                 + ((momentum - 1.0) / next_momentum) * (weights - previous))
        momentum = next_momentum
        if step <= tol * max(1.0, float(np.linalg.norm(candidate))):
            break
    return weights, history


class TGSR:
    """Transfer group-sparse regression from region-grouped features to one-hot labels (see the module docstring).

    After :meth:`fit`: ``objective_history`` (the objective after every step, non-increasing) and ``group_ids``
    (the distinct group ids, in the order of :meth:`group_norms`).
    """

    def __init__(self, num_classes: int, config: TGSRConfig | None = None) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer of at least 2, got {num_classes!r}")
        self.num_classes = int(num_classes)
        self.config = config or TGSRConfig()
        self.objective_history: list[float] = []
        self.group_ids: np.ndarray | None = None
        self._centre: np.ndarray | None = None
        self._scale: np.ndarray | None = None
        self._weights: np.ndarray | None = None
        self._bias: np.ndarray | None = None
        self._group_index: np.ndarray | None = None

    @property
    def is_fitted(self) -> bool:
        return self._weights is not None

    def _check_labels(self, labels: Sequence[int], count: int) -> np.ndarray:
        targets = np.asarray(labels)
        if targets.ndim != 1 or len(targets) != count or not np.issubdtype(targets.dtype, np.integer):
            raise ValueError(f"source_labels must be a vector of {count} integer class ids, got shape "
                             f"{targets.shape} and dtype {targets.dtype}")
        if targets.min() < 0 or targets.max() >= self.num_classes:
            raise ValueError(f"source_labels must lie in [0, {self.num_classes}), got range "
                             f"[{int(targets.min())}, {int(targets.max())}]")
        if len(np.unique(targets)) < 2:
            raise ValueError(f"source_labels hold one class only ({int(targets[0])}); a regression needs two")
        return targets

    def _row_weights(self, targets: np.ndarray) -> np.ndarray:
        if not self.config.balanced:
            return np.ones(len(targets))
        counts = np.bincount(targets, minlength=self.num_classes).astype(np.float64)
        return len(targets) / (np.count_nonzero(counts) * counts[targets])

    def fit(self, source_features: np.ndarray, source_labels: Sequence[int], target_features_unlabelled: np.ndarray,
            groups: Sequence[int]) -> TGSR:
        """Fit on labelled source rows (n_s, d), their labels in [0, num_classes) (two classes at least), unlabelled
        target rows (n_t, d) and the group id of each of the d feature columns; returns self."""
        source = _as_matrix(source_features, "source_features")
        width = source.shape[1]
        target = _as_matrix(target_features_unlabelled, "target_features_unlabelled", width)
        targets = self._check_labels(source_labels, len(source))
        group_array = np.asarray(groups)
        if group_array.shape != (width,) or not np.issubdtype(group_array.dtype, np.integer):
            raise ValueError(f"groups must give an integer group id for each of the {width} feature columns, got "
                             f"shape {group_array.shape} and dtype {group_array.dtype}")
        self.group_ids, self._group_index = np.unique(group_array, return_inverse=True)

        spread = np.vstack([source, target]).std(axis=0)
        self._scale = np.where(spread > 1e-12, spread, 1.0)
        row_weights = self._row_weights(targets)
        one_hot = np.eye(self.num_classes)[targets]
        self._centre = row_weights @ source / row_weights.sum()
        self._bias = row_weights @ one_hot / row_weights.sum()
        rows = np.sqrt(row_weights / len(source))[:, None]
        inputs = rows * (source - self._centre) / self._scale
        shift = (source.mean(axis=0) - target.mean(axis=0)) / self._scale
        problem = _Problem(inputs, rows * (one_hot - self._bias), shift, float(self.config.transfer_weight),
                           float(self.config.group_penalty), self._group_index, len(self.group_ids))
        self._weights, self.objective_history = _monotone_fista(problem, self.config.max_iter, self.config.tol)
        return self

    def group_norms(self) -> np.ndarray:
        """float64 (groups,): ‖U_k‖_F of every group (in scaled feature units), in the order of ``group_ids``."""
        if self._weights is None or self._group_index is None or self.group_ids is None:
            raise RuntimeError("TGSR.group_norms called before fit")
        squares = np.bincount(self._group_index, weights=(self._weights**2).sum(axis=1),
                              minlength=len(self.group_ids))
        return np.sqrt(squares)

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        """float64 (N, num_classes): the regression outputs Uᵀx + b."""
        if self._weights is None or self._centre is None or self._scale is None or self._bias is None:
            raise RuntimeError("TGSR used before fit")
        values = _as_matrix(features, "features", len(self._centre))
        return (values - self._centre) / self._scale @ self._weights + self._bias

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class scores, float64 (N, num_classes): the softmax of the regression outputs (argmax = prediction)."""
        return _softmax(self.decision_function(features))

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicted class ids, int64 (N,)."""
        return self.decision_function(features).argmax(axis=1).astype(np.int64)
