"""Face detectors: each finds the faces of an RGB (or grey) image and the centres of their eyes.

- :class:`OpenCVCascadeBackend` (default, core dependencies only): OpenCV 4.x Haar cascades for the
  face and the eyes.
- :class:`LandmarkBackend`: mediapipe 0.10.14's bundled face mesh or dlib's 68-point model, imported
  lazily; raises an ImportError naming the extra to install when neither is present.
"""
from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import cv2
import numpy as np

from micronbert.config import Config
from micronbert.data.frames import to_grey
from micronbert.data.transforms import Box

Point = tuple[float, float]

# Eye centres of a frontal face relative to an OpenCV frontal-face box (x, y as fractions of its
# width and height), used when the eye cascades find no usable pair.
TYPICAL_EYES_IN_BOX: tuple[Point, Point] = ((0.30, 0.38), (0.70, 0.38))

# mediapipe face mesh with refined landmarks (478 points): the two iris centres.
_MEDIAPIPE_IRIS_CENTRES = (468, 473)
# dlib 68-point model: the two eyes' contour points.
_DLIB_EYE_POINTS = (range(36, 42), range(42, 48))
_DLIB_MODEL_NAME = "shape_predictor_68_face_landmarks.dat"


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


@runtime_checkable
class FaceBackend(Protocol):
    """Finds faces and their eyes in one RGB or grey 8-bit image."""

    name: str

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """All faces found in an RGB or grey uint8 image, largest first (empty when none)."""
        ...


@dataclass(frozen=True)
class CascadeConfig(Config):
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
    eye cascades, one candidate per image half (median of the detections there). When no consistent pair is found,
    the eyes are placed at typical positions inside the box and the detection says so in ``notes``.
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
        rgb = _as_rgb(image)
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


def _as_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(image[..., :3])


def make_backend(name: Literal["auto", "opencv", "mediapipe", "dlib"] = "opencv") -> FaceBackend:
    """Build a backend by name; ``auto`` uses landmarks when an extra is installed, else OpenCV."""
    if name == "opencv":
        return OpenCVCascadeBackend()
    if name in ("mediapipe", "dlib"):
        return LandmarkBackend(engine=name)
    if name == "auto":
        return LandmarkBackend() if landmark_backend_available() else OpenCVCascadeBackend()
    raise ValueError(f"unknown face backend {name!r}; expected auto, opencv, mediapipe or dlib")
