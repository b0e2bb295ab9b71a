"""Face alignment and cropping, offline.

A clip is aligned once: the face and its eyes are found on the onset frame, a similarity transform
(rotation that levels the eyes, scale that fixes the inter-ocular distance, translation that puts the
eyes at a fixed place) is computed from them, and that single transform is applied to every frame, so
alignment adds no motion between frames. Frames are RGB uint8 arrays (:func:`micronbert.data.frames.read_frame`).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from micronbert.config import Config
from micronbert.data.faces.backends import FaceBackend, FaceDetection, OpenCVCascadeBackend, Point
from micronbert.data.frames import read_frame

logger = logging.getLogger(__name__)

_PRESCALE_BELOW = 0.5


class FaceAlignmentError(ValueError):
    """A frame cannot be aligned; the message names the file (or array) at fault."""


class FaceNotFoundError(FaceAlignmentError):
    """No face was found in the frame."""


class MultipleFacesError(FaceAlignmentError):
    """Several faces of similar size were found, so the subject's face is ambiguous."""


@dataclass(frozen=True)
class AlignConfig(Config):
    """Geometry of the aligned crop.

    The aligned face square has the eyes level, ``eye_distance`` of its side apart, centred
    horizontally, at ``eye_height`` of its side from the top. ``margin`` adds context: the square is
    enlarged by ``margin`` of its side on every side before being resized to ``output_size``.
    Faces whose eyes were found are preferred over those without. A second such face whose box is
    at least ``ambiguous_face_ratio`` as wide as the largest makes the frame ambiguous
    (:class:`MultipleFacesError`); other candidates are ignored with a recorded warning.
    """

    output_size: int = 224
    eye_distance: float = 0.36
    eye_height: float = 0.35
    margin: float = 0.0
    ambiguous_face_ratio: float = 0.6

    def __post_init__(self) -> None:
        if isinstance(self.output_size, bool) or not isinstance(self.output_size, int):
            raise ValueError(f"output_size must be an int, got {self.output_size!r}")
        if self.output_size < 16:
            raise ValueError(f"output_size must be >= 16, got {self.output_size}")
        _require_fraction("eye_distance", self.eye_distance)
        _require_fraction("eye_height", self.eye_height)
        if not (math.isfinite(self.margin) and 0.0 <= self.margin <= 2.0):
            raise ValueError(f"margin must be in [0, 2], got {self.margin!r}")
        if not (math.isfinite(self.ambiguous_face_ratio) and self.ambiguous_face_ratio > 0):
            raise ValueError(f"ambiguous_face_ratio must be > 0, got {self.ambiguous_face_ratio!r}")

    @property
    def face_side(self) -> float:
        """Side, in output pixels, of the face square before the margin is added."""
        return self.output_size / (1.0 + 2.0 * self.margin)

    @property
    def target_eye_distance(self) -> float:
        """Inter-ocular distance in output pixels."""
        return self.eye_distance * self.face_side

    @property
    def target_eye_midpoint(self) -> Point:
        """Where the midpoint between the eyes lands in the output, in pixels."""
        return (self.output_size / 2.0, (self.margin + self.eye_height) * self.face_side)

    def target_eyes(self) -> tuple[Point, Point]:
        """Output positions of the image-left and image-right eyes."""
        cx, cy = self.target_eye_midpoint
        half = self.target_eye_distance / 2.0
        return (cx - half, cy), (cx + half, cy)


def _require_fraction(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 < value < 1.0):
        raise ValueError(f"{name} must be a fraction in (0, 1), got {value!r}")


