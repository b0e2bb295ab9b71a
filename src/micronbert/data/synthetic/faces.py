"""Procedural faces: identities sampled from a seed and drawn at any resolution.

A face is drawn once per resolution as two premultiplied RGBA layers: the *skin* layer (face, ears, neck,
brows, eyes, nose, mouth), which micro-expressions deform, and the *accessory* layer (hair, glasses), which
only follows the head. All geometry lives in isotropic face units: the face centre is the origin, one unit
is half the face width and y points down.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

import cv2
import numpy as np

RGB = tuple[float, float, float]

SKIN_LIGHT: RGB = (0.96, 0.80, 0.69)
SKIN_DARK: RGB = (0.33, 0.22, 0.15)
HAIR_COLOURS: tuple[RGB, ...] = (
    (0.08, 0.06, 0.05),
    (0.22, 0.14, 0.08),
    (0.42, 0.28, 0.15),
    (0.78, 0.64, 0.38),
    (0.62, 0.60, 0.58),
)
IRIS_COLOURS: tuple[RGB, ...] = ((0.30, 0.18, 0.08), (0.22, 0.38, 0.58), (0.30, 0.42, 0.25), (0.12, 0.08, 0.05))
FRAME_COLOURS: tuple[RGB, ...] = ((0.05, 0.05, 0.05), (0.35, 0.20, 0.10), (0.55, 0.55, 0.60))
TEXTURE_GRIDS = (6, 24, 96)
TEXTURE_WEIGHTS = (0.6, 0.3, 0.25)
MIN_SIZE = 16

ANCHOR_NAMES = (
    "brow_inner_l", "brow_inner_r", "brow_outer_l", "brow_outer_r",
    "eye_lower_l", "eye_lower_r", "eye_outer_l", "eye_outer_r",
    "cheek_l", "cheek_r", "nose_ala_l", "nose_ala_r", "nose_bridge",
    "upper_lip", "mouth_corner_l", "mouth_corner_r", "lower_lip", "chin",
)


@dataclass(frozen=True)
class FaceLayers:
    """A face drawn at one resolution: premultiplied colours in [0, 1] and coverages (alphas) in [0, 1]."""

    skin_rgb: np.ndarray
    skin_alpha: np.ndarray
    accessory_rgb: np.ndarray
    accessory_alpha: np.ndarray

    @property
    def size(self) -> int:
        return int(self.skin_alpha.shape[0])


class FaceModel(Protocol):
    """What the renderer needs from a face: its geometry in normalised image coordinates and its layers."""

    @property
    def face_width(self) -> float:
        """Width of the face as a fraction of the image width."""

    @property
    def centre(self) -> tuple[float, float]:
        """Centre of the face (x, y) in normalised image coordinates; head rotation pivots here."""

    def anchors(self) -> Mapping[str, tuple[float, float]]:
        """Named facial points (see ANCHOR_NAMES) in normalised image coordinates; `_l` is image-left."""

    def render_layers(self, size: int) -> FaceLayers:
        """Draw the neutral face at size x size pixels."""


@dataclass(frozen=True)
class SyntheticFace:
    """One procedural identity. Build it with `SyntheticFace.sample(seed)`; equal seeds give equal faces."""

    seed: int
    width: float
    centre_x: float
    centre_y: float
    height_ratio: float
    jaw_taper: float
    skin: RGB
    lip: RGB
    hair_colour: RGB
    iris: RGB
    light_angle: float
    eye_y: float
    eye_dx: float
    eye_half_width: float
    eye_half_height: float
    brow_gap: float
    brow_half_length: float
    brow_thickness: float
    brow_arch: float
    nose_y: float
    nose_half_width: float
    mouth_y: float
    mouth_half_width: float
    upper_lip: float
    lower_lip: float
    texture_strength: float
    moles: int
    hair: bool
    hairline: float
    fringe: float
    glasses: bool
    glasses_colour: RGB

    @classmethod
    def sample(cls, seed: int) -> SyntheticFace:
        """Sample an identity deterministically from `seed` (a non-negative integer)."""
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"face seed must be a non-negative integer, got {seed!r}")
        rng = np.random.default_rng([int(seed), 0xFACE])
        tone = rng.uniform(0.0, 1.0)
        skin = _mix(SKIN_LIGHT, SKIN_DARK, tone, jitter=rng.uniform(-0.03, 0.03, 3))
        lip = _clip_rgb(np.array(skin) * np.array([0.92, 0.62, 0.62]) + rng.uniform(-0.03, 0.03, 3))
        return cls(
            seed=int(seed),
            width=float(rng.uniform(0.50, 0.62)),
            centre_x=float(rng.uniform(0.48, 0.52)),
            centre_y=float(rng.uniform(0.50, 0.54)),
            height_ratio=float(rng.uniform(1.22, 1.40)),
            jaw_taper=float(rng.uniform(0.10, 0.35)),
            skin=skin,
            lip=lip,
            hair_colour=_jitter(HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))], rng),
            iris=_jitter(IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))], rng),
            light_angle=float(rng.uniform(-0.9, 0.9)),
            eye_y=float(rng.uniform(-0.25, -0.10)),
            eye_dx=float(rng.uniform(0.36, 0.46)),
            eye_half_width=float(rng.uniform(0.15, 0.20)),
            eye_half_height=float(rng.uniform(0.06, 0.09)),
            brow_gap=float(rng.uniform(0.19, 0.26)),
            brow_half_length=float(rng.uniform(0.20, 0.26)),
            brow_thickness=float(rng.uniform(0.035, 0.07)),
            brow_arch=float(rng.uniform(0.02, 0.07)),
            nose_y=float(rng.uniform(0.35, 0.50)),
            nose_half_width=float(rng.uniform(0.13, 0.19)),
            mouth_y=float(rng.uniform(0.72, 0.86)),
            mouth_half_width=float(rng.uniform(0.28, 0.38)),
            upper_lip=float(rng.uniform(0.05, 0.08)),
            lower_lip=float(rng.uniform(0.06, 0.10)),
            texture_strength=float(rng.uniform(0.03, 0.07)),
            moles=int(rng.integers(0, 7)),
            hair=bool(rng.uniform() < 0.5),
            hairline=float(rng.uniform(-1.05, -0.80)),
            fringe=float(rng.uniform(0.0, 0.25)),
            glasses=bool(rng.uniform() < 0.25),
            glasses_colour=FRAME_COLOURS[rng.integers(len(FRAME_COLOURS))],
        )

    @property
    def face_width(self) -> float:
        return self.width

    @property
    def centre(self) -> tuple[float, float]:
        return (self.centre_x, self.centre_y)

    def anchors(self) -> dict[str, tuple[float, float]]:
        """Named facial points in normalised image coordinates (x, y in [0, 1])."""
        brow_y = self.eye_y - self.brow_gap
        inner_x = self.eye_dx - 0.8 * self.brow_half_length
        outer_x = self.eye_dx + 0.8 * self.brow_half_length
        eye_outer_x = self.eye_dx + self.eye_half_width
        lower_eye_y = self.eye_y + self.eye_half_height
        points = {
            "brow_inner": (inner_x, brow_y - self.brow_arch * 0.36),
            "brow_outer": (outer_x, brow_y - self.brow_arch * 0.36),
            "eye_lower": (self.eye_dx, lower_eye_y + 0.02),
            "eye_outer": (eye_outer_x, self.eye_y),
            "cheek": (self.eye_dx + 0.05, lower_eye_y + 0.22),
            "nose_ala": (self.nose_half_width, self.nose_y - 0.03),
            "mouth_corner": (self.mouth_half_width, self.mouth_y),
        }
        result: dict[str, tuple[float, float]] = {}
        for name, (x, y) in points.items():
            result[f"{name}_l"] = self._to_image(-x, y)
            result[f"{name}_r"] = self._to_image(x, y)
        result["nose_bridge"] = self._to_image(0.0, (self.eye_y + self.nose_y) / 2)
        result["upper_lip"] = self._to_image(0.0, self.mouth_y - self.upper_lip)
        result["lower_lip"] = self._to_image(0.0, self.mouth_y + self.lower_lip)
        result["chin"] = self._to_image(0.0, (self.mouth_y + self.height_ratio) / 2 + 0.05)
        return result

    def render_layers(self, size: int) -> FaceLayers:
        """Draw the neutral face at `size` x `size` pixels."""
        _check_size(size)
        canvas = _FaceCanvas(self, size)
        skin_rgb, skin_alpha = canvas.skin_layer()
        accessory_rgb, accessory_alpha = canvas.accessory_layer()
        return FaceLayers(skin_rgb, skin_alpha, accessory_rgb, accessory_alpha)

    def _to_image(self, x: float, y: float) -> tuple[float, float]:
        half = self.width / 2
        return (self.centre_x + x * half, self.centre_y + y * half)


class _FaceCanvas:
    """Pixel grid in face units plus painting helpers for one face at one resolution."""

    def __init__(self, face: SyntheticFace, size: int) -> None:
        self.face = face
        self.size = size
        centres = (np.arange(size, dtype=np.float32) + 0.5) / size
        half = face.width / 2
        self.x = ((centres - face.centre_x) / half)[None, :].repeat(size, 0)
        self.y = ((centres - face.centre_y) / half)[:, None].repeat(size, 1)
        self.pixels_per_unit = size * half
        self.rng = np.random.default_rng([face.seed, 0x7E47])

    def coverage(self, distance: np.ndarray) -> np.ndarray:
        """Anti-aliased coverage of a region given its signed distance (face units, negative inside)."""
        return np.clip(0.5 - distance * self.pixels_per_unit, 0.0, 1.0).astype(np.float32)

    def ellipse(self, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
        radius = np.sqrt(((self.x - cx) / ax) ** 2 + ((self.y - cy) / ay) ** 2)
        return self.coverage((radius - 1.0) * min(ax, ay))

    def band(self, centre_line: np.ndarray, half_thickness: np.ndarray | float, inside: np.ndarray) -> np.ndarray:
        """Coverage of a curve drawn with a given half thickness where `inside` (a coverage) is non-zero."""
        return self.coverage(np.abs(centre_line) - half_thickness) * inside

    def gaussian(self, cx: float, cy: float, sigma: float) -> np.ndarray:
        return np.exp(-((self.x - cx) ** 2 + (self.y - cy) ** 2) / (2 * sigma**2)).astype(np.float32)

    def skin_layer(self) -> tuple[np.ndarray, np.ndarray]:
        f = self.face
        head = self.head_coverage()
        ears = np.maximum(self.ellipse(-1.0, -0.05, 0.13, 0.26), self.ellipse(1.0, -0.05, 0.13, 0.26))
        neck = self.coverage(np.maximum(np.abs(self.x) - 0.55, 0.8 * f.height_ratio - self.y))
        alpha = np.maximum.reduce([head, ears, neck])
        base = np.array(f.skin, np.float32)
        rgb = np.broadcast_to(base, (self.size, self.size, 3)).copy()
        _paint(rgb, neck * (1 - head), base * 0.82)
        _paint(rgb, ears * (1 - head), base * 0.9)
        rgb *= self.shading()[..., None] * self.texture()[..., None]
        self.paint_cheeks_and_folds(rgb)
        self.paint_nose(rgb)
        self.paint_mouth(rgb)
        self.paint_eyes(rgb)
        self.paint_brows(rgb)
        self.paint_moles(rgb)
        rgb = np.clip(rgb, 0.0, 1.0) * alpha[..., None]
        return rgb.astype(np.float32), alpha.astype(np.float32)

    def accessory_layer(self) -> tuple[np.ndarray, np.ndarray]:
        rgb = np.zeros((self.size, self.size, 3), np.float32)
        alpha = np.zeros((self.size, self.size), np.float32)
        if self.face.hair:
            hair = self.hair_coverage()
            strands = 1.0 + 0.12 * np.sin(self.x * 55.0 + 3.0 * np.sin(self.y * 7.0))
            colour = np.array(self.face.hair_colour, np.float32) * strands[..., None]
            _over(rgb, alpha, colour, hair)
        if self.face.glasses:
            frame, lens = self.glasses_coverage()
            _over(rgb, alpha, np.array((0.75, 0.85, 0.95), np.float32), 0.15 * lens)
            _over(rgb, alpha, np.array(self.face.glasses_colour, np.float32), frame)
        return rgb, alpha

    def head_coverage(self) -> np.ndarray:
        f = self.face
        below = np.clip(self.y / f.height_ratio, 0.0, 1.0)
        half_width = 1.0 - f.jaw_taper * below**2
        radius = np.sqrt((self.x / half_width) ** 2 + (self.y / f.height_ratio) ** 2)
        return self.coverage(radius - 1.0)

    def shading(self) -> np.ndarray:
        f = self.face
        nx, ny = self.x, self.y / f.height_ratio
        nz = np.sqrt(np.clip(1.0 - nx**2 - ny**2, 0.0, 1.0))
        light = np.array([np.sin(f.light_angle), -0.3, np.cos(f.light_angle)], np.float32)
        light /= np.linalg.norm(light)
        lambert = (nx * light[0] + ny * light[1] + nz * light[2]) / np.sqrt(nx**2 + ny**2 + nz**2 + 1e-6)
        return (0.72 + 0.28 * np.clip(lambert, 0.0, 1.0)).astype(np.float32)

    def texture(self) -> np.ndarray:
        total = np.zeros((self.size, self.size), np.float32)
        for grid, weight in zip(TEXTURE_GRIDS, TEXTURE_WEIGHTS):
            noise = self.rng.standard_normal((grid, grid)).astype(np.float32)
            interpolation = cv2.INTER_AREA if self.size < grid else cv2.INTER_CUBIC
            total += weight * cv2.resize(noise, (self.size, self.size), interpolation=interpolation)
        return 1.0 + self.face.texture_strength * total

    def paint_cheeks_and_folds(self, rgb: np.ndarray) -> None:
        f = self.face
        blush = 0.35 * (self.gaussian(-f.eye_dx, f.nose_y, 0.18) + self.gaussian(f.eye_dx, f.nose_y, 0.18))
        _paint(rgb, blush, np.array(f.lip, np.float32))
        top, bottom = f.nose_y - 0.05, f.mouth_y + 0.12
        span = self.coverage(np.maximum(top - self.y, self.y - bottom))
        for side in (-1.0, 1.0):
            line_x = side * (f.nose_half_width + 0.06 + 0.35 * np.clip(self.y - top, 0.0, None))
            fold = self.band(self.x - line_x, 0.012, span)
            _paint(rgb, 0.35 * fold, np.array(f.skin, np.float32) * 0.6)

    def paint_nose(self, rgb: np.ndarray) -> None:
        f = self.face
        dark = np.array(f.skin, np.float32) * 0.55
        bridge_span = self.coverage(np.maximum(f.eye_y - self.y, self.y - f.nose_y))
        for side in (-1.0, 1.0):
            bridge = self.band(self.x - side * 0.09, 0.018, bridge_span)
            _paint(rgb, 0.25 * bridge, dark)
            ala = self.ellipse(side * f.nose_half_width, f.nose_y - 0.03, 0.06, 0.08)
            ring = np.clip(ala - self.ellipse(side * f.nose_half_width, f.nose_y - 0.03, 0.045, 0.065), 0, 1)
            _paint(rgb, 0.5 * ring, dark)
            nostril = self.ellipse(side * f.nose_half_width * 0.55, f.nose_y, 0.055, 0.028)
            _paint(rgb, 0.85 * nostril, dark * 0.5)
        _paint(rgb, 0.25 * self.gaussian(0.0, f.nose_y - 0.1, 0.05), np.ones(3, np.float32))

    def paint_mouth(self, rgb: np.ndarray) -> None:
        f = self.face
        w = f.mouth_half_width
        upper = self.ellipse(0.0, f.mouth_y - f.upper_lip / 2, w, f.upper_lip * 0.9)
        lower = self.ellipse(0.0, f.mouth_y + f.lower_lip / 2, w * 0.9, f.lower_lip * 0.9)
        lips = np.maximum(upper * (self.y < f.mouth_y), lower * (self.y >= f.mouth_y))
        _paint(rgb, lips, np.array(f.lip, np.float32))
        span = self.coverage(np.abs(self.x) - w * 1.02)
        line = self.band(self.y - f.mouth_y - 0.03 * (self.x / w) ** 2, 0.012, span)
        _paint(rgb, 0.9 * line, np.array(f.lip, np.float32) * 0.35)
        crease_span = self.coverage(np.abs(self.x) - 0.2)
        crease = self.band(self.y - f.mouth_y - f.lower_lip - 0.08 + 0.6 * self.x**2, 0.02, crease_span)
        _paint(rgb, 0.3 * crease, np.array(f.skin, np.float32) * 0.65)

    def paint_eyes(self, rgb: np.ndarray) -> None:
        f = self.face
        dark = np.array(f.skin, np.float32) * 0.4
        for side in (-1.0, 1.0):
            cx, cy = side * f.eye_dx, f.eye_y
            ax, ay = f.eye_half_width, f.eye_half_height
            outline = self.ellipse(cx, cy, ax * 1.08, ay * 1.3)
            eye = self.ellipse(cx, cy, ax, ay)
            _paint(rgb, outline, dark)
            _paint(rgb, eye, np.array((0.93, 0.92, 0.90), np.float32))
            _paint(rgb, eye * self.ellipse(cx, cy, ay * 1.05, ay * 1.05), np.array(f.iris, np.float32))
            _paint(rgb, eye * self.ellipse(cx, cy, ay * 0.45, ay * 0.45), np.full(3, 0.03, np.float32))
            _paint(rgb, eye * self.ellipse(cx + ay * 0.3, cy - ay * 0.3, ay * 0.18, ay * 0.18), np.ones(3, np.float32))
            crease_span = self.coverage(np.abs(self.x - cx) - ax * 0.9)
            crease_y = cy - ay * 1.9 + 0.5 * ay * ((self.x - cx) / ax) ** 2
            _paint(rgb, 0.35 * self.band(self.y - crease_y, 0.012, crease_span), dark)

    def paint_brows(self, rgb: np.ndarray) -> None:
        f = self.face
        colour = np.array(f.hair_colour, np.float32) * 0.8 + np.array(f.skin, np.float32) * 0.15
        brow_y = f.eye_y - f.brow_gap
        for side in (-1.0, 1.0):
            along = (self.x - side * f.eye_dx) / f.brow_half_length
            span = self.coverage((np.abs(along) - 1.0) * f.brow_half_length)
            centre = brow_y - f.brow_arch * (1.0 - along**2)
            taper = f.brow_thickness * (1.0 - 0.45 * np.clip(side * along, 0.0, 1.0))
            brow = self.band(self.y - centre, taper, span)
            hairs = 0.85 + 0.15 * np.sin(self.x * 140.0 + self.y * 60.0)
            _paint(rgb, 0.9 * brow, colour * hairs[..., None])

    def paint_moles(self, rgb: np.ndarray) -> None:
        f = self.face
        for _ in range(f.moles):
            cx, cy = self.rng.uniform(-0.75, 0.75), self.rng.uniform(-0.9, 1.0)
            radius = self.rng.uniform(0.012, 0.025)
            _paint(rgb, 0.7 * self.ellipse(cx, cy, radius, radius), np.array(f.skin, np.float32) * 0.45)

    def hair_coverage(self) -> np.ndarray:
        f = self.face
        scalp = self.ellipse(0.0, -0.08, 1.1, f.height_ratio + 0.12)
        hairline = f.hairline + f.fringe * np.cos(np.clip(self.x, -1.5, 1.5) * np.pi / 2) ** 2
        top = self.coverage(self.y - hairline - 0.04 * np.sin(self.x * 9.0))
        sides = self.coverage(np.maximum(0.93 - np.abs(self.x), self.y + 0.35))
        return np.clip(scalp * np.maximum(top, sides), 0.0, 1.0)

    def glasses_coverage(self) -> tuple[np.ndarray, np.ndarray]:
        f = self.face
        ax, ay = f.eye_half_width + 0.1, f.eye_half_height + 0.12
        frame = np.zeros((self.size, self.size), np.float32)
        lens = np.zeros_like(frame)
        for side in (-1.0, 1.0):
            cx = side * f.eye_dx
            outer = self.ellipse(cx, f.eye_y, ax, ay)
            inner = self.ellipse(cx, f.eye_y, ax - 0.03, ay - 0.03)
            frame = np.maximum(frame, np.clip(outer - inner, 0, 1))
            lens = np.maximum(lens, inner)
            temple_x0 = side * (f.eye_dx + ax)
            temple_span = self.coverage(np.abs(self.x - (temple_x0 + side * 0.5)) - 0.5)
            temple = self.band(self.y - f.eye_y + 0.04, 0.015, temple_span) * (np.abs(self.x) < 1.0)
            frame = np.maximum(frame, temple)
        bridge_span = self.coverage(np.abs(self.x) - (f.eye_dx - ax + 0.02))
        frame = np.maximum(frame, self.band(self.y - f.eye_y + 0.04, 0.015, bridge_span))
        return frame, lens


IBUG_ANCHORS: Mapping[str, tuple[int, ...]] = MappingProxyType({
    "brow_inner_l": (21,), "brow_inner_r": (22,), "brow_outer_l": (17,), "brow_outer_r": (26,),
    "eye_lower_l": (40, 41), "eye_lower_r": (46, 47), "eye_outer_l": (36,), "eye_outer_r": (45,),
    "nose_ala_l": (31,), "nose_ala_r": (35,), "nose_bridge": (28,),
    "upper_lip": (51,), "mouth_corner_l": (48,), "mouth_corner_r": (54,), "lower_lip": (57,), "chin": (57, 8),
})
JAW = slice(0, 17)
BROWS = slice(17, 27)
FOREHEAD_LIFT = 0.35  # forehead drawn above the brows, as a fraction of the brow-to-chin height
SUPERSAMPLE = 4


class PhotoFace:
    """A user's neutral face photo warped instead of a procedural face.

    `image` is RGB uint8 (H, W, 3); `landmarks` are the 68 iBUG/dlib points (68, 2) as (x, y) pixels. The
    photo is cropped to the largest square centred on the face. The face (jaw outline up to a forehead
    above the brows) is the deformable skin layer; the rest of the photo follows the head as the accessory
    layer, unless `cutout` is set, in which case it is dropped and the synthetic moving background shows.
    """

    def __init__(self, image: np.ndarray, landmarks: np.ndarray, cutout: bool = False) -> None:
        image = np.asarray(image)
        points = np.asarray(landmarks, dtype=np.float64)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be RGB uint8 (H, W, 3), got {image.dtype} {image.shape}")
        if points.shape != (68, 2) or not np.all(np.isfinite(points)):
            raise ValueError(f"landmarks must be 68 finite (x, y) points, got shape {points.shape}")
        height, width = image.shape[:2]
        if points.min() < 0 or np.any(points.max(0) > (width, height)):
            raise ValueError(f"landmarks fall outside the {width}x{height} image")
        side = min(height, width)
        centre = points.mean(0)
        x0 = int(np.clip(round(centre[0] - side / 2), 0, width - side))
        y0 = int(np.clip(round(centre[1] - side / 2), 0, height - side))
        self.image = image[y0:y0 + side, x0:x0 + side].copy()
        self.points = (points - (x0, y0)) / side
        self.cutout = cutout
        if not 0.1 < self.face_width <= 1.0:
            raise ValueError(f"face width from landmarks 0 and 16 is {self.face_width:.3f} of the crop; "
                             "expected a frontal face filling 10-100 % of it")

    @property
    def face_width(self) -> float:
        return float(self.points[16, 0] - self.points[0, 0])

    @property
    def centre(self) -> tuple[float, float]:
        x, y = self.points.mean(0)
        return (float(x), float(y))

    def anchors(self) -> dict[str, tuple[float, float]]:
        result = {name: tuple(float(v) for v in self.points[list(idx)].mean(0)) for name, idx in IBUG_ANCHORS.items()}
        for side, jaw_point in (("l", 2), ("r", 14)):
            eye = np.array(result[f"eye_lower_{side}"])
            x, y = 0.6 * eye + 0.4 * self.points[jaw_point]
            result[f"cheek_{side}"] = (float(x), float(y))
        return result

    def render_layers(self, size: int) -> FaceLayers:
        """The photo at `size` x `size`: the face as the skin layer, the rest as the accessory layer."""
        _check_size(size)
        interpolation = cv2.INTER_AREA if size < self.image.shape[0] else cv2.INTER_CUBIC
        rgb = cv2.resize(self.image, (size, size), interpolation=interpolation).astype(np.float32) / 255
        skin_alpha = self._face_coverage(size)
        rest_alpha = np.zeros_like(skin_alpha) if self.cutout else 1.0 - skin_alpha
        return FaceLayers(rgb * skin_alpha[..., None], skin_alpha, rgb * rest_alpha[..., None], rest_alpha)

    def _face_coverage(self, size: int) -> np.ndarray:
        jaw, brows = self.points[JAW], self.points[BROWS]
        lift = FOREHEAD_LIFT * (self.points[8, 1] - brows[:, 1].min())
        forehead = brows[::-1] - (0.0, lift)
        outline = np.concatenate([jaw, forehead]) * size * SUPERSAMPLE
        canvas = np.zeros((size * SUPERSAMPLE, size * SUPERSAMPLE), np.uint8)
        cv2.fillPoly(canvas, [np.round(outline).astype(np.int32)], 255)
        return cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def _paint(rgb: np.ndarray, coverage: np.ndarray, colour: np.ndarray) -> None:
    """Blend `colour` (3,) or (H, W, 3) into `rgb` in place with weight `coverage`."""
    weight = coverage[..., None]
    rgb *= 1.0 - weight
    rgb += weight * colour


def _over(rgb: np.ndarray, alpha: np.ndarray, colour: np.ndarray, coverage: np.ndarray) -> None:
    """Composite a colour with the given coverage over a premultiplied RGBA layer, in place."""
    rgb *= (1.0 - coverage)[..., None]
    rgb += coverage[..., None] * colour
    alpha *= 1.0 - coverage
    alpha += coverage


def _mix(a: RGB, b: RGB, t: float, jitter: np.ndarray) -> RGB:
    return _clip_rgb((1 - t) * np.array(a) + t * np.array(b) + jitter)


def _jitter(colour: RGB, rng: np.random.Generator) -> RGB:
    return _clip_rgb(np.array(colour) + rng.uniform(-0.04, 0.04, 3))


def _clip_rgb(values: np.ndarray) -> RGB:
    r, g, b = (float(v) for v in np.clip(values, 0.0, 1.0))
    return (r, g, b)


def _check_size(size: int) -> None:
    if not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise ValueError(f"image size must be an integer >= {MIN_SIZE}, got {size!r}")
