"""Per-frame motion signals of a long video for spotting (docs/SPOTTING.md).

Input: a stream of aligned face crops, RGB uint8 S×S with the eyes where ``micronbert.data.faces.AlignConfig`` puts
them, ``None`` for a frame without a face. Frame t is compared with frame t−k (and, for the ``centred`` feature, with
frame t+k as well):

- ``roi_flow_signal``: dense optical flow from t−k to t on the crop resized to ``FlowSignalConfig.size``, the eyes
  blanked first (blinks), head motion removed (``similarity``, the default: a similarity transform fitted robustly to
  the flow of the regions and the nose is subtracted, which also removes in-plane head turns; ``nose``: the nose
  anchor's mean flow is subtracted, docs/SPOTTING.md). ``forward`` feature: the flow magnitude; ``centred`` (the
  default): half the magnitude of (flow t−k→t) − (flow t→t+k), the flow form of Moilanen's difference between frame t
  and the average of frames t−k and t+k (one peak at an apex instead of one at the apex and one k frames after it; 0
  for a steady drift). Per region of interest the mean magnitude (``roi_fraction`` 1; docs/SPOTTING.md suggests
  the top third), eye pixels left out; the frame's value is the mean of the top third of the region values
  (MDMD/Moilanen-style top-fraction pooling).
- ``micronbert_signal``: the μ-BERT change of frame t against t−k on every patch (``relative``: the relative change
  map of the DMA diagonal; ``dma``: the change map 1 − a/max(a)), for ``centred`` averaged with the change of t
  against t+k, pooled over the regions' patches the same way, minus the nose anchor's change.

The ``centred`` value of frame t is missing (NaN) unless frames t−k, t and t+k all have a face: a one-sided value
measures plain motion rather than the departure from both neighbours, and made false peaks at the first and last k
frames of a video (spotting F1 of flow-roi on the default ``spot-demo`` rose from 0.241 to 0.286 overall with this
rule).

Regions (``REGION_BOXES``, in inter-ocular distances D from the midpoint of the eyes, x to the image right, y down;
derived from the aligned geometry, never from landmarks): left and right eyebrow (x 0.10–1.00 D from the centre line,
y −0.75 to −0.12 D), left and right cheek / nasolabial fold (x 0.30–0.85 D, y 0.35–0.85 D), left and right mouth
corner (x 0.15–0.75 D, y 0.85–1.40 D), chin (x ±0.35 D, y 1.40–1.80 D). Nose anchor (``NOSE_BOX``): the nose bridge,
x ±0.15 D, y 0.20–0.50 D, which expressions barely move. Eye masks (``EYE_RADII``): ellipses of half-axes 0.38 D ×
0.24 D around each eye; their pixels are left out of every region. Boxes are clipped to the crop. The proportions
follow an average adult face (eyebrows about a third of D above the eyes, mouth line about 1.15 D and chin about
1.85 D below them, mouth about 0.8 D wide).

Frame rate: frames are taken every ``temporal_stride(fps, target_fps)``-th (SAMM's 200 fps: every 7th, 28.6 fps, as
ABPN and SpotFormer resample), so k and the signals live at a common effective rate near ``target_fps``.

Memory: both signals stream, max(k) kept frames behind the input. ``RoiFlowStream`` keeps the last max(k) + 1 kept
frames and their region flows, ``MicronBertStream`` the encoder outputs of the last max(k) kept frames, one batch of
crops and the change maps of at most max(k) + batch frames; the result holds one float per kept frame and k.
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import cv2
import numpy as np
import torch

from micronbert.config import Config
from micronbert.data.faces.align import AlignConfig
from micronbert.data.flow import FLOW_METHODS, optical_flow
from micronbert.data.frames import to_grey
from micronbert.data.transforms import resize_square, to_model_input
from micronbert.io import check_positive_int
from micronbert.model.dma import change_map

RegionBox = tuple[float, float, float, float]  # x0, y0, x1, y1 in inter-ocular distances from the eye midpoint

REGION_BOXES: Mapping[str, RegionBox] = MappingProxyType({
    "brow_l": (-1.00, -0.75, -0.10, -0.12),
    "brow_r": (0.10, -0.75, 1.00, -0.12),
    "cheek_l": (-0.85, 0.35, -0.30, 0.85),
    "cheek_r": (0.30, 0.35, 0.85, 0.85),
    "mouth_l": (-0.75, 0.85, -0.15, 1.40),
    "mouth_r": (0.15, 0.85, 0.75, 1.40),
    "chin": (-0.35, 1.40, 0.35, 1.80),
})
NOSE_BOX: RegionBox = (-0.15, 0.20, 0.15, 0.50)
EYE_CENTRES: tuple[tuple[float, float], ...] = ((-0.5, 0.0), (0.5, 0.0))
EYE_RADII: tuple[float, float] = (0.38, 0.24)
CHANGE_MEASURES: tuple[str, ...] = ("relative", "dma")
FEATURES: tuple[str, ...] = ("centred", "forward")
HEAD_MOTIONS: tuple[str, ...] = ("nose", "similarity")
FIT_POINTS = 600
DEFAULT_TARGET_FPS = 30.0
MIN_PATCH_COVERAGE = 0.5
MAX_EYE_COVERAGE = 0.1

Frame = np.ndarray | None


def temporal_stride(fps: float, target_fps: float = DEFAULT_TARGET_FPS) -> int:
    """Keep every stride-th frame: round(fps / target_fps), at least 1 (30 fps → 1, 60 → 2, SAMM's 200 → 7)."""
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if not (math.isfinite(target_fps) and target_fps > 0):
        raise ValueError(f"target_fps must be a positive number, got {target_fps!r}")
    return max(1, round(fps / target_fps))


# --- regions -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceRegions:
    """Boolean pixel masks (H, W) of one crop size: each region of interest (eyes left out), the nose anchor and the
    eye masks."""

    rois: Mapping[str, np.ndarray]
    nose: np.ndarray
    eyes: np.ndarray


def face_regions(size: int, align: AlignConfig | None = None) -> FaceRegions:
    """The regions of a square crop of side ``size`` made with ``align`` (its geometry scaled to ``size``).

    Raises ValueError when a region has no pixel left in the crop.
    """
    check_positive_int("size", size)
    align = align if align is not None else AlignConfig()
    scale = size / align.output_size
    centre_x, centre_y = (value * scale for value in align.target_eye_midpoint)
    distance = align.target_eye_distance * scale
    pixels = np.arange(size, dtype=np.float64)
    x = ((pixels - centre_x) / distance)[None, :]
    y = ((pixels - centre_y) / distance)[:, None]
    eyes = np.zeros((size, size), dtype=bool)
    for eye_x, eye_y in EYE_CENTRES:
        eyes |= ((x - eye_x) / EYE_RADII[0]) ** 2 + ((y - eye_y) / EYE_RADII[1]) ** 2 <= 1.0

    def box(bounds: RegionBox, name: str) -> np.ndarray:
        x0, y0, x1, y1 = bounds
        mask = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1) & ~eyes
        if not mask.any():
            raise ValueError(f"region {name} has no pixel in a {size}x{size} crop with {align}")
        return mask

    rois = {name: box(bounds, name) for name, bounds in REGION_BOXES.items()}
    return FaceRegions(MappingProxyType(rois), box(NOSE_BOX, "nose"), eyes)


