"""One builder per input kind: a sample's array computed from its frames (see :class:`InputSpec` for the layouts).

Frames are RGB uint8 (H, W, 3) arrays by frame number (:class:`ClipFrames`). Images are squared as
:func:`micronbert.data.labelled_pairs.read_pair` squares them (:func:`resize_square`: the whole frame stretched
to size×size, area interpolation when shrinking); grey is OpenCV's RGB→grey of the squared frame. Image kinds
return uint8 pixel values, sequence and flow kinds float32.

Choices ([PROPOSED] where the sources are silent):

- Optical flow is computed at a working size, ``max(FLOW_WORKING_SIZE, spec size)`` = 224 at every published
  size but DSSN's 227: the frames are squared to it, flow (and strain, magnitude) computed there and every map
  area-resized to the spec size, as :func:`flow_features` does from the frames the STSTNet method reads at 224
  today. [PROPOSED] A fixed working size keeps the flow of a 28×28 input from depending on the dataset's frame
  size and bounds TV-L1's cost on 640×480 frames; the ``angle`` channel is the direction of the resized
  (i.e. locally averaged) flow vector, so that averaging never mixes angles across the ±π cut.
- Flow values: min–max scaled per channel to 0–255 float over the whole sample (STSTNet's normalisation), for
  every flow kind (:func:`scale_channels`).
- ``sequence``: [PROPOSED] linear interpolation in time as the stand-in for TIM (the temporal interpolation model
  ELRCN and the 3D CNNs used): T frames at evenly spaced positions onset + k·(offset − onset)/(T − 1), each the
  blend of the two nearest frames (by frame number; gaps in the numbering are bridged the same way). The first
  frame is the onset frame and the last the offset frame, exactly.
- ``flow_sequence``: [PROPOSED] T steps from the clip resampled to T + 1 frames (ELRCN: 9 flows of a 10-frame TIM
  clip); the resampled frames are rounded to uint8 at the working size before the flow; ``grey`` is each step's
  second frame.
- ``flow_cells`` (ATNet): [PROPOSED] consecutive-frame flow between the frames the table lists from onset to
  offset (not resampled); the last ``length`` steps of a longer clip; per step and per cell of a G×G grid over
  the squared frame, the angle of the mean flow vector (radians, before scaling) and the mean magnitude;
  right-aligned and zero-padded at the front after scaling.
- ``regions``: [PROPOSED] geometry from the face found on the onset frame (box and eye centres, which every face
  backend gives; the OpenCV backend's box is its Haar face box, a landmark backend's the landmarks' hull). With
  the eye midpoint (mx, my), the eye distance d and the face box's width w, both boxes are centred on mx:
  ``eyes`` is w wide and spans rows my − 0.45·d … my + 0.35·d (brows to below the lower lids: the published crop
  ran from the brow to jaw point 2, across the face); ``mouth`` (nose–mouth) is 0.8·w wide and spans rows
  my + 0.5·d … my + 1.5·d (nose tip to below the lower lip: the published crop ran from jaw point 3 to 7).
  Boxes are axis-aligned (a tilted head's roll is not removed), clipped to the frame and fixed from the onset for
  the whole clip; each crop is stretched to size×size.
- ``precomputed``: the image file's pixels in RGB order (a flow image's channels as stored), resized to the spec
  size, not normalised again.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np

from micronbert.data.faces import FaceDetection
from micronbert.data.flow import FLOW_METHODS, optical_flow, optical_strain, tvl1_available
from micronbert.data.inputs.spec import InputSpec
from micronbert.data.transforms import Box, resize_square

FLOW_WORKING_SIZE = 224
EYES_ROWS = (-0.45, 0.35)  # eye distances below the eye line (negative: above)
MOUTH_ROWS = (0.5, 1.5)
MOUTH_WIDTH = 0.8  # of the face box's width, centred on it
FLOW_TAG = f"flow-work={FLOW_WORKING_SIZE}"  # folded into the cache keys of the flow kinds
REGIONS_TAG = f"eyes={EYES_ROWS}|mouth={MOUTH_ROWS}x{MOUTH_WIDTH}"  # and of the regions


def resolve_flow_method(method: str) -> str:
    """The optical-flow method actually used: ``auto`` is TV-L1 when ``cv2.optflow`` exists, else DIS.

    Raises ValueError for an unknown method and ImportError for ``tvl1`` without opencv-contrib.
    """
    if method not in FLOW_METHODS:
        raise ValueError(f"unknown optical-flow method {method!r}; choose one of {FLOW_METHODS}")
    if method == "auto":
        return "tvl1" if tvl1_available() else "dis"
    if method == "tvl1" and not tvl1_available():
        raise ImportError("flow method 'tvl1' needs cv2.optflow from opencv-contrib-python(-headless), which is "
                          "not installed; use 'dis', 'farneback' or 'auto'")
    return method


@dataclass(frozen=True)
class ClipFrames:
    """The frames of one sample that its inputs read (RGB uint8 (H, W, 3) by frame number), and the sample's
    onset, apex and offset frame numbers (apex or offset None where no input needs them)."""

    frames: Mapping[int, np.ndarray]
    onset: int
    apex: int | None = None
    offset: int | None = None

    def __getitem__(self, number: int) -> np.ndarray:
        if number not in self.frames:
            raise ValueError(f"frame {number} was not read for this sample")
        return self.frames[number]


@dataclass(frozen=True)
class Blend:
    """One resampled frame: ``(1 − weight)·lower + weight·upper`` of two frame numbers."""

    lower: int
    upper: int
    weight: float

    @property
    def numbers(self) -> tuple[int, ...]:
        """The frame numbers the blend reads."""
        return (self.lower,) if self.weight == 0 else (self.lower, self.upper)


# ---------------------------------------------------------------------------------------------------- planning
def resampling_plan(numbers: Sequence[int], onset: int, offset: int, count: int) -> tuple[Blend, ...]:
    """``count`` frames evenly spaced from ``onset`` to ``offset`` (both included), each a linear blend of the
    two nearest of the clip's frame ``numbers``.

    Raises ValueError when offset is not after onset, or the onset or offset frame is not among ``numbers``.
    """
    if offset <= onset:
        raise ValueError(f"a sequence needs the offset after the onset, got onset {onset}, offset {offset}")
    if count < 2:
        raise ValueError(f"a resampled sequence needs at least 2 frames, got {count}")
    ordered = sorted(set(numbers))
    for name, number in (("onset", onset), ("offset", offset)):
        if number not in ordered:
            raise ValueError(f"the {name} frame {number} is not among the clip's frames")
    plan = []
    for k in range(count):
        position = onset + Fraction(k * (offset - onset), count - 1)
        lower = ordered[bisect_right(ordered, position) - 1]
        upper = ordered[bisect_left(ordered, position)]
        weight = 0.0 if upper == lower else float((position - lower) / (upper - lower))
        plan.append(Blend(lower, upper, weight))
    return tuple(plan)


def cell_steps(numbers: Sequence[int], onset: int, offset: int, length: int) -> tuple[int, ...]:
    """The frames whose consecutive flows make the ``flow_cells`` steps: the listed frames from onset to offset,
    the last ``length + 1`` of them. Raises ValueError when fewer than two frames lie in [onset, offset]."""
    inside = sorted(number for number in set(numbers) if onset <= number <= offset)
    if len(inside) < 2:
        raise ValueError(f"flow cells need at least two frames from onset {onset} to offset {offset}, "
                         f"found {len(inside)}")
    return tuple(inside[-(length + 1):])


def frames_read(spec: InputSpec, numbers: Sequence[int], onset: int | None, apex: int | None,
                offset: int | None) -> tuple[int, ...]:
    """The frame numbers ``spec`` reads for a clip of frame ``numbers``, in a fixed order (for reading each frame
    once and for the cache key). Raises ValueError naming what is missing."""
    if spec.kind == "precomputed":
        return ()
    if spec.kind in ("pair", "apex", "flow"):
        if onset is None or apex is None:
            raise ValueError("onset or apex frame is not known")
        return (apex,) if spec.kind == "apex" else (onset, apex)
    if onset is None or offset is None:
        raise ValueError("onset or offset frame is not known")
    if spec.kind == "flow_cells":
        return cell_steps(numbers, onset, offset, spec.length)
    count = spec.length + 1 if spec.kind == "flow_sequence" else spec.length
    plan = resampling_plan(numbers, onset, offset, count)
    return tuple(sorted({number for blend in plan for number in blend.numbers}))


def output_shape(spec: InputSpec) -> tuple[int, ...]:
    """The shape of one sample's array of ``spec``."""
    channels, size, length = len(spec.channels), spec.size, spec.length
    shapes = {
        "pair": (2 * channels, size, size),
        "sequence": (channels, length, size, size),
        "regions": (channels, length, size, size),
        "flow_sequence": (length, channels, size, size),
        "flow_cells": (length, channels, size, size),
    }
    return shapes.get(spec.kind, (channels, size, size))


