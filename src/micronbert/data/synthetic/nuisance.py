"""Nuisances of real recordings: head motion, illumination flicker, sensor noise, JPEG and a moving background.

Every nuisance is a deterministic function of (seed, frame index), so any frame can be rendered on its own
and a frame rendered alone equals the same frame rendered inside a clip.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import cv2
import numpy as np

from micronbert.config import Config

from .actions import FrameTiming

HEAD_MOTION_HZ = (0.3, 2.0)
FLICKER_HZ = (4.0, 40.0)
OBJECT_SPEED = (0.15, 0.45)  # fractions of the image per second at background_motion = 1
BACKGROUND_CHANGE_LEVEL = 0.5 / 255


@dataclass(frozen=True)
class NuisanceConfig(Config):
    """Strength of each nuisance; `NuisanceConfig()` is a realistic default, `NuisanceConfig.none()` a clean one.

    head_translation: peak head shift, fraction of the image size. head_rotation_deg: peak in-plane rotation.
    flicker: peak relative illumination change. sensor_noise: Gaussian noise std in 8-bit levels.
    jpeg_quality: JPEG quality each frame goes through, or None. background_motion: speed multiplier of the
    moving background objects and the blinking screen patch (0 keeps the background still).
    """

    head_translation: float = 0.01
    head_rotation_deg: float = 1.0
    flicker: float = 0.03
    sensor_noise: float = 2.0
    jpeg_quality: int | None = 90
    background_motion: float = 1.0

    def __post_init__(self) -> None:
        for name in ("head_translation", "head_rotation_deg", "flicker", "sensor_noise", "background_motion"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"nuisance {name} must be a non-negative number, got {value!r}")
        if self.head_translation > 0.2 or self.head_rotation_deg > 30 or self.flicker > 0.5:
            raise ValueError(f"nuisance strengths are implausibly large: {self}")
        if self.jpeg_quality is not None and not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100 or None, got {self.jpeg_quality!r}")

    @classmethod
    def none(cls) -> NuisanceConfig:
        """No nuisance at all: still head, constant light, no noise, no JPEG, still background."""
        return cls(0.0, 0.0, 0.0, 0.0, None, 0.0)

    def scaled(self, strength: float) -> NuisanceConfig:
        """Scale every continuous nuisance by `strength` (JPEG is dropped at strength 0)."""
        if not np.isfinite(strength) or strength < 0:
            raise ValueError(f"nuisance strength must be a non-negative number, got {strength!r}")
        return replace(
            self,
            head_translation=self.head_translation * strength,
            head_rotation_deg=self.head_rotation_deg * strength,
            flicker=self.flicker * strength,
            sensor_noise=self.sensor_noise * strength,
            jpeg_quality=self.jpeg_quality if strength > 0 else None,
            background_motion=self.background_motion * strength,
        )


@dataclass(frozen=True)
class HeadPose:
    """Head pose of one frame: translation in pixels and rotation in degrees about the face centre."""

    dx: float
    dy: float
    angle_deg: float


MAX_MOVEMENT_SHIFT = 0.2
MAX_MOVEMENT_ROTATION_DEG = 30.0


@dataclass(frozen=True)
class HeadMovement:
    """A deliberate head movement of a long recording, larger and slower than the sway of `NuisanceTrack`.

    The head shifts by (`dx`, `dy`) (fractions of the image size) and turns by `angle_deg` in the image plane at the
    apex, then comes back, on the raised-cosine onset -> apex -> offset profile of `FrameTiming`; times are seconds
    from frame 0 of the rendering.
    """

    onset_s: float
    apex_s: float
    offset_s: float
    dx: float
    dy: float
    angle_deg: float

    def __post_init__(self) -> None:
        if not self.onset_s < self.apex_s < self.offset_s:
            raise ValueError(f"head movement times need onset < apex < offset, got {self.onset_s}, {self.apex_s}, "
                             f"{self.offset_s}")
        for name, limit in (("dx", MAX_MOVEMENT_SHIFT), ("dy", MAX_MOVEMENT_SHIFT),
                            ("angle_deg", MAX_MOVEMENT_ROTATION_DEG)):
            value = getattr(self, name)
            if not np.isfinite(value) or abs(value) > limit:
                raise ValueError(f"head movement {name} must be finite with magnitude <= {limit}, got {value!r}")

    def frame_timing(self, fps: float) -> FrameTiming:
        """Onset, apex (largest displacement) and offset frames at `fps`."""
        return FrameTiming.from_seconds(self.onset_s, self.apex_s, self.offset_s, fps)

    def to_dict(self) -> dict:
        return {"onset_s": self.onset_s, "apex_s": self.apex_s, "offset_s": self.offset_s, "dx": self.dx,
                "dy": self.dy, "angle_deg": self.angle_deg}

    @classmethod
    def from_dict(cls, data: Mapping) -> HeadMovement:
        return cls(**{key: float(data[key]) for key in ("onset_s", "apex_s", "offset_s", "dx", "dy", "angle_deg")})


class NuisanceTrack:
    """Per-frame head pose, illumination and noise for one rendering, deterministic from its seed."""

    def __init__(self, config: NuisanceConfig, seed: int, fps: float, size: int) -> None:
        self.config = config
        self.seed = seed
        self.fps = fps
        self.size = size
        rng = np.random.default_rng([seed, 0x4EAD])
        self.pose_freqs = rng.uniform(*HEAD_MOTION_HZ, size=(3, 2))
        self.pose_phases = rng.uniform(0, 2 * np.pi, size=(3, 2))
        self.pose_weights = rng.dirichlet(np.ones(2), size=3)
        self.flicker_freq = rng.uniform(*FLICKER_HZ)
        self.flicker_phase = rng.uniform(0, 2 * np.pi)
        self.gradient_angle = rng.uniform(0, 2 * np.pi)

    def pose(self, frame: int) -> HeadPose:
        t = frame / self.fps
        waves = (self.pose_weights * np.sin(2 * np.pi * self.pose_freqs * t + self.pose_phases)).sum(1)
        shift = self.config.head_translation * self.size
        angle = waves[2] * self.config.head_rotation_deg
        return HeadPose(float(waves[0] * shift), float(waves[1] * shift), float(angle))

    def illumination(self, frame: int) -> np.ndarray:
        """Multiplicative light gain (size, size): a global flicker plus a slowly turning gradient."""
        strength = self.config.flicker
        if strength == 0:
            return np.ones((self.size, self.size), np.float32)
        t = frame / self.fps
        jitter = np.random.default_rng([self.seed, frame, 0xF11C]).uniform(-1, 1)
        gain = 1 + strength * (0.7 * np.sin(2 * np.pi * self.flicker_freq * t + self.flicker_phase) + 0.3 * jitter)
        centres = (np.arange(self.size, dtype=np.float32) + 0.5) / self.size - 0.5
        angle = self.gradient_angle + 0.5 * t
        ramp = np.cos(angle) * centres[None, :] + np.sin(angle) * centres[:, None]
        return (gain * (1 + 0.5 * strength * ramp)).astype(np.float32)

    def apply_sensor(self, image: np.ndarray, frame: int) -> np.ndarray:
        """Add Gaussian sensor noise to a float image in [0, 1], quantise to uint8 and JPEG-compress."""
        if self.config.sensor_noise > 0:
            noise = np.random.default_rng([self.seed, frame, 0x5E45]).standard_normal(image.shape, np.float32)
            image = image + noise * (self.config.sensor_noise / 255)
        frame_u8 = np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)
        if self.config.jpeg_quality is not None:
            frame_u8 = jpeg_roundtrip(frame_u8, self.config.jpeg_quality)
        return frame_u8


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Compress and decompress an RGB uint8 image with JPEG at `quality`."""
    ok, encoded = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {rgb.shape}")
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1].copy()


