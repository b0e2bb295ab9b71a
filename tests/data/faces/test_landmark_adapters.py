"""How LandmarkBackend turns mediapipe's and dlib's answers into FaceDetections.

The optional engines are replaced by small stand-in modules that answer with known landmarks, so the
conversion (normalised to pixel coordinates, channel order, which points make an eye, the box, the order
of faces, the model-file lookup) is checked on every machine; tests/data/test_faces.py runs the real engines
on real photographs where they are installed.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

from micronbert.data.faces import LandmarkBackend

WIDTH, HEIGHT = 200, 100


def _point(x: float, y: float) -> types.SimpleNamespace:
    return types.SimpleNamespace(x=x, y=y)


def _mesh_face(left_iris: tuple[float, float], right_iris: tuple[float, float],
               corner: tuple[float, float], size: float) -> types.SimpleNamespace:
    """478 normalised mesh points inside a square at ``corner``; the iris centres at 468 (image left) and 473."""
    points = [_point(corner[0] + size * (i % 2), corner[1] + size * ((i // 2) % 2)) for i in range(478)]
    points[468], points[473] = _point(*left_iris), _point(*right_iris)
    return types.SimpleNamespace(landmark=points)


class _FakeFaceMesh:
    instances: list[_FakeFaceMesh] = []
    seen: list[np.ndarray] = []

    def __init__(self, static_image_mode: bool, max_num_faces: int, refine_landmarks: bool) -> None:
        assert static_image_mode and refine_landmarks
        self.max_num_faces = max_num_faces
        self.faces: list[types.SimpleNamespace] = []
        _FakeFaceMesh.instances.append(self)

    def process(self, rgb: np.ndarray) -> types.SimpleNamespace:
        _FakeFaceMesh.seen.append(rgb)
        return types.SimpleNamespace(multi_face_landmarks=self.faces or None)


@pytest.fixture
def fake_mediapipe(monkeypatch):
    module = types.ModuleType("mediapipe")
    module.solutions = types.SimpleNamespace(face_mesh=types.SimpleNamespace(FaceMesh=_FakeFaceMesh))
    monkeypatch.setitem(sys.modules, "mediapipe", module)
    _FakeFaceMesh.instances, _FakeFaceMesh.seen = [], []
    return module


def test_mediapipe_landmarks_become_pixels_with_the_iris_centres_as_eyes(fake_mediapipe):
    backend = LandmarkBackend(engine="mediapipe", max_faces=3)
    mesh = _FakeFaceMesh.instances[-1]
    mesh.faces = [
        _mesh_face((0.30, 0.40), (0.20, 0.42), corner=(0.1, 0.2), size=0.3),  # iris 468 right of 473 in x
        _mesh_face((0.62, 0.5), (0.72, 0.5), corner=(0.55, 0.3), size=0.4),
    ]
    rgb = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    rgb[..., 2] = 255  # blue

    faces = backend.detect(rgb)

    assert backend.name == "landmarks-mediapipe" and mesh.max_num_faces == 3
    assert _FakeFaceMesh.seen[0][0, 0].tolist() == [0, 0, 255]  # mediapipe was given the RGB frame
    big, small = faces  # largest box first
    assert big.box == pytest.approx((0.55 * WIDTH, 0.3 * HEIGHT, 0.4 * WIDTH, 0.4 * HEIGHT))
    assert big.left_eye == pytest.approx((0.62 * WIDTH, 0.5 * HEIGHT))
    assert big.right_eye == pytest.approx((0.72 * WIDTH, 0.5 * HEIGHT))
    assert small.left_eye == pytest.approx((0.20 * WIDTH, 0.42 * HEIGHT))  # left is the smaller x
    assert small.right_eye == pytest.approx((0.30 * WIDTH, 0.40 * HEIGHT))
    assert not big.eyes_estimated


@pytest.mark.parametrize("shape", [(HEIGHT, WIDTH), (HEIGHT, WIDTH, 1), (HEIGHT, WIDTH, 4)])
def test_mediapipe_receives_three_channels_from_grey_and_bgra_images(fake_mediapipe, shape):
    backend = LandmarkBackend(engine="mediapipe")

    assert backend.detect(np.full(shape, 90, np.uint8)) == []
    assert _FakeFaceMesh.seen[-1].shape == (HEIGHT, WIDTH, 3)


class _FakeShape:
    def __init__(self, points: np.ndarray) -> None:
        self.points = points

    def part(self, index: int) -> types.SimpleNamespace:
        return types.SimpleNamespace(x=int(self.points[index, 0]), y=int(self.points[index, 1]))


def _dlib_points(left: float, top: float, size: float) -> np.ndarray:
    """68 points in a square; the eye contours 36-41 and 42-47 around two known centres."""
    points = np.array([(left + size * (i % 2), top + size * ((i // 2) % 2)) for i in range(68)], float)
    ring = np.array([(-4, 0), (-2, -2), (2, -2), (4, 0), (2, 2), (-2, 2)], float)
    points[42:48] = (left + 0.3 * size, top + 0.4 * size) + ring  # dlib's 42-47 are on the image left here
    points[36:42] = (left + 0.7 * size, top + 0.4 * size) + ring
    return points


@pytest.fixture
def fake_dlib(monkeypatch):
    module = types.ModuleType("dlib")
    faces = {"rects": [(10, 10, 40), (100, 20, 60)], "grey_shapes": []}

    def get_frontal_face_detector():
        def detector(grey: np.ndarray, upsample: int) -> list[tuple[int, int, int]]:
            faces["grey_shapes"].append(grey.shape)
            return faces["rects"]
        return detector

    def shape_predictor(path: str):
        if Path(path).read_bytes() != b"68 points":
            raise RuntimeError("Unexpected version found while deserializing dlib::shape_predictor.")
        return lambda grey, rect: _FakeShape(_dlib_points(*rect))

    module.get_frontal_face_detector = get_frontal_face_detector
    module.shape_predictor = shape_predictor
    monkeypatch.setitem(sys.modules, "dlib", module)
    return faces


@pytest.fixture
def dlib_model(tmp_path) -> Path:
    path = tmp_path / "shape_predictor_68_face_landmarks.dat"
    path.write_bytes(b"68 points")
    return path


def test_dlib_eyes_are_the_mean_of_each_eye_contour(fake_dlib, dlib_model):
    backend = LandmarkBackend(engine="dlib", dlib_model=dlib_model)

    big, small = backend.detect(np.zeros((HEIGHT, WIDTH, 3), np.uint8))

    assert backend.name == "landmarks-dlib"
    assert fake_dlib["grey_shapes"] == [(HEIGHT, WIDTH)]  # dlib was given the grey image
    assert big.box == pytest.approx((100, 20, 60, 60))
    assert big.left_eye == pytest.approx((100 + 18, 20 + 24))
    assert big.right_eye == pytest.approx((100 + 42, 20 + 24))
    assert small.left_eye == pytest.approx((10 + 12, 10 + 16))


def test_dlib_model_is_found_inside_face_recognition_models(fake_dlib, tmp_path, monkeypatch):
    package = tmp_path / "site" / "face_recognition_models"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('imports pkg_resources')\n")
    (package / "models" / "shape_predictor_68_face_landmarks.dat").write_bytes(b"68 points")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))

    backend = LandmarkBackend(engine="dlib")

    assert len(backend.detect(np.zeros((HEIGHT, WIDTH), np.uint8))) == 2


def test_dlib_without_its_model_package_says_what_to_install(fake_dlib, monkeypatch):
    monkeypatch.setitem(sys.modules, "face_recognition_models", None)

    with pytest.raises(ImportError, match=r"micronbert\[dlib\].*dlib_model="):
        LandmarkBackend(engine="dlib")


def test_dlib_rejects_a_file_that_is_not_its_model(fake_dlib, tmp_path):
    other = tmp_path / "weights.dat"
    other.write_bytes(b"something else")

    with pytest.raises(ValueError, match="weights.dat: not a dlib 68-point shape predictor"):
        LandmarkBackend(engine="dlib", dlib_model=other)
    with pytest.raises(FileNotFoundError, match="absent.dat"):
        LandmarkBackend(engine="dlib", dlib_model=tmp_path / "absent.dat")


def test_auto_prefers_mediapipe_over_dlib(fake_mediapipe, fake_dlib):
    assert LandmarkBackend(engine="auto").engine == "mediapipe"