# ---------------------------------------------------------------------------------------------------- images
def image_channels(frame: np.ndarray, channels: tuple[str, ...], size: int, box: Box | None = None) -> np.ndarray:
    """An RGB uint8 frame (cropped to ``box``) squared to size×size as (C, size, size) uint8: grey or RGB."""
    square = resize_square(frame, size, box)
    if channels == ("grey",):
        return cv2.cvtColor(square, cv2.COLOR_RGB2GRAY)[None]
    return np.ascontiguousarray(square.transpose(2, 0, 1))


def build_pair(clip: ClipFrames, spec: InputSpec) -> np.ndarray:
    """``pair``: (2·C, S, S) uint8, the onset's channels then the apex's."""
    onset = image_channels(clip[clip.onset], spec.channels, spec.size)
    apex = image_channels(clip[_apex(clip)], spec.channels, spec.size)
    return np.concatenate([onset, apex])


def build_apex(clip: ClipFrames, spec: InputSpec) -> np.ndarray:
    """``apex``: (C, S, S) uint8, grey or RGB."""
    return image_channels(clip[_apex(clip)], spec.channels, spec.size)


def build_precomputed(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    """``precomputed``: the user's RGB uint8 image (a flow image's channels as stored) as (C, S, S) uint8."""
    return image_channels(image, spec.channels, spec.size)


def _apex(clip: ClipFrames) -> int:
    if clip.apex is None:
        raise ValueError("the apex frame is not known")
    return clip.apex


def _blended(plan: Sequence[Blend], frame_at: Mapping[int, np.ndarray]) -> list[np.ndarray]:
    """Every blend of ``plan`` from the prepared frames ``frame_at`` (float32)."""
    out = []
    for blend in plan:
        lower = frame_at[blend.lower].astype(np.float32)
        if blend.weight:
            lower = (1.0 - blend.weight) * lower + blend.weight * frame_at[blend.upper].astype(np.float32)
        out.append(lower)
    return out


def _resampled(clip: ClipFrames, spec: InputSpec, box: Box | None = None) -> np.ndarray:
    """(C, T, S, S) float32: the clip resampled to ``spec.length`` frames, each squared (cropped to ``box``)."""
    plan = resampling_plan(list(clip.frames), clip.onset, _offset(clip), spec.length)
    needed = {number for blend in plan for number in blend.numbers}
    prepared = {number: image_channels(clip[number], spec.channels, spec.size, box) for number in needed}
    return np.stack(_blended(plan, prepared), axis=1)


def _offset(clip: ClipFrames) -> int:
    if clip.offset is None:
        raise ValueError("the offset frame is not known")
    return clip.offset


def build_sequence(clip: ClipFrames, spec: InputSpec) -> np.ndarray:
    """``sequence``: (C, T, S, S) float32, the onset–offset clip linearly resampled to T frames (module docstring)."""
    return _resampled(clip, spec)


def region_boxes(face: FaceDetection, frame_shape: tuple[int, ...]) -> dict[str, Box]:
    """The ``eyes`` and ``mouth`` (nose–mouth) boxes (x, y, w, h) of ``face``, clipped to a frame of
    ``frame_shape`` (geometry in the module docstring). Raises ValueError when a box falls outside the frame."""
    (lx, ly), (rx, ry) = face.left_eye, face.right_eye
    mid_x, mid_y = (lx + rx) / 2.0, (ly + ry) / 2.0
    distance = float(np.hypot(rx - lx, ry - ly))
    if not distance > 0:
        raise ValueError(f"the two eye positions coincide: {face.left_eye}")
    width = face.box[2]
    spans = {"eyes": (mid_x - width / 2.0, mid_x + width / 2.0, EYES_ROWS),
             "mouth": (mid_x - MOUTH_WIDTH * width / 2.0, mid_x + MOUTH_WIDTH * width / 2.0, MOUTH_ROWS)}
    height_px, width_px = frame_shape[:2]
    boxes = {}
    for name, (left, right, (top, bottom)) in spans.items():
        x0, x1 = max(0, round(left)), min(width_px, round(right))
        y0, y1 = max(0, round(mid_y + top * distance)), min(height_px, round(mid_y + bottom * distance))
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"the {name} region of the face at {tuple(round(v) for v in face.box)} lies outside "
                             f"the {width_px}x{height_px} frame")
        boxes[name] = (x0, y0, x1 - x0, y1 - y0)
    return boxes


