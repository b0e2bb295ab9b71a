"""LBP-TOP: local binary patterns on three orthogonal planes over a block grid, read out by a linear SVM.

The MEGC2019 recognition baseline (UF1 0.5882 / UAR 0.5785 on the composite, as the MEGC2019 summary paper reports
it) and the classical dynamic-texture descriptor of Zhao & Pietikäinen (TPAMI 2007). For every voxel of a grey clip
(T, H, W) a uniform LBP code is computed in each of the planes XY (appearance), XT (horizontal motion) and YT
(vertical motion); codes are counted per block of a ``rows``×``cols`` grid and per plane, each histogram is
normalised to sum 1, and the histograms are concatenated block by block (block-major: block, then plane XY, XT, YT,
then bin).

Sampling. Neighbour ``p`` of ``P`` lies at angle 2πp/P on an ellipse with the plane's two axis radii (the notation
LBP-TOP_{P_XY,P_XT,P_YT,R_X,R_Y,R_T} of Zhao & Pietikäinen): in XY at (x + R_X cos, y − R_Y sin), in XT at
(x + R_X cos, t − R_T sin), in YT at (y + R_Y cos, t − R_T sin); bit p is set when the neighbour is >= the centre
(up to 1e-6, so that a flat neighbourhood reliably reads "all ones" despite interpolation round-off). Off-grid
neighbours are bilinearly interpolated, offsets rounded to 5 decimals (as scikit-image does), so the XY codes of one
frame equal ``skimage.feature.local_binary_pattern(frame, P, R, "default")`` away from the border. Codes are
computed on the voxels at least ⌈R⌉ from every border of the clip, the same voxels for all three planes, and that
core is cut into the grid. Codes map to the non-rotation-invariant uniform patterns ("u2": P(P−1)+2 uniform
patterns in increasing code order, then one bin for all others; 59 bins for P = 8).

Defaults and their sources:

- P = 8 on every plane, R_X = R_Y = 1, R_T = 4, 59-bin uniform codes: the settings with which public scripts run
  Zhao & Pietikäinen's MATLAB LBP-TOP on the MEGC2019 composite (FxRadius 1, FyRadius 1, TInterval 4,
  NeighborPoints [8 8 8], 59 bins), and, from memory of the CASME II paper (Yan et al. 2014), the radii of its best
  LBP-TOP baseline [UNVERIFIED]. The official MEGC2019 baseline's own parameters are not in the project's sources.
- Grid 5×5 [PROPOSED]: the CASME II baseline's block grid as remembered [UNVERIFIED]; not confirmed for MEGC2019.
- Read-out [PROPOSED]: features standardised with the training set's mean and standard deviation, then
  scikit-learn's ``LinearSVC`` (one-vs-rest, squared hinge, liblinear dual solver, ``random_state=seed``) with
  C = 1 and balanced class weights. C = 1 is liblinear's default; the sources give no C, and with thousands of
  standardised features and a few hundred training clips the training set is separable, so the solution is close to
  the maximum-margin one for any C in a broad range around 1 (choosing C on test subjects is what the classical
  pipelines did, and micronbert does not). Balanced class weights favour UF1/UAR over accuracy.
- Probabilities [PROPOSED]: the softmax of the SVM's decision values (deterministic; no Platt calibration, which
  would need internal cross-validation); a class absent from the training fold gets probability 0.

scikit-learn is imported when a classifier is fitted; the features need only NumPy.
"""
from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from micronbert.io import check_positive_int