def top_fraction_mean(values: np.ndarray, fraction: float) -> float:
    """Mean of the ceil(fraction · n) largest of ``values`` (1-D, non-empty)."""
    count = max(1, math.ceil(fraction * values.size))
    return float(np.partition(values, values.size - count)[values.size - count:].mean())


def _check_fraction(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 < value <= 1.0):
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")


def _check_ks(ks: int | Sequence[int]) -> tuple[int, ...]:
    values = (ks,) if isinstance(ks, (int, np.integer)) and not isinstance(ks, bool) else tuple(ks)
    if not values:
        raise ValueError("k: give at least one frame distance")
    for value in values:
        check_positive_int("k", value)
    if len(set(values)) != len(values):
        raise ValueError(f"k: the frame distances {list(values)} repeat")
    return tuple(int(value) for value in values)


def _checked_frame(frame: object, index: int, side: int | None) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        shape = getattr(frame, "shape", None)
        raise ValueError(f"frame {index}: expected an aligned RGB uint8 crop (S, S, 3) or None, got "
                         f"{type(frame).__name__} {getattr(frame, 'dtype', '')} {shape}")
    if frame.shape[0] != frame.shape[1]:
        raise ValueError(f"frame {index}: aligned crops are square, got {frame.shape[1]}x{frame.shape[0]}")
    if side is not None and frame.shape[0] != side:
        raise ValueError(f"frame {index}: {frame.shape[0]}x{frame.shape[0]} crop in a stream of {side}x{side} crops")
    return frame