@dataclass(frozen=True)
class Alignment:
    """The similarity transform of one clip, from source pixels to output pixels."""

    matrix: np.ndarray = field(repr=False)
    output_size: int
    source_size: tuple[int, int]
    detection: FaceDetection
    source: str
    warnings: tuple[str, ...] = ()

    @property
    def scale(self) -> float:
        """Source-to-output scale factor."""
        return float(math.hypot(self.matrix[0, 0], self.matrix[1, 0]))

    @property
    def roll_degrees(self) -> float:
        """Tilt of the eye line in the source (degrees, image y pointing down), removed here."""
        return float(math.degrees(math.atan2(-self.matrix[1, 0], self.matrix[0, 0])))

    def map_points(self, points: np.ndarray | Sequence[Point]) -> np.ndarray:
        """Map source points ``(N, 2)`` to output coordinates."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return pts @ self.matrix[:, :2].T + self.matrix[:, 2]

    def source_corners(self) -> np.ndarray:
        """The crop box in the source image: its 4 corners (TL, TR, BR, BL) as ``(4, 2)``."""
        s = float(self.output_size)
        inverse = cv2.invertAffineTransform(self.matrix)
        corners = np.array([[0, 0], [s, 0], [s, s], [0, s]], dtype=np.float64)
        return corners @ inverse[:, :2].T + inverse[:, 2]

    def apply(self, image: np.ndarray, source: str = "<array>") -> np.ndarray:
        """Warp one frame into the aligned crop (same dtype and channels as ``image``)."""
        height, width = image.shape[:2]
        if (width, height) != self.source_size:
            raise ValueError(
                f"{source}: frame is {width}x{height} but the clip was aligned on a "
                f"{self.source_size[0]}x{self.source_size[1]} frame ({self.source})"
            )
        return _warp(image, self.matrix, self.output_size)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (matrix, sizes, box, eyes, warnings)."""
        return {
            "matrix": self.matrix.tolist(),
            "output_size": self.output_size,
            "source_size": list(self.source_size),
            "source": self.source,
            "box": list(self.detection.box),
            "left_eye": list(self.detection.left_eye),
            "right_eye": list(self.detection.right_eye),
            "eyes_estimated": self.detection.eyes_estimated,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class AlignedClip:
    """Aligned crops of a clip and the single alignment (from the onset frame) used for all."""

    crops: list[np.ndarray]
    alignment: Alignment
    onset_index: int


def _warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Apply ``matrix``; strong downscales go through an area resize first to avoid aliasing."""
    scale = float(math.hypot(matrix[0, 0], matrix[1, 0]))
    if scale < _PRESCALE_BELOW:
        image = cv2.resize(image, (0, 0), fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        linear = matrix[:, :2] / scale
        # cv2.resize maps pixel centres: p_small = scale * p + (scale - 1) / 2.
        offset = linear @ np.full(2, (scale - 1.0) / 2.0)
        matrix = np.hstack([linear, (matrix[:, 2] - offset)[:, None]])
    return cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )


def similarity_from_eyes(left_eye: Point, right_eye: Point, config: AlignConfig) -> np.ndarray:
    """2x3 matrix that maps the two eyes onto their target positions in the output."""
    lx, ly = left_eye
    rx, ry = right_eye
    distance = math.hypot(rx - lx, ry - ly)
    if not distance > 0:
        raise ValueError(f"the two eye positions coincide: {left_eye}, {right_eye}")
    scale = config.target_eye_distance / distance
    cos, sin = (rx - lx) / distance * scale, (ry - ly) / distance * scale
    linear = np.array([[cos, sin], [-sin, cos]])
    midpoint = np.array([(lx + rx) / 2.0, (ly + ry) / 2.0])
    translation = np.array(config.target_eye_midpoint) - linear @ midpoint
    return np.hstack([linear, translation[:, None]])


class FaceAligner:
    """Detects the face of a frame and builds the alignment; aligns whole clips from the onset."""

    def __init__(self, config: AlignConfig | None = None, backend: FaceBackend | None = None):
        self.config = config or AlignConfig()
        self.backend = backend or OpenCVCascadeBackend()

    def detect(
        self, image: np.ndarray, source: str = "<array>"
    ) -> tuple[FaceDetection, tuple[str, ...]]:
        """The subject's face and the warnings raised while choosing it."""
        found = self.backend.detect(image)
        if not found:
            raise FaceNotFoundError(f"{source}: no face found (backend {self.backend.name})")
        # Candidates whose eyes were found win over those without (mostly false face detections).
        confirmed = [f for f in found if not f.eyes_estimated]
        faces = confirmed or found
        largest, others = faces[0], [f for f in found if f is not faces[0]]
        rivals = [f for f in faces[1:]
                  if f.width >= self.config.ambiguous_face_ratio * largest.width]
        if rivals:
            raise MultipleFacesError(
                f"{source}: {1 + len(rivals)} faces of similar size found "
                f"(widths {[round(f.width) for f in [largest, *rivals]]} px); cannot tell which is "
                "the subject"
            )
        warnings = list(largest.notes)
        if others:
            warnings.append(f"{len(others)} other face candidate(s) ignored (smaller or eyeless)")
        for message in warnings:
            logger.warning("%s: %s", source, message)
        return largest, tuple(warnings)

    def alignment_for(self, image: np.ndarray, source: str = "<array>") -> Alignment:
        """Detect the face in ``image`` and return the transform that aligns it."""
        detection, warnings = self.detect(image, source)
        matrix = similarity_from_eyes(detection.left_eye, detection.right_eye, self.config)
        height, width = image.shape[:2]
        return Alignment(matrix=matrix, output_size=self.config.output_size,
                         source_size=(width, height), detection=detection, source=source,
                         warnings=warnings)

    def align_clip(
        self,
        frames: Sequence[np.ndarray],
        onset_index: int = 0,
        sources: Sequence[str] | None = None,
    ) -> AlignedClip:
        """Align every frame with the single transform found on ``frames[onset_index]``."""
        if len(frames) == 0:
            raise ValueError("cannot align an empty clip")
        if not 0 <= onset_index < len(frames):
            raise ValueError(
                f"onset_index {onset_index} is outside the clip of {len(frames)} frames"
            )
        names = [f"<frame {i}>" for i in range(len(frames))] if sources is None else list(sources)
        if len(names) != len(frames):
            raise ValueError(f"{len(names)} source names given for {len(frames)} frames")
        alignment = self.alignment_for(frames[onset_index], names[onset_index])
        crops = [alignment.apply(frame, name) for frame, name in zip(frames, names)]
        return AlignedClip(crops=crops, alignment=alignment, onset_index=onset_index)


def align_clip(
    frame_paths: Sequence[str | Path],
    config: AlignConfig | None = None,
    backend: FaceBackend | None = None,
    onset_index: int = 0,
) -> AlignedClip:
    """Read a clip's frames from files and align them all from the onset frame."""
    paths = [Path(p) for p in frame_paths]
    frames = [read_frame(p) for p in paths]
    aligner = FaceAligner(config, backend)
    return aligner.align_clip(frames, onset_index, [str(p) for p in paths])