def build_regions(clip: ClipFrames, spec: InputSpec, face: FaceDetection) -> np.ndarray:
    """``regions``: (C, T, S, S) float32, the ``spec.region`` crop of the resampled clip, the box fixed from the
    ``face`` found on the onset frame."""
    box = region_boxes(face, clip[clip.onset].shape)[spec.region]
    return _resampled(clip, spec, box)


# ---------------------------------------------------------------------------------------------------- flow
def working_size(spec: InputSpec) -> int:
    """The side at which ``spec``'s optical flow is computed (module docstring)."""
    return max(FLOW_WORKING_SIZE, spec.size)


def working_grey(frame: np.ndarray, side: int) -> np.ndarray:
    """An RGB uint8 frame squared to side×side, grey uint8."""
    return cv2.cvtColor(resize_square(frame, side), cv2.COLOR_RGB2GRAY)


def flow_maps(first: np.ndarray, second: np.ndarray, channels: Sequence[str], size: int, method: str) -> np.ndarray:
    """Unscaled flow maps (C, size, size) float32 from grey uint8 frames of one working size: ``u``, ``v`` (pixels
    at the working size), optical ``strain`` and ``magnitude`` computed there and area-resized, ``angle``
    (radians) of the resized flow, ``grey`` the second frame resized."""
    flow = optical_flow(first, second, method)
    u, v = flow[..., 0], flow[..., 1]

    def area(field: np.ndarray) -> np.ndarray:
        return cv2.resize(field.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)

    wanted = set(channels)
    maps: dict[str, np.ndarray] = {}
    if wanted & {"u", "v", "angle"}:
        maps["u"], maps["v"] = area(u), area(v)
        maps["angle"] = np.arctan2(maps["v"], maps["u"])
    if "magnitude" in wanted:
        maps["magnitude"] = area(np.hypot(u, v))
    if "strain" in wanted:
        maps["strain"] = area(optical_strain(u, v))
    if "grey" in wanted:
        maps["grey"] = area(second)
    return np.stack([maps[name] for name in channels])