# --- the result --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameSignal:
    """Signal values at the kept frames: ``values[i, j]`` is the value of stream frame ``i · stride`` (0-based) at
    frame distance ``ks[j]`` (in kept frames); NaN where it cannot be computed (no face in the frames it compares)."""

    values: np.ndarray
    ks: tuple[int, ...]
    stride: int
    n_frames: int

    def column(self, k: int) -> np.ndarray:
        """The 1-D signal of frame distance ``k``."""
        if k not in self.ks:
            raise ValueError(f"k={k} was not computed; the signal has k in {list(self.ks)}")
        return self.values[:, self.ks.index(k)]

    @property
    def frame_indices(self) -> np.ndarray:
        """0-based stream index of each kept frame."""
        return np.arange(self.values.shape[0]) * self.stride


def _collect(rows: list[np.ndarray], ks: tuple[int, ...], stride: int, n_frames: int) -> FrameSignal:
    values = np.vstack(rows) if rows else np.zeros((0, len(ks)))
    return FrameSignal(values.astype(np.float64, copy=False), ks, stride, n_frames)


@dataclass
class _Step:
    """What one kept frame gathered so far: per k, what changed into it from k steps before (``incoming``) and, for
    the μ-BERT signal, what changes from it to k steps later (``outgoing``)."""

    incoming: list[np.ndarray | None]
    outgoing: list[np.ndarray | None]


class _KeptFrames:
    """Counts stream frames, checks them and tells which ones the stride keeps."""

    def __init__(self, fps: float, target_fps: float) -> None:
        self.stride = temporal_stride(fps, target_fps)
        self.frames_seen = 0
        self._side: int | None = None

    def admit(self, frame: Frame) -> tuple[bool, np.ndarray | None]:
        """(whether the frame is kept, the checked frame or None)."""
        index = self.frames_seen
        self.frames_seen += 1
        if frame is not None:
            frame = _checked_frame(frame, index, self._side)
            self._side = frame.shape[0]
        return index % self.stride == 0, frame