PLANES = ("xy", "xt", "yt")
MAX_POINTS = 16
_TIE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class LBPTOPConfig:
    """Settings of :func:`lbptop_features` and :class:`LBPTOPClassifier`.

    Attributes:
        grid: (rows, cols) of the block grid cut from the clip's core.
        radius_x, radius_y, radius_t: sampling radii along x, y and t (pixels, frames).
        points_xy, points_xt, points_yt: neighbours per plane (2 to 16).
        svm_c: the SVM's C.
        balanced: weight the SVM's classes by inverse frequency.
        max_iter: liblinear iterations.
        seed: liblinear's random state (coordinate order), so that a fit is deterministic.
    """

    grid: tuple[int, int] = (5, 5)
    radius_x: float = 1.0
    radius_y: float = 1.0
    radius_t: float = 4.0
    points_xy: int = 8
    points_xt: int = 8
    points_yt: int = 8
    svm_c: float = 1.0
    balanced: bool = True
    max_iter: int = 10000
    seed: int = 0

    def __post_init__(self) -> None:
        grid = tuple(self.grid)
        if len(grid) != 2:
            raise ValueError(f"grid must be (rows, cols), got {self.grid!r}")
        check_positive_int("grid rows", grid[0])
        check_positive_int("grid cols", grid[1])
        object.__setattr__(self, "grid", (int(grid[0]), int(grid[1])))
        for name in ("radius_x", "radius_y", "radius_t"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < math.inf:
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        for name in ("points_xy", "points_xt", "points_yt"):
            value = getattr(self, name)
            check_positive_int(name, value)
            if not 2 <= value <= MAX_POINTS:
                raise ValueError(f"{name} must lie in [2, {MAX_POINTS}], got {value}")
        if isinstance(self.svm_c, bool) or not isinstance(self.svm_c, numbers.Real) or not 0 < self.svm_c < math.inf:
            raise ValueError(f"svm_c must be a positive finite number, got {self.svm_c!r}")
        check_positive_int("max_iter", self.max_iter)
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")

    @property
    def margins(self) -> tuple[int, int, int]:
        """Voxels left out at each end of t, y and x (⌈R⌉ per axis)."""
        return (math.ceil(self.radius_t), math.ceil(self.radius_y), math.ceil(self.radius_x))

    @property
    def bin_counts(self) -> tuple[int, int, int]:
        """Histogram bins of the planes XY, XT, YT."""
        return tuple(uniform_bin_count(points) for points in (self.points_xy, self.points_xt, self.points_yt))

    @property
    def feature_length(self) -> int:
        """Length of :func:`lbptop_features`' vector."""
        return self.grid[0] * self.grid[1] * sum(self.bin_counts)


def uniform_bin_count(points: int) -> int:
    """Bins of the u2 mapping for ``points`` neighbours: P(P−1)+2 uniform patterns and one for the rest."""
    return points * (points - 1) + 3


def uniform_lbp_mapping(points: int) -> np.ndarray:
    """int64 (2**points,): the u2 bin of every raw LBP code (uniform patterns numbered in increasing code order,
    patterns with more than two circular 0/1 transitions in the last bin)."""
    check_positive_int("points", points)
    if not 2 <= points <= MAX_POINTS:
        raise ValueError(f"points must lie in [2, {MAX_POINTS}], got {points}")
    codes = np.arange(2**points)
    bits = (codes[:, None] >> np.arange(points)) & 1
    transitions = (bits != np.roll(bits, 1, axis=1)).sum(axis=1)
    uniform = transitions <= 2
    mapping = np.full(codes.shape, uniform_bin_count(points) - 1, dtype=np.int64)
    mapping[uniform] = np.arange(int(uniform.sum()))
    return mapping


def _check_clip(clip: object, config: LBPTOPConfig) -> np.ndarray:
    if not isinstance(clip, np.ndarray):
        raise ValueError(f"clip must be a numpy array (T, H, W), got {type(clip).__name__}")
    if clip.dtype != np.uint8:
        raise ValueError(f"clip must be uint8 grey levels, got dtype {clip.dtype}")
    if clip.ndim != 3:
        raise ValueError(f"clip must be a grey clip (T, H, W); got shape {clip.shape} (convert colour to grey first)")
    margins = config.margins
    core = [size - 2 * margin for size, margin in zip(clip.shape, margins)]
    if core[0] < 1:
        raise ValueError(f"clip has {clip.shape[0]} frames; radius_t={config.radius_t} needs at least "
                         f"{2 * margins[0] + 1}")
    rows, cols = config.grid
    if core[1] < rows or core[2] < cols:
        raise ValueError(f"clip frames {clip.shape[1]}×{clip.shape[2]} are too small for a {rows}×{cols} grid with "
                         f"radii x={config.radius_x}, y={config.radius_y}: need at least "
                         f"{rows + 2 * margins[1]}×{cols + 2 * margins[2]}")
    return clip


def _neighbour_offsets(points: int, radius_across: float, radius_along: float) -> list[tuple[float, float]]:
    """Offsets (across, along) of the plane's neighbours: across = +R cos, along = −R sin, rounded like skimage."""
    angles = 2.0 * np.pi * np.arange(points) / points
    across = np.round(radius_across * np.cos(angles), 5) + 0.0
    along = np.round(-radius_along * np.sin(angles), 5) + 0.0
    return list(zip(across.tolist(), along.tolist()))


def _axis_taps(offset: float) -> list[tuple[int, float]]:
    """Integer shifts and linear-interpolation weights of one fractional offset along one axis."""
    base = math.floor(offset)
    fraction = offset - base
    taps = [(base, 1.0 - fraction)]
    if fraction > 0:
        taps.append((base + 1, fraction))
    return taps


def _sample_core(volume: np.ndarray, offset: tuple[float, float, float], margins: tuple[int, ...]) -> np.ndarray:
    """The volume interpolated at every core voxel displaced by ``offset`` (t, y, x)."""
    core_shape = tuple(size - 2 * margin for size, margin in zip(volume.shape, margins))
    sampled = np.zeros(core_shape)
    for taps in itertools.product(*(_axis_taps(component) for component in offset)):
        weight = math.prod(tap_weight for _, tap_weight in taps)
        window = tuple(slice(margin + shift, margin + shift + length)
                       for (shift, _), margin, length in zip(taps, margins, core_shape))
        sampled += weight * volume[window]
    return sampled


def _plane_codes(volume: np.ndarray, offsets: list[tuple[float, float, float]], margins: tuple[int, ...],
                 mapping: np.ndarray) -> np.ndarray:
    core = tuple(slice(margin, size - margin) for size, margin in zip(volume.shape, margins))
    threshold = volume[core] - _TIE_TOLERANCE
    codes = np.zeros(threshold.shape, dtype=np.int64)
    for bit, offset in enumerate(offsets):
        codes |= (_sample_core(volume, offset, margins) >= threshold).astype(np.int64) << bit
    return mapping[codes]


def lbptop_codes(clip: np.ndarray, config: LBPTOPConfig | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The u2 bins of the planes XY, XT, YT at every core voxel: three int64 arrays (T−2m_t, H−2m_y, W−2m_x).

    Raises:
        ValueError: the clip is not a uint8 (T, H, W) array, or is too small for the radii and grid.
    """
    config = config or LBPTOPConfig()
    volume = _check_clip(clip, config).astype(np.float64)
    margins = config.margins
    xy = [(0.0, along, across) for across, along in
          _neighbour_offsets(config.points_xy, config.radius_x, config.radius_y)]
    xt = [(along, 0.0, across) for across, along in
          _neighbour_offsets(config.points_xt, config.radius_x, config.radius_t)]
    yt = [(along, across, 0.0) for across, along in
          _neighbour_offsets(config.points_yt, config.radius_y, config.radius_t)]
    points = (config.points_xy, config.points_xt, config.points_yt)
    return tuple(_plane_codes(volume, offsets, margins, uniform_lbp_mapping(count))
                 for offsets, count in zip((xy, xt, yt), points))


def block_histograms(codes: tuple[np.ndarray, np.ndarray, np.ndarray], config: LBPTOPConfig,
                     grid: tuple[int, int] | None = None) -> np.ndarray:
    """float64 (rows·cols, bins XY + XT + YT): per block (row-major) the three planes' histograms, each summing to 1.

    ``codes`` come from :func:`lbptop_codes` with the same ``config``; ``grid`` defaults to ``config.grid``. The
    core is cut into rows×cols blocks of near-equal size.
    """
    rows, cols = grid or config.grid
    check_positive_int("grid rows", rows)
    check_positive_int("grid cols", cols)
    _, height, width = codes[0].shape
    if height < rows or width < cols:
        raise ValueError(f"a {rows}×{cols} grid does not fit the {height}×{width} core of the clip")
    block = ((np.arange(height) * rows) // height)[:, None] * cols + ((np.arange(width) * cols) // width)[None, :]
    histograms = []
    for plane_codes, bins in zip(codes, config.bin_counts):
        index = (block[None] * bins + plane_codes).reshape(-1)
        counts = np.bincount(index, minlength=rows * cols * bins).reshape(rows * cols, bins).astype(np.float64)
        histograms.append(counts / counts.sum(axis=1, keepdims=True))
    return np.concatenate(histograms, axis=1)


def lbptop_features(clip: np.ndarray, config: LBPTOPConfig | None = None) -> np.ndarray:
    """float64 (config.feature_length,): the block-major concatenation of per-block, per-plane histograms of a grey
    uint8 clip (T, H, W), each histogram summing to 1.

    Raises:
        ValueError: the clip is not a uint8 (T, H, W) array, or is too small for the radii and grid.
    """
    config = config or LBPTOPConfig()
    return block_histograms(lbptop_codes(clip, config), config).reshape(-1)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


class LBPTOPClassifier:
    """LBP-TOP features and a linear SVM: :meth:`features` once for all clips, then ``fit``/``predict_proba``
    per fold on the feature rows."""

    def __init__(self, num_classes: int, config: LBPTOPConfig | None = None) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer of at least 2, got {num_classes!r}")
        self.num_classes = int(num_classes)
        self.config = config or LBPTOPConfig()
        self._mean: np.ndarray | None = None
        self._scale: np.ndarray | None = None
        self._svm = None

    @property
    def is_fitted(self) -> bool:
        return self._svm is not None

    def features(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """float64 (N, config.feature_length) features of N grey uint8 clips; a clip that fails is named by its
        position."""
        if len(clips) == 0:
            raise ValueError("no clips given")
        rows = []
        for index, clip in enumerate(clips):
            try:
                rows.append(lbptop_features(clip, self.config))
            except ValueError as error:
                raise ValueError(f"clip {index}: {error}") from None
        return np.stack(rows)

    def _check_features(self, features: np.ndarray) -> np.ndarray:
        values = np.asarray(features, dtype=np.float64)
        width = self.config.feature_length
        if values.ndim != 2 or len(values) == 0 or values.shape[1] != width:
            raise ValueError(f"features must be a non-empty (samples, {width}) matrix, got shape {values.shape}")
        if not np.isfinite(values).all():
            raise ValueError("features contain NaN or infinite values")
        return values

    def fit(self, features: np.ndarray, labels: Sequence[int]) -> LBPTOPClassifier:
        """Fit on (N, D) feature rows and N integer labels in [0, num_classes); at least two classes; returns self."""
        values = self._check_features(features)
        targets = np.asarray(labels)
        if targets.ndim != 1 or len(targets) != len(values) or not np.issubdtype(targets.dtype, np.integer):
            raise ValueError(f"labels must be a vector of {len(values)} integer class ids, got shape {targets.shape} "
                             f"and dtype {targets.dtype}")
        if targets.min() < 0 or targets.max() >= self.num_classes:
            raise ValueError(f"labels must lie in [0, {self.num_classes}), got range "
                             f"[{int(targets.min())}, {int(targets.max())}]")
        if len(np.unique(targets)) < 2:
            raise ValueError(f"the training labels hold one class only ({int(targets[0])}); an SVM needs two")
        try:
            from sklearn.svm import LinearSVC
        except ImportError as error:
            raise ImportError("LBPTOPClassifier needs scikit-learn: pip install scikit-learn") from error
        self._mean = values.mean(axis=0)
        self._scale = np.maximum(values.std(axis=0), 1e-6)
        svm = LinearSVC(C=self.config.svm_c, class_weight="balanced" if self.config.balanced else None,
                        dual=True, max_iter=self.config.max_iter, random_state=self.config.seed)
        self._svm = svm.fit((values - self._mean) / self._scale, targets)
        return self

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        """float64 (N, num_classes) SVM decision values; −inf for classes absent from the training labels."""
        if self._svm is None or self._mean is None or self._scale is None:
            raise RuntimeError("LBPTOPClassifier used before fit")
        values = (self._check_features(features) - self._mean) / self._scale
        raw = np.asarray(self._svm.decision_function(values), dtype=np.float64)
        if raw.ndim == 1:  # two classes: one value, positive for classes_[1]
            raw = np.stack([np.zeros_like(raw), raw], axis=1)
        scores = np.full((len(values), self.num_classes), -np.inf)
        scores[:, self._svm.classes_] = raw
        return scores

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities, float64 (N, num_classes): the softmax of the decision values."""
        return _softmax(self.decision_function(features))

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicted class ids, int64 (N,)."""
        return self.predict_proba(features).argmax(axis=1).astype(np.int64)
