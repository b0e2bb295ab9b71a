"""Face detection, alignment and cropping, offline.

A clip is aligned once: the face and its eyes are found on the onset frame, a similarity transform
(rotation that levels the eyes, scale that fixes the inter-ocular distance, translation that puts the
eyes at a fixed place) is computed from them, and that single transform is applied to every frame, so
alignment adds no motion between frames.

Backends:

- :class:`OpenCVCascadeBackend` (default, core dependencies only): OpenCV 4.x Haar cascades for the
  face and the eyes.
- :class:`LandmarkBackend`: mediapipe 0.10.14's bundled face mesh or dlib's 68-point model, imported
  lazily; raises an ImportError naming the extra to install when neither is present.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import cv2
import numpy as np

logger = logging.getLogger(__name__)

Point = tuple[float, float]
Box = tuple[float, float, float, float]

# Eye centres of a frontal face relative to an OpenCV frontal-face box (x, y as fractions of its
# width and height), used when the eye cascades find no usable pair.
TYPICAL_EYES_IN_BOX: tuple[Point, Point] = ((0.30, 0.38), (0.70, 0.38))

# mediapipe face mesh with refined landmarks (478 points): the two iris centres.
_MEDIAPIPE_IRIS_CENTRES = (468, 473)
# dlib 68-point model: the two eyes' contour points.
_DLIB_EYE_POINTS = (range(36, 42), range(42, 48))
_DLIB_MODEL_NAME = "shape_predictor_68_face_landmarks.dat"

_PRESCALE_BELOW = 0.5


# ----------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------
class FaceAlignmentError(ValueError):
    """A frame cannot be aligned; the message names the file (or array) at fault."""


class FaceNotFoundError(FaceAlignmentError):
    """No face was found in the frame."""


class MultipleFacesError(FaceAlignmentError):
    """Several faces of similar size were found, so the subject's face is ambiguous."""


class UnreadableImageError(FaceAlignmentError):
    """The image file exists but cannot be decoded (corrupt or not an image)."""


# ----------------------------------------------------------------------------------------------
# Configuration and results
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AlignConfig:
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
class FaceDetection:
    """One face: its box ``(x, y, w, h)`` and eye centres, in source pixels.

    ``left_eye`` is the eye with the smaller x in the image. ``eyes_estimated`` is True when the eyes
    were placed at typical positions inside the box instead of being detected.
    """

    box: Box
    left_eye: Point
    right_eye: Point
    eyes_estimated: bool = False
    notes: tuple[str, ...] = ()

    @property
    def width(self) -> float:
        return self.box[2]


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


# ----------------------------------------------------------------------------------------------
# Image input
# ----------------------------------------------------------------------------------------------
def read_image(path: str | Path) -> np.ndarray:
    """Read an image as 8-bit BGR (greyscale files are replicated to 3 channels).

    Raises FileNotFoundError when the file is missing and UnreadableImageError when it cannot be
    decoded.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"image file not found: {file}")
    data = np.fromfile(file, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise UnreadableImageError(f"{file}: cannot decode the image (corrupt or not an image)")
    return image


def to_grey(image: np.ndarray) -> np.ndarray:
    """8-bit single-channel copy of a BGR, BGRA or greyscale image."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected an 8-bit image, got dtype {image.dtype}")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"expected an image of shape (H, W) or (H, W, 1|3|4), got {image.shape}")


# ----------------------------------------------------------------------------------------------
# Backends
# ----------------------------------------------------------------------------------------------
@runtime_checkable
class FaceBackend(Protocol):
    """Finds faces and their eyes in one BGR or greyscale 8-bit image."""

    name: str

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """All faces found, largest first (empty when none)."""
        ...


@dataclass(frozen=True)
class CascadeConfig:
    """Parameters of :class:`OpenCVCascadeBackend`."""

    face_cascade: str = "haarcascade_frontalface_alt2.xml"
    eye_cascades: tuple[str, ...] = ("haarcascade_eye.xml", "haarcascade_eye_tree_eyeglasses.xml")
    detection_max_side: int = 640
    eye_roi_width: int = 240
    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_face_fraction: float = 0.08
    eye_scale_factor: float = 1.05
    eye_min_neighbors: int = 3


