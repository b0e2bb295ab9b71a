"""Render frames of a face performing micro-expressions under nuisances, with ground-truth masks.

Per frame: during a blink the eyelids are drawn closing over the eyes of the skin layer; the skin layer is warped
by the expression's displacement field and the head pose in one `cv2.remap`, hair and glasses follow the head
only, the result is composited over the background, lit, noised and JPEG-compressed. Deliberate head movements
add to the head sway. Ground truth is given in the image coordinates of a reference frame.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .actions import Blink, FrameTiming, MicroExpression, unit_displacement_field
from .faces import FaceLayers, FaceModel
from .nuisance import BACKGROUND_CHANGE_LEVEL, Background, HeadMovement, HeadPose, NuisanceConfig, NuisanceTrack

AU_REGION_LEVEL = 0.05  # a pixel is in an AU region where the unit field reaches 5 % of its peak
VISIBLE_LEVEL = 0.5
LID_SCALE = (1.2, 1.3)  # the eyelid ellipse around the eye measured from the anchors (half width, half height)
LID_MIN_ASPECT = 0.25  # the eye is at least this high (half height / half width) when the anchors say less
LID_RING = (1.3, 1.8)  # the skin ring (in lid radii) whose mean colour paints the closed lid
LASH_DARKNESS = 0.5


@dataclass(frozen=True)
class FramePair:
    """Two frames and the ground truth of what changed between them (in frame a's image coordinates).

    displacement_px: magnitude of the expression's skin motion from a to b, in pixels.
    au_mask: visible skin inside the regions of the AUs whose intensity differs between a and b.
    moving_background: background pixels (face not covering them in a or b) whose content changed.
    face_mask: pixels covered by the face, hair or glasses in frame a.
    """

    frame_a: np.ndarray
    frame_b: np.ndarray
    displacement_px: np.ndarray
    au_mask: np.ndarray
    moving_background: np.ndarray
    face_mask: np.ndarray
    intensity_a: float
    intensity_b: float


@dataclass(frozen=True)
class RenderedClip:
    """Frames (T, H, W, 3) uint8 with their frame indices and ground truth relative to `reference_frame`.

    intensities: (T, K) expression intensity per frame and expression. displacement_px (T, H, W) and
    moving_background (T, H, W) compare each frame with the reference frame; au_mask (H, W) marks the
    regions of all AUs of the clip; all masks are in the reference frame's image coordinates.
    """

    frames: np.ndarray
    frame_indices: np.ndarray
    intensities: np.ndarray
    reference_frame: int
    displacement_px: np.ndarray
    au_mask: np.ndarray
    moving_background: np.ndarray


@dataclass(frozen=True)
class _FrameState:
    image: np.ndarray
    background: np.ndarray
    coverage: np.ndarray
    skin_visible: np.ndarray
    face_coords: tuple[np.ndarray, np.ndarray]


class Eyelids:
    """The upper eyelids of a face drawn at one resolution, placed from the eye anchors (``eye_lower_*`` gives the
    eye's centre column and lower edge, ``eye_outer_*`` its outer corner): a lid of the surrounding skin colour with a
    dark lash line at its edge slides down over each eye as a blink closes it."""

    def __init__(self, face: FaceModel, layers: FaceLayers) -> None:
        self.size = layers.size
        centres = (np.arange(self.size, dtype=np.float32) + 0.5) / self.size
        x, y = np.meshgrid(centres, centres)
        self.rows_px = y * self.size
        anchors = face.anchors()
        self.eyes = [self._eye(x, y, anchors[f"eye_lower_{side}"], anchors[f"eye_outer_{side}"], layers)
                     for side in ("l", "r")]
        self.region = np.logical_or.reduce([coverage >= VISIBLE_LEVEL for coverage, *_ in self.eyes])

    def _eye(self, x: np.ndarray, y: np.ndarray, lower: tuple[float, float], outer: tuple[float, float],
             layers: FaceLayers) -> tuple[np.ndarray, float, float, np.ndarray]:
        """(lid coverage, top row and height of the lid in pixels, lid colour) of one eye."""
        cx, cy = lower[0], outer[1]
        half_width = abs(outer[0] - cx)
        ax = half_width * LID_SCALE[0]
        ay = max(lower[1] - cy, LID_MIN_ASPECT * half_width) * LID_SCALE[1]
        radius = np.sqrt(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2)
        coverage = np.clip(0.5 - (radius - 1) * min(ax, ay) * self.size, 0, 1).astype(np.float32)
        ring = (radius >= LID_RING[0]) & (radius <= LID_RING[1]) & (layers.skin_alpha > VISIBLE_LEVEL)
        if not ring.any():
            ring = layers.skin_alpha > VISIBLE_LEVEL
        colour = layers.skin_rgb[ring].sum(0) / max(float(layers.skin_alpha[ring].sum()), 1e-6)
        return coverage, (cy - ay) * self.size, 2 * ay * self.size, colour.astype(np.float32)

    def close(self, skin_rgba: np.ndarray, closure: float) -> np.ndarray:
        """A copy of the premultiplied skin layer (H, W, 4) with both eyes closed by `closure` in (0, 1]."""
        rgba = skin_rgba.copy()
        alpha = rgba[..., 3:]
        for coverage, top, height, colour in self.eyes:
            edge = top + closure * height
            lid = (coverage * np.clip(edge - self.rows_px + 0.5, 0, 1))[..., None]
            lash = (coverage * np.clip(1 - np.abs(self.rows_px - edge), 0, 1) * min(1.0, 4 * closure))[..., None]
            rgba[..., :3] = (rgba[..., :3] * (1 - lid) + lid * colour * alpha) * (1 - LASH_DARKNESS * lash)
        return rgba


class Scene:
    """A face, its micro-expressions and the nuisances of one recording at one resolution and frame rate, with
    optional blinks and deliberate head movements (long recordings)."""

    def __init__(
        self,
        face: FaceModel,
        expressions: Sequence[MicroExpression],
        fps: float,
        size: int,
        nuisance: NuisanceConfig | None = None,
        seed: int = 0,
        blinks: Sequence[Blink] = (),
        head_movements: Sequence[HeadMovement] = (),
    ) -> None:
        if not np.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"scene seed must be a non-negative integer, got {seed!r}")
        self.face = face
        self.expressions = tuple(expressions)
        self.fps = float(fps)
        self.size = int(size)
        self.nuisance = nuisance if nuisance is not None else NuisanceConfig()
        self.layers = face.render_layers(self.size)
        self.track = NuisanceTrack(self.nuisance, int(seed), self.fps, self.size)
        self.background = Background(int(seed), self.size, self.fps, self.nuisance.background_motion)
        self.timings = [e.frame_timing(self.fps) for e in self.expressions]
        face_width_px = face.face_width * self.size
        self.unit_fields = [unit_displacement_field(face, e, self.size) for e in self.expressions]
        self.amplitudes_px = np.array([e.amplitude * face_width_px for e in self.expressions], np.float32)
        self.skin_rgba = np.dstack([self.layers.skin_rgb, self.layers.skin_alpha])
        self.accessory_rgba = np.dstack([self.layers.accessory_rgb, self.layers.accessory_alpha])
        grid = np.arange(self.size, dtype=np.float32)
        self.grid_x, self.grid_y = np.meshgrid(grid, grid)
        self.blinks = tuple(blinks)
        self.head_movements = tuple(head_movements)
        self.blink_timings = [b.frame_timing(self.fps) for b in self.blinks]
        self.movement_timings = [m.frame_timing(self.fps) for m in self.head_movements]
        self.eyelids = Eyelids(face, self.layers)
        self._expression_windows = _windows(self.timings)
        self._blink_windows = _windows(self.blink_timings)
        self._movement_windows = _windows(self.movement_timings)

    @property
    def eye_region(self) -> np.ndarray:
        """Pixels (H, W) bool that the closed eyelids cover, in the image coordinates of the unmoved head."""
        return self.eyelids.region

    def eyelid_closure(self, frame: int) -> float:
        """How far the eyelids are closed at `frame`: 0 open, 1 shut."""
        return max((self.blinks[i].closure * float(self.blink_timings[i].intensity([frame])[0])
                    for i in _active(self._blink_windows, frame)), default=0.0)

    def head_pose(self, frame: int) -> HeadPose:
        """The head pose of `frame`: the nuisance sway plus the deliberate head movements."""
        pose = self.track.pose(frame)
        weights = {i: float(self.movement_timings[i].intensity([frame])[0])
                   for i in _active(self._movement_windows, frame)}
        moves = [(w * self.head_movements[i].dx * self.size, w * self.head_movements[i].dy * self.size,
                  w * self.head_movements[i].angle_deg) for i, w in weights.items() if w]
        if not moves:
            return pose
        dx, dy, angle = (sum(parts) for parts in zip(*moves))
        return HeadPose(pose.dx + dx, pose.dy + dy, pose.angle_deg + angle)

    def intensities(self, frame: int) -> np.ndarray:
        """Intensity in [0, 1] of every expression at `frame`."""
        values = np.zeros(len(self.timings), np.float32)
        for i in _active(self._expression_windows, frame):  # the others are 0 (long videos hold many expressions)
            values[i] = float(self.timings[i].intensity([frame])[0])
        return values

    def frame(self, frame: int) -> np.ndarray:
        """The rendered frame (H, W, 3) uint8 at frame index `frame`."""
        return self._render(frame).image

    def frames(self, frame_indices: Sequence[int]) -> np.ndarray:
        """Rendered frames (T, H, W, 3) uint8."""
        return np.stack([self.frame(int(f)) for f in frame_indices])

    def pair(self, frame_a: int, frame_b: int) -> FramePair:
        """Frames a and b with the ground truth of what moved between them."""
        state_a, state_b = self._render(frame_a), self._render(frame_b)
        delta = self.intensities(frame_b) - self.intensities(frame_a)
        displacement, au_mask = self._expression_truth(state_a, delta)
        return FramePair(
            frame_a=state_a.image,
            frame_b=state_b.image,
            displacement_px=displacement,
            au_mask=au_mask,
            moving_background=_background_change(state_a, state_b),
            face_mask=state_a.coverage >= VISIBLE_LEVEL,
            intensity_a=float(self.intensities(frame_a).sum()),
            intensity_b=float(self.intensities(frame_b).sum()),
        )

    def clip(self, frame_indices: Sequence[int], reference_frame: int | None = None) -> RenderedClip:
        """Render `frame_indices`; ground truth compares every frame with `reference_frame` (default: first)."""
        indices = np.asarray(frame_indices, dtype=np.int64)
        if indices.ndim != 1 or indices.size == 0:
            raise ValueError(f"frame_indices must be a non-empty 1-D sequence, got shape {indices.shape}")
        reference = int(indices[0]) if reference_frame is None else int(reference_frame)
        ref_state = self._render(reference)
        ref_intensity = self.intensities(reference)
        states = [self._render(int(f)) for f in indices]
        intensities = np.stack([self.intensities(int(f)) for f in indices])
        displacement = np.stack([self._expression_truth(ref_state, i - ref_intensity)[0] for i in intensities])
        region_delta = np.ones(len(self.expressions), np.float32)
        return RenderedClip(
            frames=np.stack([s.image for s in states]),
            frame_indices=indices,
            intensities=intensities,
            reference_frame=reference,
            displacement_px=displacement,
            au_mask=self._expression_truth(ref_state, region_delta)[1],
            moving_background=np.stack([_background_change(ref_state, s) for s in states]),
        )

    def _render(self, frame: int) -> _FrameState:
        pose = self.head_pose(frame)
        face_x, face_y = self._face_coordinates(pose)
        field = self._field(self.intensities(frame))
        if field is None:
            src_x, src_y = face_x, face_y
        else:
            field_at = cv2.remap(field, face_x, face_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            src_x, src_y = face_x - field_at[..., 0], face_y - field_at[..., 1]
        closure = self.eyelid_closure(frame)
        skin_rgba = self.eyelids.close(self.skin_rgba, closure) if closure > 0 else self.skin_rgba
        skin = _warp(skin_rgba, src_x, src_y)
        accessory = _warp(self.accessory_rgba, face_x, face_y)
        background = self.background.render(frame)
        skin_alpha, accessory_alpha = skin[..., 3:], accessory[..., 3:]
        image = accessory[..., :3] + (1 - accessory_alpha) * (skin[..., :3] + (1 - skin_alpha) * background)
        image = image * self.track.illumination(frame)[..., None]
        coverage = 1 - (1 - skin_alpha[..., 0]) * (1 - accessory_alpha[..., 0])
        skin_visible = skin_alpha[..., 0] * (1 - accessory_alpha[..., 0])
        return _FrameState(self.track.apply_sensor(image, frame), background, coverage, skin_visible,
                           (face_x, face_y))

    def _face_coordinates(self, pose: HeadPose) -> tuple[np.ndarray, np.ndarray]:
        """For every output pixel, the pixel of the unmoved face it shows (inverse of the head pose)."""
        cx, cy = (c * self.size - 0.5 for c in self.face.centre)
        angle = np.deg2rad(pose.angle_deg)
        cos, sin = np.cos(angle), np.sin(angle)
        rel_x = self.grid_x - cx - pose.dx
        rel_y = self.grid_y - cy - pose.dy
        face_x = cos * rel_x + sin * rel_y + cx
        face_y = -sin * rel_x + cos * rel_y + cy
        return face_x.astype(np.float32), face_y.astype(np.float32)

    def _field(self, weights: np.ndarray) -> np.ndarray | None:
        """Displacement field in pixels, in unmoved-face coordinates, for per-expression intensities."""
        scaled = weights * self.amplitudes_px
        if not np.any(scaled):
            return None
        return sum(w * u for w, u in zip(scaled, self.unit_fields) if w != 0)

    def _expression_truth(self, state: _FrameState, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Displacement magnitude and AU-region mask for intensity changes `delta`, in `state`'s image."""
        empty = np.zeros((self.size, self.size), np.float32)
        field = self._field(delta)
        visible = state.skin_visible >= VISIBLE_LEVEL
        if field is None:
            return empty, np.zeros_like(visible)
        face_x, face_y = state.face_coords
        magnitude = np.sqrt((field**2).sum(-1))
        moved = cv2.remap(magnitude, face_x, face_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        regions = np.zeros_like(empty)
        for change, unit in zip(delta, self.unit_fields):
            if change != 0:
                regions = np.maximum(regions, np.sqrt((unit**2).sum(-1)))
        regions = cv2.remap(regions, face_x, face_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        return (moved * visible).astype(np.float32), (regions >= AU_REGION_LEVEL) & visible


def _windows(timings: Sequence[FrameTiming]) -> np.ndarray:
    """(N, 2) onset and offset frames of `timings`."""
    return np.array([(t.onset, t.offset) for t in timings], np.float64).reshape(-1, 2)


def _active(windows: np.ndarray, frame: int) -> np.ndarray:
    """Indices of the timings whose open interval (onset, offset) holds `frame`: outside it an intensity is 0."""
    return np.flatnonzero((windows[:, 0] < frame) & (frame < windows[:, 1]))


def _warp(rgba: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    return cv2.remap(rgba, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _background_change(a: _FrameState, b: _FrameState) -> np.ndarray:
    changed = np.abs(a.background - b.background).max(-1) > BACKGROUND_CHANGE_LEVEL
    uncovered = (a.coverage < VISIBLE_LEVEL) & (b.coverage < VISIBLE_LEVEL)
    return changed & uncovered


def render_clip(
    face: FaceModel,
    expression: MicroExpression,
    fps: float,
    n_frames: int,
    size: int,
    nuisance: NuisanceConfig | None = None,
    seed: int = 0,
    start_frame: int = 0,
) -> RenderedClip:
    """Render frames `start_frame` .. `start_frame + n_frames - 1` of one micro-expression.

    Ground truth compares each frame with the expression's onset frame when the clip contains it, else with
    the first frame. Example: `render_clip(SyntheticFace.sample(3), expr, fps=200, n_frames=40, size=64)`.
    """
    if not isinstance(n_frames, (int, np.integer)) or n_frames < 1:
        raise ValueError(f"n_frames must be a positive integer, got {n_frames!r}")
    scene = Scene(face, [expression], fps, size, nuisance, seed)
    indices = np.arange(start_frame, start_frame + n_frames)
    onset = scene.timings[0].onset
    reference = onset if start_frame <= onset < start_frame + n_frames else start_frame
    return scene.clip(indices, reference_frame=reference)


def make_pair(
    face: FaceModel,
    expression: MicroExpression,
    frame_a: int,
    frame_b: int,
    fps: float,
    size: int,
    nuisance: NuisanceConfig | None = None,
    seed: int = 0,
) -> FramePair:
    """Frames `frame_a` and `frame_b` (times frame / fps) with the AU-region and moving-background masks."""
    return Scene(face, [expression], fps, size, nuisance, seed).pair(frame_a, frame_b)