# --- optical flow in regions -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowSignalConfig(Config):
    """ROI optical-flow signal.

    ``feature``: ``centred`` (default), half the magnitude of the flow into frame t from t−k minus the flow out of it
    to t+k, per pixel: the optical-flow form of Moilanen's difference between frame t and the average of frames t−k
    and t+k, largest at an apex and 0 for a steady drift; or ``forward``, the magnitude of the flow from t−k to t
    (docs/SPOTTING.md step 4). ``head_motion``: ``similarity`` (default) subtracts the similarity transform
    (translation, rotation, scale) fitted by least median of squares to the flow of the regions and the nose, which
    also removes in-plane head turns; ``nose`` subtracts the nose anchor's mean flow (a translation only).
    ``mask_eyes``: the eye masks are filled with the nose's mean grey level in every frame before the flow, so that a
    blink produces no flow that could spread into the regions around the eyes (their pixels are left out of the
    regions in any case). ``method`` of ``micronbert.data.flow.optical_flow`` (``dis``: core OpenCV, fast); crops
    resized to ``size`` (None: as given); ``roi_fraction`` of the largest magnitudes averaged in each region,
    ``pool_fraction`` of the largest region values averaged into the frame's value; the crop geometry ``align``.
    """

    feature: str = "centred"
    head_motion: str = "similarity"
    mask_eyes: bool = True
    method: str = "dis"
    size: int | None = 112
    roi_fraction: float = 1.0
    pool_fraction: float = 1 / 3
    align: AlignConfig = field(default_factory=AlignConfig)

    def __post_init__(self) -> None:
        if self.feature not in FEATURES:
            raise ValueError(f"feature must be one of {FEATURES}, got {self.feature!r}")
        if self.head_motion not in HEAD_MOTIONS:
            raise ValueError(f"head_motion must be one of {HEAD_MOTIONS}, got {self.head_motion!r}")
        if self.method not in FLOW_METHODS:
            raise ValueError(f"method must be one of {FLOW_METHODS}, got {self.method!r}")
        if self.size is not None:
            check_positive_int("size", self.size)
            if self.size < 16:
                raise ValueError(f"size must be at least 16 for optical flow, got {self.size}")
        _check_fraction("roi_fraction", self.roi_fraction)
        _check_fraction("pool_fraction", self.pool_fraction)