class OpenCVCascadeBackend:
    """Haar-cascade face and eye detection from the cascades bundled with OpenCV 4.x.

    Faces are searched on a histogram-equalised copy downscaled to ``detection_max_side``; eyes are
    searched in the upper part of each face box, resized to ``eye_roi_width`` pixels wide, with the
    eye cascades, one candidate per image half (median of the detections there). When no consistent pair is found, the eyes are placed at
    typical positions inside the box and the detection says so in ``notes``.
    """

    name = "opencv"

    def __init__(self, settings: CascadeConfig | None = None) -> None:
        self.settings = settings or CascadeConfig()
        self._face = _load_cascade(self.settings.face_cascade)
        self._eyes = [_load_cascade(name) for name in self.settings.eye_cascades]

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        grey = cv2.equalizeHist(to_grey(image))
        boxes = self._face_boxes(grey)
        return [self._with_eyes(grey, box) for box in boxes]

    def _face_boxes(self, grey: np.ndarray) -> list[Box]:
        settings = self.settings
        factor = min(1.0, settings.detection_max_side / max(grey.shape))
        small = grey if factor == 1.0 else cv2.resize(
            grey, (0, 0), fx=factor, fy=factor, interpolation=cv2.INTER_AREA
        )
        min_side = max(20, int(settings.min_face_fraction * min(small.shape)))
        found = self._face.detectMultiScale(
            small, scaleFactor=settings.scale_factor, minNeighbors=settings.min_neighbors,
            minSize=(min_side, min_side),
        )
        boxes = [tuple(float(v) / factor for v in box) for box in np.asarray(found).reshape(-1, 4)]
        return sorted(boxes, key=lambda b: b[2] * b[3], reverse=True)

    def _with_eyes(self, grey: np.ndarray, box: Box) -> FaceDetection:
        candidates = self._eye_candidates(grey, box)
        pair = _eye_pair_from_candidates(candidates, box)
        if pair is not None:
            return FaceDetection(box=box, left_eye=pair[0], right_eye=pair[1])
        left, right = typical_eyes(box)
        note = "eyes not found by the eye cascades; typical eye positions inside the face box used"
        return FaceDetection(box=box, left_eye=left, right_eye=right, eyes_estimated=True,
                             notes=(note,))

    def _eye_candidates(self, grey: np.ndarray, box: Box) -> list[tuple[Point, float]]:
        """Eye centres and widths (source pixels) found in the upper 60 % of the face box."""
        x, y, w, h = (int(round(v)) for v in box)
        x0, y0 = max(0, x), max(0, y)
        roi = grey[y0:y + int(0.6 * h), x0:x + w]
        if roi.size == 0:
            return []
        factor = self.settings.eye_roi_width / roi.shape[1]
        interpolation = cv2.INTER_AREA if factor < 1.0 else cv2.INTER_LINEAR
        roi = cv2.resize(roi, (0, 0), fx=factor, fy=factor, interpolation=interpolation)
        min_eye = max(8, int(0.08 * w * factor))
        found: list[tuple[Point, float]] = []
        for cascade in self._eyes:
            eyes = cascade.detectMultiScale(
                roi, scaleFactor=self.settings.eye_scale_factor,
                minNeighbors=self.settings.eye_min_neighbors, minSize=(min_eye, min_eye),
            )
            for ex, ey, ew, eh in np.asarray(eyes).reshape(-1, 4):
                centre = (x0 + (ex + ew / 2.0) / factor, y0 + (ey + eh / 2.0) / factor)
                found.append((centre, ew / factor))
        return found


def _load_cascade(name: str) -> cv2.CascadeClassifier:
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if folder is None or not hasattr(cv2, "CascadeClassifier"):
        raise ImportError(
            "this OpenCV build has no Haar cascades (OpenCV 5 removed them); "
            "install opencv-python-headless>=4.8,<5"
        )
    path = Path(folder) / name
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise FileNotFoundError(f"cannot load the OpenCV cascade {path}")
    return cascade


def typical_eyes(box: Box) -> tuple[Point, Point]:
    """Typical eye centres of a frontal face inside a face box ``(x, y, w, h)``."""
    x, y, w, h = box
    (lx, ly), (rx, ry) = TYPICAL_EYES_IN_BOX
    return (x + lx * w, y + ly * h), (x + rx * w, y + ry * h)


def _eye_pair_from_candidates(
    candidates: list[tuple[Point, float]], box: Box
) -> tuple[Point, Point] | None:
    """One eye per half of the face box, or None when no plausible pair exists."""
    x, y, w, h = box
    plausible = [
        centre for centre, width in candidates
        if 0.15 * h < centre[1] - y < 0.5 * h and 0.08 * w <= width <= 0.45 * w
    ]
    left = [c for c in plausible if c[0] < x + w / 2.0]
    right = [c for c in plausible if c[0] >= x + w / 2.0]
    if not left or not right:
        return None
    left_eye = tuple(float(v) for v in np.median(np.array(left), axis=0))
    right_eye = tuple(float(v) for v in np.median(np.array(right), axis=0))
    dx, dy = right_eye[0] - left_eye[0], right_eye[1] - left_eye[1]
    if not (0.25 * w <= dx <= 0.7 * w and abs(dy) <= 0.3 * dx):
        return None
    return left_eye, right_eye  # type: ignore[return-value]