class Background:
    """A textured backdrop with soft objects drifting across it and a blinking screen patch."""

    def __init__(self, seed: int, size: int, fps: float, motion: float) -> None:
        self.size = size
        self.fps = fps
        self.motion = motion
        rng = np.random.default_rng([seed, 0xBAC6])
        self.static = self._static_backdrop(rng)
        n_objects = int(rng.integers(2, 4))
        self.object_colours = rng.uniform(0.05, 0.95, size=(n_objects, 3)).astype(np.float32)
        self.object_starts = rng.uniform(0, 1, size=(n_objects, 2))
        speeds = rng.uniform(*OBJECT_SPEED, size=n_objects)
        angles = rng.uniform(0, 2 * np.pi, size=n_objects)
        self.object_velocities = np.stack([np.cos(angles), np.sin(angles)], 1) * speeds[:, None]
        self.object_radii = rng.uniform(0.06, 0.14, size=(n_objects, 2))
        corner = rng.integers(2)
        self.screen_box = (0.03 + 0.78 * corner, 0.03, 0.16, 0.22)  # x, y, width, height
        self.screen_colours = rng.uniform(0.2, 1.0, size=(2, 3)).astype(np.float32)
        self.screen_hz = rng.uniform(3.0, 12.0)
        centres = (np.arange(size, dtype=np.float32) + 0.5) / size
        self.x, self.y = np.meshgrid(centres, centres)

    def _static_backdrop(self, rng: np.random.Generator) -> np.ndarray:
        top, bottom = rng.uniform(0.15, 0.85, size=(2, 3)).astype(np.float32)
        rows = np.linspace(0, 1, self.size, dtype=np.float32)[:, None, None]
        image = top * (1 - rows) + bottom * rows
        noise = cv2.resize(rng.standard_normal((12, 12)).astype(np.float32), (self.size, self.size),
                           interpolation=cv2.INTER_CUBIC)
        return np.clip(image * (1 + 0.08 * noise[..., None]), 0, 1).astype(np.float32)

    def render(self, frame: int) -> np.ndarray:
        """Background colour (size, size, 3) in [0, 1] at `frame`."""
        image = self.static.copy()
        if self.motion == 0:
            return image
        t = frame / self.fps * self.motion
        pixels = float(self.size)
        for colour, start, velocity, radii in zip(
            self.object_colours, self.object_starts, self.object_velocities, self.object_radii
        ):
            cx, cy = (start + velocity * t + 0.3) % 1.6 - 0.3
            radius = np.sqrt(((self.x - cx) / radii[0]) ** 2 + ((self.y - cy) / radii[1]) ** 2)
            cover = np.clip(0.5 - (radius - 1) * radii.min() * pixels, 0, 1)[..., None]
            image = image * (1 - cover) + cover * colour
        bx, by, bw, bh = self.screen_box
        inside = (np.abs(self.x - bx - bw / 2) < bw / 2) & (np.abs(self.y - by - bh / 2) < bh / 2)
        mix = 0.5 + 0.5 * np.sin(2 * np.pi * self.screen_hz * t)
        screen = (1 - mix) * self.screen_colours[0] + mix * self.screen_colours[1]
        image[inside] = screen
        return image