def scale_channels(maps: np.ndarray, axis: int) -> np.ndarray:
    """Min–max scale every channel (index along ``axis``) to 0–255 float32 over all its values; a channel without
    range becomes 0. Raises ValueError for NaN or infinite values."""
    if not np.all(np.isfinite(maps)):
        raise ValueError("flow maps hold NaN or infinite values")
    other_axes = tuple(index for index in range(maps.ndim) if index != axis % maps.ndim)
    low = maps.min(axis=other_axes, keepdims=True)
    span = maps.max(axis=other_axes, keepdims=True) - low
    scaled = (maps - low) * np.divide(255.0, span, out=np.zeros_like(span, dtype=np.float64), where=span > 0)
    return np.clip(scaled, 0.0, 255.0).astype(np.float32)  # rounding may overshoot 255 by an ulp


def build_flow(clip: ClipFrames, spec: InputSpec, method: str) -> np.ndarray:
    """``flow``: onset→apex flow maps (C, S, S) float32 scaled to 0–255 per channel."""
    side = working_size(spec)
    onset, apex = working_grey(clip[clip.onset], side), working_grey(clip[_apex(clip)], side)
    return scale_channels(flow_maps(onset, apex, spec.channels, spec.size, method), axis=0)


def build_flow_sequence(clip: ClipFrames, spec: InputSpec, method: str) -> np.ndarray:
    """``flow_sequence``: (T, C, S, S) float32, the flows between consecutive frames of the clip resampled to
    T + 1 frames at the working size, scaled to 0–255 per channel over all steps."""
    side = working_size(spec)
    plan = resampling_plan(list(clip.frames), clip.onset, _offset(clip), spec.length + 1)
    needed = {number for blend in plan for number in blend.numbers}
    prepared = {number: working_grey(clip[number], side) for number in needed}
    frames = [np.clip(np.rint(frame), 0, 255).astype(np.uint8) for frame in _blended(plan, prepared)]
    steps = [flow_maps(first, second, spec.channels, spec.size, method) for first, second in zip(frames, frames[1:])]
    return scale_channels(np.stack(steps), axis=1)


def build_flow_cells(clip: ClipFrames, spec: InputSpec, method: str) -> np.ndarray:
    """``flow_cells``: (T, C, G, G) float32, per consecutive-frame step from onset to offset and per grid cell the
    angle of the mean flow vector and the mean magnitude; valid steps scaled to 0–255 per channel, right-aligned,
    zero-padded at the front."""
    side = working_size(spec)
    numbers = cell_steps(list(clip.frames), clip.onset, _offset(clip), spec.length)
    greys = [working_grey(clip[number], side) for number in numbers]
    steps = np.stack([flow_maps(first, second, spec.channels, spec.size, method)
                      for first, second in zip(greys, greys[1:])])
    cells = np.zeros(output_shape(spec), dtype=np.float32)
    cells[spec.length - len(steps):] = scale_channels(steps, axis=1)
    return cells