@dataclass(frozen=True)
class _RegionPixels:
    """Pixel coordinates of all regions, concatenated (``bounds`` delimit each region), the nose anchor and eye masks,
    and a sample of the regions and the nose for fitting the head motion."""

    ys: np.ndarray
    xs: np.ndarray
    bounds: np.ndarray
    nose: np.ndarray
    eyes: np.ndarray
    fit_points: np.ndarray

    @classmethod
    def of(cls, regions: FaceRegions) -> _RegionPixels:
        coordinates = [np.nonzero(mask) for mask in regions.rois.values()]
        bounds = np.cumsum([0, *(len(ys) for ys, _ in coordinates)])
        ys = np.concatenate([ys for ys, _ in coordinates])
        xs = np.concatenate([xs for _, xs in coordinates])
        support = np.logical_or.reduce([*regions.rois.values(), regions.nose])
        fit_ys, fit_xs = np.nonzero(support)
        every = max(1, fit_ys.size // FIT_POINTS)
        fit = np.stack([fit_xs[::every], fit_ys[::every]], axis=1).astype(np.float32)
        return cls(ys, xs, bounds, regions.nose, regions.eyes, fit)


class RoiFlowStream:
    """Streaming ROI-flow values. ``feed`` one aligned crop (or None) at a time; it returns the rows (one value per k)
    that became complete, max(ks) kept frames behind the input; ``flush`` returns the rest at the end. ``window``
    holds the last max(ks) + 1 kept frames (grey, resized), ``steps`` their region flows; nothing else is kept."""

    def __init__(self, ks: int | Sequence[int], fps: float, config: FlowSignalConfig | None = None,
                 target_fps: float = DEFAULT_TARGET_FPS) -> None:
        self.ks = _check_ks(ks)
        self.config = config if config is not None else FlowSignalConfig()
        self.kept = _KeptFrames(fps, target_fps)
        self.stride = self.kept.stride
        span = max(self.ks) + 1
        self.window: deque[np.ndarray | None] = deque(maxlen=span)
        self.steps: deque[_Step] = deque(maxlen=span)
        self._unreleased = 0
        self._pixels: _RegionPixels | None = None

    @property
    def frames_seen(self) -> int:
        """Stream frames fed so far."""
        return self.kept.frames_seen

    def feed(self, frame: Frame) -> list[np.ndarray]:
        """Rows released by this frame (at most one)."""
        kept, frame = self.kept.admit(frame)
        if not kept:
            return []
        self.window.append(None if frame is None else self._prepared(frame))
        self.steps.append(_Step([self._incoming(k) for k in self.ks], []))
        self._unreleased += 1
        if len(self.steps) < self.steps.maxlen:
            return []
        self._unreleased -= 1
        return [self._row(0)]

    def flush(self) -> list[np.ndarray]:
        """Rows of the kept frames not yet released (their later neighbours missing: the video ended)."""
        first = len(self.steps) - self._unreleased
        self._unreleased = 0
        return [self._row(i) for i in range(first, len(self.steps))]

    def _prepared(self, frame: np.ndarray) -> np.ndarray:
        grey = to_grey(frame, "frame")
        size = self.config.size or grey.shape[0]
        if self._pixels is None:
            self._pixels = _RegionPixels.of(face_regions(size, self.config.align))
        assert self._pixels is not None
        if grey.shape[0] != size:
            interpolation = cv2.INTER_AREA if grey.shape[0] > size else cv2.INTER_LINEAR
            grey = cv2.resize(grey, (size, size), interpolation=interpolation)
        if self.config.mask_eyes:
            grey[self._pixels.eyes] = int(round(float(grey[self._pixels.nose].mean())))
        return grey

    def _incoming(self, k: int) -> np.ndarray | None:
        """Flow (P, 2) at the region pixels from k kept frames before to now, head motion removed."""
        if len(self.window) <= k or self.window[-1] is None or self.window[-1 - k] is None:
            return None
        assert self._pixels is not None
        flow = optical_flow(self.window[-1 - k], self.window[-1], self.config.method)
        pixels = self._pixels
        at_regions = flow[pixels.ys, pixels.xs]
        if self.config.head_motion == "similarity":
            head = _similarity_flow(flow, pixels)
            if head is not None:
                return at_regions - head
        return at_regions - flow[pixels.nose].mean(axis=0)

    def _row(self, i: int) -> np.ndarray:
        row = np.full(len(self.ks), np.nan)
        for j, k in enumerate(self.ks):
            into = self.steps[i].incoming[j]
            out_of = self.steps[i + k].incoming[j] if i + k < len(self.steps) else None
            if self.config.feature == "forward":
                out_of = None
            if self.config.feature == "forward" and into is not None:
                magnitude = np.hypot(*into.T)
            elif into is not None and out_of is not None:
                magnitude = 0.5 * np.hypot(*(into - out_of).T)
            else:
                continue
            row[j] = self._pooled(magnitude)
        return row

    def _pooled(self, magnitude: np.ndarray) -> float:
        assert self._pixels is not None
        bounds = self._pixels.bounds
        per_region = np.array([top_fraction_mean(magnitude[start:end], self.config.roi_fraction)
                               for start, end in zip(bounds[:-1], bounds[1:])])
        return top_fraction_mean(per_region, self.config.pool_fraction)


def _similarity_flow(flow: np.ndarray, pixels: _RegionPixels) -> np.ndarray | None:
    """The flow (P, 2) at the region pixels of the similarity transform fitted to ``flow`` (None if the fit fails)."""
    points = pixels.fit_points
    moved = points + flow[points[:, 1].astype(np.intp), points[:, 0].astype(np.intp)]
    matrix, _ = cv2.estimateAffinePartial2D(points, moved, method=cv2.LMEDS)
    if matrix is None:
        return None
    xy = np.stack([pixels.xs, pixels.ys], axis=1).astype(np.float64)
    return (xy @ matrix[:, :2].T + matrix[:, 2] - xy).astype(np.float32)


def roi_flow_signal(frames: Iterable[Frame], fps: float, k: int | Sequence[int],
                    config: FlowSignalConfig | None = None,
                    target_fps: float = DEFAULT_TARGET_FPS) -> FrameSignal:
    """The ROI optical-flow signal of a stream of aligned crops at frame distance(s) ``k`` (in kept frames; see the
    module docstring), streamed through ``RoiFlowStream``."""
    stream = RoiFlowStream(k, fps, config, target_fps)
    rows = [row for frame in frames for row in stream.feed(frame)]
    rows += stream.flush()
    return _collect(rows, stream.ks, stream.stride, stream.frames_seen)


# --- μ-BERT change -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MicronBertSignalConfig(Config):
    """μ-BERT change signal.

    ``measure``: ``relative`` (the relative change map, ``MicronBERT.relative_change``) or ``dma`` (the change map
    1 − a/max(a) of the DMA diagonal). ``feature``: ``centred`` (default), the mean of the change of frame t against
    t−k and against t+k; or ``forward``, the change against t−k alone. Frames are encoded ``batch_size`` at a time;
    ``roi_fraction`` / ``pool_fraction`` as for the flow; the nose anchor's change is subtracted when
    ``subtract_anchor``; the crop geometry ``align``.
    """

    measure: str = "relative"
    feature: str = "centred"
    batch_size: int = 32
    roi_fraction: float = 1.0
    pool_fraction: float = 1 / 3
    subtract_anchor: bool = True
    align: AlignConfig = field(default_factory=AlignConfig)

    def __post_init__(self) -> None:
        if self.measure not in CHANGE_MEASURES:
            raise ValueError(f"measure must be one of {CHANGE_MEASURES}, got {self.measure!r}")
        if self.feature not in FEATURES:
            raise ValueError(f"feature must be one of {FEATURES}, got {self.feature!r}")
        check_positive_int("batch_size", self.batch_size)
        _check_fraction("roi_fraction", self.roi_fraction)
        _check_fraction("pool_fraction", self.pool_fraction)


@dataclass(frozen=True)
class PatchRegions:
    """Patch indices (row-major over the model's patch grid) of each region and of the nose anchor."""

    rois: tuple[np.ndarray, ...]
    nose: np.ndarray


def patch_regions(img_size: int, patch_size: int, align: AlignConfig | None = None) -> PatchRegions:
    """The patches of each region: those at least half covered by its pixels and at most ``MAX_EYE_COVERAGE``
    by the eye masks (when none is, the eye-free patches it covers most)."""
    regions = face_regions(img_size, align)
    grid = img_size // patch_size
    side = grid * patch_size

    def cover(mask: np.ndarray) -> np.ndarray:
        return mask[:side, :side].reshape(grid, patch_size, grid, patch_size).mean((1, 3)).reshape(-1)

    eye_free = cover(regions.eyes) <= MAX_EYE_COVERAGE

    def patches(mask: np.ndarray) -> np.ndarray:
        covered = np.where(eye_free, cover(mask), 0.0)
        chosen = np.flatnonzero(covered >= MIN_PATCH_COVERAGE)
        if chosen.size == 0:
            covered = covered if covered.max() > 0 else cover(mask)
            chosen = np.flatnonzero(covered == covered.max())
        return chosen

    return PatchRegions(tuple(patches(mask) for mask in regions.rois.values()), patches(regions.nose))


class MicronBertStream:
    """Streaming μ-BERT change values. ``feed`` one aligned crop (or None) at a time; kept frames are encoded in
    batches of ``batch_size``, and the rows that became complete (max(ks) kept frames behind the input) come back
    when a batch is processed; ``flush`` processes the rest at the end. ``window`` holds the encoder outputs of the
    last max(ks) kept frames, ``pending`` at most ``batch_size`` resized crops, ``steps`` the change maps of at most
    max(ks) + ``batch_size`` kept frames."""

    def __init__(self, model: torch.nn.Module, ks: int | Sequence[int], fps: float,
                 config: MicronBertSignalConfig | None = None, target_fps: float = DEFAULT_TARGET_FPS) -> None:
        self.model = model
        self.ks = _check_ks(ks)
        self.config = config if config is not None else MicronBertSignalConfig()
        self.kept = _KeptFrames(fps, target_fps)
        self.stride = self.kept.stride
        self.window: deque[torch.Tensor | None] = deque(maxlen=max(self.ks))
        self.pending: list[np.ndarray | None] = []
        self.steps: deque[_Step] = deque()
        self._img_size = model.config.img_size
        self._patches = patch_regions(model.config.img_size, model.config.patch_size, self.config.align)

    @property
    def frames_seen(self) -> int:
        """Stream frames fed so far."""
        return self.kept.frames_seen

    def feed(self, frame: Frame) -> list[np.ndarray]:
        """Rows released by this frame (none until a batch is full)."""
        kept, frame = self.kept.admit(frame)
        if not kept:
            return []
        self.pending.append(None if frame is None else resize_square(frame, self._img_size))
        return self._process(final=False) if len(self.pending) >= self.config.batch_size else []

    def flush(self) -> list[np.ndarray]:
        """Process what is pending and return every row not yet released (the video ended)."""
        return self._process(final=True)

    @torch.inference_mode()
    def _process(self, final: bool) -> list[np.ndarray]:
        batch, self.pending = self.pending, []
        tokens = self._encode(batch)
        sequence = [*self.window, *tokens]
        offset = len(self.window)
        base = len(self.steps)
        self.steps.extend(_Step([None] * len(self.ks), [None] * len(self.ks)) for _ in batch)
        pairs = [(j, column, offset + j - k) for j in range(len(batch)) for column, k in enumerate(self.ks)
                 if tokens[j] is not None and offset + j - k >= 0 and sequence[offset + j - k] is not None]
        if pairs:
            later = torch.stack([tokens[j] for j, _, _ in pairs])
            earlier = torch.stack([sequence[i] for _, _, i in pairs])
            for (j, column, _), change in zip(pairs, self._change(later, earlier)):
                self.steps[base + j].incoming[column] = change
            if self.config.feature == "centred":
                for (j, column, _), change in zip(pairs, self._change(earlier, later)):
                    self.steps[base + j - self.ks[column]].outgoing[column] = change
        self.window.extend(tokens)
        ready = len(self.steps) if final else max(0, len(self.steps) - max(self.ks))
        return [self._row(self.steps.popleft()) for _ in range(ready)]

    def _encode(self, batch: list[np.ndarray | None]) -> list[torch.Tensor | None]:
        valid = [crop for crop in batch if crop is not None]
        if not valid:
            return [None] * len(batch)
        device = self.model.device
        encoded = iter(self.model.encode(to_model_input(np.stack(valid)).to(device)))
        return [None if crop is None else next(encoded) for crop in batch]

    def _change(self, later: torch.Tensor, earlier: torch.Tensor) -> np.ndarray:
        """Per-patch change (B, N) of ``later`` against ``earlier``."""
        if self.config.measure == "relative":
            change = self.model.relative_change(apex_tokens=later, onset_tokens=earlier)
        else:
            change = change_map(self.model.dma(later, earlier)[1])
        return change.float().cpu().numpy()

    def _row(self, step: _Step) -> np.ndarray:
        row = np.full(len(self.ks), np.nan)
        for j, (into, out_of) in enumerate(zip(step.incoming, step.outgoing)):
            maps = [into] if self.config.feature == "forward" else [into, out_of]
            if all(change is not None for change in maps):
                row[j] = self._pooled(np.mean(maps, axis=0))
        return row

    def _pooled(self, change: np.ndarray) -> float:
        per_region = np.array([top_fraction_mean(change[idx], self.config.roi_fraction)
                               for idx in self._patches.rois])
        value = top_fraction_mean(per_region, self.config.pool_fraction)
        if self.config.subtract_anchor:
            value = max(0.0, value - float(change[self._patches.nose].mean()))
        return value


def micronbert_signal(model: torch.nn.Module, frames: Iterable[Frame], k: int | Sequence[int], *, fps: float,
                      config: MicronBertSignalConfig | None = None,
                      target_fps: float = DEFAULT_TARGET_FPS) -> FrameSignal:
    """The μ-BERT change signal of a stream of aligned crops at frame distance(s) ``k`` (in kept frames; see the
    module docstring), on the model's device, in evaluation mode (the model's mode is restored afterwards)."""
    stream = MicronBertStream(model, k, fps, config, target_fps)
    was_training = model.training
    model.eval()
    try:
        rows = [row for frame in frames for row in stream.feed(frame)]
        rows += stream.flush()
    finally:
        model.train(was_training)
    return _collect(rows, stream.ks, stream.stride, stream.frames_seen)