class LandmarkBackend:
    """Landmark-based eyes from mediapipe 0.10.14's bundled face mesh, or from dlib.

    mediapipe gives the iris centres of its refined mesh; dlib the mean of each eye's six contour
    points.

    ``engine="auto"`` picks mediapipe, then dlib, whichever is installed. dlib needs the 68-point
    model file; by default it is looked up inside the ``face_recognition_models`` package (without
    importing it, as that package imports the removed ``pkg_resources``).
    """

    def __init__(
        self,
        engine: Literal["auto", "mediapipe", "dlib"] = "auto",
        dlib_model: str | Path | None = None,
        max_faces: int = 4,
    ) -> None:
        if engine not in ("auto", "mediapipe", "dlib"):
            raise ValueError(f"engine must be 'auto', 'mediapipe' or 'dlib', got {engine!r}")
        if isinstance(max_faces, bool) or not isinstance(max_faces, int) or max_faces < 1:
            raise ValueError(f"max_faces must be an int >= 1, got {max_faces!r}")
        self.engine = _resolve_landmark_engine(engine)
        self.name = f"landmarks-{self.engine}"
        if self.engine == "mediapipe":
            self._detect = _mediapipe_detector(max_faces)
        else:
            self._detect = _dlib_detector(dlib_model)

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        faces = self._detect(image)
        return sorted(faces, key=lambda f: f.box[2] * f.box[3], reverse=True)


def landmark_backend_available() -> bool:
    """True when mediapipe, or dlib together with ``face_recognition_models``, is installed."""
    return _module_importable("mediapipe") or (
        _module_importable("dlib") and _module_importable("face_recognition_models")
    )


def _module_importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _resolve_landmark_engine(engine: str) -> str:
    order = ("mediapipe", "dlib") if engine == "auto" else (engine,)
    for name in order:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        return name
    raise ImportError(
        f"LandmarkBackend({engine!r}) needs an optional extra that is not installed: "
        "install mediapipe 0.10.14 (pip install 'micronbert[mediapipe]', i.e. mediapipe==0.10.14) "
        "or dlib (pip install 'micronbert[dlib]', i.e. dlib-bin and face_recognition_models); "
        "the default OpenCVCascadeBackend needs no extra"
    )


def _mediapipe_detector(max_faces: int):
    import mediapipe as mp

    mesh = mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, max_num_faces=max_faces, refine_landmarks=True
    )

    def detect(image: np.ndarray) -> list[FaceDetection]:
        rgb = cv2.cvtColor(_as_bgr(image), cv2.COLOR_BGR2RGB)
        height, width = rgb.shape[:2]
        result = mesh.process(rgb)
        faces = []
        for landmarks in result.multi_face_landmarks or []:
            points = np.array([(p.x * width, p.y * height) for p in landmarks.landmark])
            eyes = [points[index] for index in _MEDIAPIPE_IRIS_CENTRES]
            faces.append(_detection_from_points(points, eyes))
        return faces

    return detect


def _dlib_detector(model: str | Path | None):
    import dlib

    model_path = Path(model) if model is not None else _find_dlib_model()
    if not model_path.is_file():
        raise FileNotFoundError(f"dlib landmark model not found: {model_path}")
    face_detector = dlib.get_frontal_face_detector()
    try:
        predictor = dlib.shape_predictor(str(model_path))
    except RuntimeError as error:
        raise ValueError(
            f"{model_path}: not a dlib 68-point shape predictor ({error})"
        ) from error

    def detect(image: np.ndarray) -> list[FaceDetection]:
        grey = to_grey(image)
        faces = []
        for rect in face_detector(grey, 1):
            shape = predictor(grey, rect)
            points = np.array([(shape.part(i).x, shape.part(i).y) for i in range(68)], float)
            eyes = [points[list(indices)].mean(axis=0) for indices in _DLIB_EYE_POINTS]
            faces.append(_detection_from_points(points, eyes))
        return faces

    return detect


def _find_dlib_model() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "dlib needs the 68-point model: install face_recognition_models "
            "(pip install 'micronbert[dlib]') or pass dlib_model=<path to "
            f"{_DLIB_MODEL_NAME}>"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models" / _DLIB_MODEL_NAME


def _detection_from_points(points: np.ndarray, eyes: Sequence[np.ndarray]) -> FaceDetection:
    left, right = sorted((tuple(float(v) for v in e) for e in eyes), key=lambda p: p[0])
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return FaceDetection(box=(float(x0), float(y0), float(x1 - x0), float(y1 - y0)),
                         left_eye=left, right_eye=right)  # type: ignore[arg-type]


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def make_backend(name: Literal["auto", "opencv", "mediapipe", "dlib"] = "opencv") -> FaceBackend:
    """Build a backend by name; ``auto`` uses landmarks when an extra is installed, else OpenCV."""
    if name == "opencv":
        return OpenCVCascadeBackend()
    if name in ("mediapipe", "dlib"):
        return LandmarkBackend(engine=name)
    if name == "auto":
        return LandmarkBackend() if landmark_backend_available() else OpenCVCascadeBackend()
    raise ValueError(f"unknown face backend {name!r}; expected auto, opencv, mediapipe or dlib")


# ----------------------------------------------------------------------------------------------
# Alignment
# ----------------------------------------------------------------------------------------------
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
    frames = [read_image(p) for p in paths]
    aligner = FaceAligner(config, backend)
    return aligner.align_clip(frames, onset_index, [str(p) for p in paths])
