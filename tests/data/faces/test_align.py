"""Face detection and alignment on real photographs shipped in registry packages."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from micronbert.data.faces import (
    AlignConfig,
    Alignment,
    CascadeConfig,
    FaceAligner,
    FaceBackend,
    FaceDetection,
    FaceNotFoundError,
    LandmarkBackend,
    MultipleFacesError,
    OpenCVCascadeBackend,
    align_clip,
    landmark_backend_available,
    make_backend,
    similarity_from_eyes,
    typical_eyes,
)
from micronbert.data.frames import UnreadableImageError, read_frame


def _grace_hopper_path() -> Path:
    from matplotlib import cbook

    return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def _astronaut_path() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent / "astronaut.png"


# Eye centres (centre of the dark pupil / iris), read by eye on 16x and 24x enlargements of the
# photographs with a 2-pixel grid drawn over them. "left" is the eye with the smaller x in the image.
PHOTOS = {
    "grace_hopper": (_grace_hopper_path, (221.0, 188.0), (304.0, 186.0), 5.0),
    "astronaut": (_astronaut_path, (203.0, 101.0), (247.0, 102.0), 4.0),
}


@pytest.fixture(scope="module")
def aligner() -> FaceAligner:
    return FaceAligner(AlignConfig(), OpenCVCascadeBackend())


@pytest.fixture(scope="module")
def grace_hopper() -> np.ndarray:
    return read_frame(_grace_hopper_path())


def _distance(a, b) -> float:
    return float(np.hypot(a[0] - b[0], a[1] - b[1]))


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_face_and_eyes_found_where_seen_by_eye(aligner, name):
    path_of, left_truth, right_truth, tolerance = PHOTOS[name]
    image = read_frame(path_of())

    detection, warnings = aligner.detect(image, name)

    assert not detection.eyes_estimated
    assert warnings == ()
    assert _distance(detection.left_eye, left_truth) <= tolerance
    assert _distance(detection.right_eye, right_truth) <= tolerance
    x, y, w, h = detection.box
    for ex, ey in (left_truth, right_truth):
        assert x < ex < x + w and y < ey < y + h * 0.5
    eye_distance = _distance(left_truth, right_truth)
    assert 1.5 * eye_distance < w < 3.5 * eye_distance


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_alignment_puts_the_true_eyes_level_at_the_target(aligner, name):
    path_of, left_truth, right_truth, tolerance = PHOTOS[name]
    image = read_frame(path_of())
    config = aligner.config

    alignment = aligner.alignment_for(image, name)
    crop = alignment.apply(image)
    mapped = alignment.map_points([left_truth, right_truth])

    assert crop.shape == (config.output_size, config.output_size, 3)
    side = config.output_size
    np.testing.assert_allclose(alignment.map_points(alignment.source_corners()),
                               [[0, 0], [side, 0], [side, side], [0, side]], atol=1e-9)
    target = np.array(config.target_eyes())
    assert np.abs(mapped - target).max() <= tolerance * alignment.scale
    # Each eye is within ``tolerance`` source pixels, so the true eye line is level within:
    assert abs(mapped[0, 1] - mapped[1, 1]) <= 2 * tolerance * alignment.scale
    assert abs(alignment.roll_degrees - np.degrees(np.arctan2(
        right_truth[1] - left_truth[1], right_truth[0] - left_truth[0]))) < 5.0


def _shifted_clip(image: np.ndarray, shifts: list[tuple[int, int]]) -> list[np.ndarray]:
    """Frames of the same size whose content moves by ``shifts[k]`` (dx, dy) pixels."""
    pad = 20
    canvas = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    height, width = image.shape[:2]
    return [canvas[pad - dy:pad - dy + height, pad - dx:pad - dx + width].copy() for dx, dy in shifts]


def _residual(reference: np.ndarray, moved: np.ndarray, shift: np.ndarray) -> float:
    """Mean absolute difference, away from the borders, between ``moved`` and ``reference``
    translated by ``shift`` (sub-pixel, bilinear)."""
    size = reference.shape[1], reference.shape[0]
    translated = cv2.warpAffine(reference.astype(np.float64), np.float64([[1, 0, shift[0]],
                                                                         [0, 1, shift[1]]]), size)
    return float(np.abs(translated - moved.astype(np.float64))[20:-20, 20:-20].mean())


def test_clip_is_cropped_with_one_transform_from_the_onset(aligner, grace_hopper):
    shifts = [(0, 0), (3, 1), (9, 4), (-4, 6)]
    frames = _shifted_clip(grace_hopper, shifts)

    clip = aligner.align_clip(frames, onset_index=0)

    onset_alignment = aligner.alignment_for(frames[0])
    np.testing.assert_array_equal(clip.alignment.matrix, onset_alignment.matrix)
    matrix, linear = clip.alignment.matrix, clip.alignment.matrix[:, :2]
    for (dx, dy), crop in zip(shifts, clip.crops):
        in_crop = linear @ np.array([dx, dy], dtype=float)
        # The crop of frame k is exactly the onset frame's crop box moved by the known shift ...
        moved_box = np.hstack([linear, (matrix[:, 2] + in_crop)[:, None]])
        np.testing.assert_array_equal(crop, cv2.warpAffine(frames[0], moved_box, crop.shape[1::-1]))
        # ... so its content is the onset crop translated by that shift, and by nothing nearby.
        best = _residual(clip.crops[0], crop, in_crop)
        assert best < 2.5
        for offset in ([0.25, 0], [-0.25, 0], [0, 0.25], [0, -0.25]):
            assert best < _residual(clip.crops[0], crop, in_crop + np.array(offset))


def test_onset_index_selects_the_detection_frame(aligner, grace_hopper):
    blank = np.full_like(grace_hopper, 128)
    frames = [blank, grace_hopper]

    assert aligner.align_clip(frames, onset_index=1).alignment.detection.box
    with pytest.raises(FaceNotFoundError, match="<frame 0>"):
        aligner.align_clip(frames, onset_index=0)
    with pytest.raises(ValueError, match="onset_index 2"):
        aligner.align_clip(frames, onset_index=2)


def test_align_clip_reads_files_and_rejects_frames_of_another_size(tmp_path, grace_hopper):
    onset, other = tmp_path / "a.png", tmp_path / "b.png"
    cv2.imwrite(str(onset), grace_hopper[..., ::-1])
    cv2.imwrite(str(other), grace_hopper[:-10, :, ::-1])

    clip = align_clip([onset, onset], AlignConfig(output_size=64))
    assert [c.shape for c in clip.crops] == [(64, 64, 3)] * 2
    assert clip.alignment.source == str(onset)
    with pytest.raises(ValueError, match="b.png"):
        align_clip([onset, other])


def _downscaling_alignment(size: tuple[int, int]) -> Alignment:
    """An alignment that shrinks by 3.2 and rotates by 10 degrees (no face detection involved)."""
    detection = FaceDetection(box=(0.0, 0.0, 1.0, 1.0), left_eye=(0.0, 0.0), right_eye=(1.0, 0.0))
    angle, scale = np.deg2rad(10.0), 1 / 3.2
    linear = scale * np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    matrix = np.hstack([linear, np.array([[-60.0], [40.0]])])
    return Alignment(matrix, 224, size, detection, "synthetic")


def test_strong_downscale_keeps_points_in_place():
    height, width = 900, 1000
    alignment = _downscaling_alignment((width, height))
    dots = np.array([[300.0, 250.0], [520.5, 400.25], [700.0, 610.75]])
    ys, xs = np.mgrid[0:height, 0:width]
    frame = np.zeros((height, width), np.float64)
    for x, y in dots:
        frame += 255 * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 8.0**2))

    crop = alignment.apply(np.clip(frame, 0, 255).astype(np.uint8)).astype(np.float64)

    assert alignment.scale < 0.5
    for expected in alignment.map_points(dots):
        cx, cy = np.round(expected).astype(int)
        window = crop[cy - 8:cy + 9, cx - 8:cx + 9]
        wy, wx = np.mgrid[cy - 8:cy + 9, cx - 8:cx + 9]
        centroid = np.array([(window * wx).sum(), (window * wy).sum()]) / window.sum()
        np.testing.assert_allclose(centroid, expected, atol=0.1)


def test_strong_downscale_does_not_alias_fine_texture():
    checkerboard = ((np.indices((900, 1000)).sum(axis=0) % 2) * 255).astype(np.uint8)
    alignment = _downscaling_alignment((1000, 900))

    crop = alignment.apply(checkerboard)[40:-40, 40:-40]
    plain = cv2.warpAffine(checkerboard, alignment.matrix, (224, 224))[40:-40, 40:-40]

    assert abs(crop.mean() - 127.5) < 2 and crop.std() < 3
    assert plain.std() > 30  # a plain bilinear warp would alias the texture


def test_two_faces_of_similar_size_are_refused(aligner, grace_hopper, tmp_path):
    path = tmp_path / "two_faces.png"
    cv2.imwrite(str(path), np.hstack([grace_hopper, grace_hopper])[..., ::-1])

    with pytest.raises(MultipleFacesError, match="two_faces.png"):
        align_clip([path], backend=aligner.backend)


def test_no_face_corrupt_and_missing_files_name_the_file(aligner, tmp_path):
    blank, corrupt, empty = tmp_path / "blank.png", tmp_path / "corrupt.jpg", tmp_path / "empty.jpg"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 90, np.uint8))
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 10)
    empty.write_bytes(b"")

    with pytest.raises(FaceNotFoundError, match="blank.png"):
        align_clip([blank], backend=aligner.backend)
    for path in (corrupt, empty):
        with pytest.raises(UnreadableImageError, match=path.name):
            align_clip([path], backend=aligner.backend)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        align_clip([tmp_path / "missing.png"], backend=aligner.backend)


def test_missing_eyes_fall_back_to_typical_positions_with_a_warning(grace_hopper):
    backend = OpenCVCascadeBackend(CascadeConfig(eye_cascades=()))

    alignment = FaceAligner(backend=backend).alignment_for(grace_hopper, "gh.jpg")

    detection = alignment.detection
    assert detection.eyes_estimated
    assert (detection.left_eye, detection.right_eye) == typical_eyes(detection.box)
    assert any("typical eye positions" in w for w in alignment.warnings)
    left_truth, right_truth = PHOTOS["grace_hopper"][1:3]
    assert _distance(detection.left_eye, left_truth) < 15
    assert _distance(detection.right_eye, right_truth) < 15


def test_greyscale_frames_are_aligned(aligner, grace_hopper):
    grey = cv2.cvtColor(grace_hopper, cv2.COLOR_RGB2GRAY)

    clip = aligner.align_clip([grey])

    assert clip.crops[0].shape == (224, 224)
    assert not clip.alignment.detection.eyes_estimated


def test_similarity_levels_a_tilted_eye_line():
    config = AlignConfig(output_size=200, eye_distance=0.4, eye_height=0.3, margin=0.25)
    left, right = (100.0, 120.0), (180.0, 60.0)

    matrix = similarity_from_eyes(left, right, config)
    mapped = np.array([left, right]) @ matrix[:, :2].T + matrix[:, 2]

    face_side = 200 / 1.5
    expected = [[100 - 0.2 * face_side, (0.25 + 0.3) * face_side],
                [100 + 0.2 * face_side, (0.25 + 0.3) * face_side]]
    np.testing.assert_allclose(mapped, expected, atol=1e-9)


@pytest.mark.parametrize(
    "kwargs",
    [{"output_size": 8}, {"output_size": 224.0}, {"eye_distance": 0.0}, {"eye_height": 1.2},
     {"margin": -0.1}, {"margin": float("nan")}, {"ambiguous_face_ratio": 0}],
)
def test_invalid_config_is_rejected(kwargs):
    with pytest.raises(ValueError):
        AlignConfig(**kwargs)


def test_landmark_backend_without_its_extra_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    monkeypatch.setitem(sys.modules, "dlib", None)

    for engine in ("auto", "mediapipe", "dlib"):
        with pytest.raises(ImportError, match=r"mediapipe==0\.10\.14.*micronbert\[dlib\]"):
            LandmarkBackend(engine=engine)
    with pytest.raises(ValueError, match="unknown face backend"):
        make_backend("retinaface")  # type: ignore[arg-type]


def test_default_backend_satisfies_the_protocol():
    backend = make_backend("opencv")
    assert isinstance(backend, FaceBackend)
    assert backend.name == "opencv"


def test_dlib_without_its_model_package_is_not_offered_by_auto(monkeypatch):
    dlib_stub = types.ModuleType("dlib")
    dlib_stub.__spec__ = importlib.machinery.ModuleSpec("dlib", None)
    monkeypatch.setitem(sys.modules, "dlib", dlib_stub)
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    monkeypatch.setitem(sys.modules, "face_recognition_models", None)

    assert not landmark_backend_available()
    assert make_backend("auto").name == "opencv"


@pytest.mark.parametrize("max_faces", [0, 2.0, True])
def test_landmark_backend_rejects_a_bad_face_count(max_faces):
    with pytest.raises(ValueError, match="max_faces"):
        LandmarkBackend(engine="dlib", max_faces=max_faces)


def _installed_landmark_backend(engine: str) -> LandmarkBackend:
    """The landmark backend of ``engine``; skips when its optional extra is not installed."""
    pytest.importorskip(engine)  # optional extras micronbert[dlib] and micronbert[mediapipe]
    if engine == "dlib" and importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("dlib's 68-point model (package face_recognition_models) is not installed")
    return LandmarkBackend(engine=engine)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def dlib_backend() -> LandmarkBackend:
    return _installed_landmark_backend("dlib")


@pytest.fixture(scope="module", params=["dlib", "mediapipe"])
def landmark_backend(request) -> LandmarkBackend:
    return _installed_landmark_backend(request.param)


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_landmark_engines_find_the_eyes_seen_by_eye(landmark_backend, name):
    path_of, left_truth, right_truth, tolerance = PHOTOS[name]
    image = read_frame(path_of())

    faces = landmark_backend.detect(image)
    alignment = FaceAligner(AlignConfig(), landmark_backend).alignment_for(image, name)

    assert landmark_backend.name == f"landmarks-{landmark_backend.engine}"
    assert len(faces) == 1
    detection = faces[0]
    assert not detection.eyes_estimated
    assert _distance(detection.left_eye, left_truth) <= tolerance
    assert _distance(detection.right_eye, right_truth) <= tolerance
    x, y, w, h = detection.box
    for ex, ey in (left_truth, right_truth):
        assert x < ex < x + w and y < ey < y + h * 0.5
    assert alignment.warnings == ()
    mapped = alignment.map_points([left_truth, right_truth])
    target = np.array(AlignConfig().target_eyes())
    assert np.abs(mapped - target).max() <= tolerance * alignment.scale
    grey = landmark_backend.detect(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
    assert len(grey) == 1
    assert _distance(grey[0].left_eye, detection.left_eye) <= 2.0
    assert _distance(grey[0].right_eye, detection.right_eye) <= 2.0


def test_dlib_rejects_a_model_file_that_is_not_a_shape_predictor(dlib_backend, tmp_path):
    fake = tmp_path / "pointer.dat"
    fake.write_bytes(b"version https://git-lfs.github.com/spec/v1\n")

    with pytest.raises(ValueError, match="pointer.dat"):
        LandmarkBackend(engine="dlib", dlib_model=fake)
    with pytest.raises(FileNotFoundError, match="absent.dat"):
        LandmarkBackend(engine="dlib", dlib_model=tmp_path / "absent.dat")
