"""The builders of the input layer: one sample's array per input kind, from its frames."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from micronbert.data.faces import FaceDetection
from micronbert.data.flow import flow_features
from micronbert.data.frames import read_frame
from micronbert.data.inputs.builders import (
    FLOW_WORKING_SIZE,
    ClipFrames,
    build_apex,
    build_flow,
    build_flow_cells,
    build_flow_sequence,
    build_pair,
    build_precomputed,
    build_regions,
    build_sequence,
    cell_steps,
    flow_maps,
    frames_read,
    output_shape,
    region_boxes,
    resampling_plan,
    resolve_flow_method,
    scale_channels,
)
from micronbert.data.inputs.spec import INPUT_KINDS, InputSpec
from micronbert.data.transforms import resize_square

SIDE = FLOW_WORKING_SIZE
MARGIN = 24


def texture(seed: int = 0, side: int = SIDE) -> np.ndarray:
    """A smooth random grey texture (side, side) uint8, good for optical flow."""
    noise = (np.random.default_rng(seed).random((side, side)) * 255).astype(np.uint8)
    return cv2.normalize(cv2.GaussianBlur(noise, (0, 0), 2.0), None, 0, 255, cv2.NORM_MINMAX)


def rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)


def shifted(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    return np.roll(image, shift=(dy, dx), axis=(0, 1))


def uniform_clip(numbers: list[int], side: int = 8) -> ClipFrames:
    """Frames of one uniform grey value each: 10 × the frame number."""
    frames = {number: np.full((side, side, 3), 10 * number, dtype=np.uint8) for number in numbers}
    return ClipFrames(frames, onset=numbers[0], apex=numbers[len(numbers) // 2], offset=numbers[-1])


def moving_clip(count: int, dx: int, dy: int) -> ClipFrames:
    """``count`` frames of a texture moving (dx, dy) pixels per frame, numbered from 5."""
    base = texture()
    frames = {5 + k: rgb(shifted(base, k * dx, k * dy)) for k in range(count)}
    return ClipFrames(frames, onset=5, apex=5 + count // 2, offset=5 + count - 1)


# ------------------------------------------------------------------------------------------------ spec
def test_the_spec_knows_flow_cells_and_the_angle_channel():
    cells = InputSpec("flow_cells", 8, ("angle", "magnitude"), length=64)
    assert "flow_cells" in INPUT_KINDS and output_shape(cells) == (64, 2, 8, 8)
    assert InputSpec("flow", 28, ("u", "v", "angle")).channels == ("u", "v", "angle")
    with pytest.raises(ValueError, match="flow_cells channels"):
        InputSpec("flow_cells", 8, ("u", "v"), length=4)
    with pytest.raises(ValueError, match="length"):
        InputSpec("flow_cells", 8, ("angle",))
    with pytest.raises(ValueError, match="distinct"):
        InputSpec("flow", 28, ("u", "u"))


def test_resized_changes_the_size_and_shortens_only_the_kinds_with_a_length():
    sequence = InputSpec("sequence", 64, length=96)
    assert sequence.resized(16, length=6) == InputSpec("sequence", 16, length=6)
    assert sequence.resized(16) == InputSpec("sequence", 16, length=96)
    assert InputSpec("apex", 224).resized(32, length=6) == InputSpec("apex", 32)
    eyes = InputSpec("regions", 32, length=96, region="eyes").resized(8, 4)
    assert (eyes.size, eyes.length, eyes.region) == (8, 4, "eyes")


@pytest.mark.parametrize(("spec", "shape"), [
    (InputSpec("pair", 16, ("r", "g", "b")), (6, 16, 16)),
    (InputSpec("apex", 16), (1, 16, 16)),
    (InputSpec("flow", 16, ("u", "v", "strain", "magnitude")), (4, 16, 16)),
    (InputSpec("sequence", 16, length=5), (1, 5, 16, 16)),
    (InputSpec("regions", 16, ("r", "g", "b"), length=5, region="mouth"), (3, 5, 16, 16)),
    (InputSpec("flow_sequence", 16, ("u", "v"), length=5), (5, 2, 16, 16)),
    (InputSpec("precomputed", 16, ("r", "g", "b")), (3, 16, 16)),
])
def test_output_shapes_follow_the_documented_layouts(spec, shape):
    assert output_shape(spec) == shape


def test_auto_flow_resolves_to_a_concrete_method():
    assert resolve_flow_method("auto") in ("tvl1", "dis")
    assert resolve_flow_method("farneback") == "farneback"
    with pytest.raises(ValueError, match="unknown optical-flow method"):
        resolve_flow_method("lucas")


# ------------------------------------------------------------------------------------------------ images
def test_pair_holds_the_onset_channels_then_the_apex_channels():
    clip = uniform_clip([1, 2, 3, 4, 5])  # apex 3
    pair = build_pair(clip, InputSpec("pair", 4, ("r", "g", "b")))
    assert pair.shape == (6, 4, 4) and pair.dtype == np.uint8
    assert (pair[:3] == 10).all() and (pair[3:] == 30).all()


def test_apex_is_grey_or_colour_at_the_spec_size():
    frame = np.zeros((20, 30, 3), dtype=np.uint8)
    frame[..., 0] = 200  # pure red
    clip = ClipFrames({1: frame, 2: frame}, onset=1, apex=2, offset=2)
    colour = build_apex(clip, InputSpec("apex", 10, ("r", "g", "b")))
    grey = build_apex(clip, InputSpec("apex", 10))
    assert colour.shape == (3, 10, 10) and (colour[0] == 200).all() and (colour[1:] == 0).all()
    assert grey.shape == (1, 10, 10) and (grey == round(0.299 * 200)).all()


def test_precomputed_images_are_used_as_they_are_resized_to_the_spec():
    image = np.zeros((28, 28, 3), dtype=np.uint8)
    image[:14, :, 0], image[14:, :, 2] = 255, 99
    out = build_precomputed(image, InputSpec("precomputed", 14, ("r", "g", "b")))
    assert out.shape == (3, 14, 14)
    assert (out[0, :7] == 255).all() and (out[2, 7:] == 99).all() and (out[1] == 0).all()


# ------------------------------------------------------------------------------------------------ sequences
def test_resampling_starts_at_the_onset_ends_at_the_offset_and_bridges_gaps():
    plan = resampling_plan([10, 11, 14, 15], onset=10, offset=15, count=6)
    assert [(blend.lower, blend.upper) for blend in plan] == [(10, 10), (11, 11), (11, 14), (11, 14), (14, 14),
                                                              (15, 15)]
    assert [blend.weight for blend in plan] == pytest.approx([0, 0, 1 / 3, 2 / 3, 0, 0])
    with pytest.raises(ValueError, match="offset frame 16"):
        resampling_plan([10, 11], onset=10, offset=16, count=3)
    with pytest.raises(ValueError, match="offset after the onset"):
        resampling_plan([10], onset=10, offset=10, count=3)


def test_sequence_interpolates_linearly_between_the_onset_and_offset_frames():
    clip = uniform_clip([0, 1, 2, 3, 4, 5])
    sequence = build_sequence(clip, InputSpec("sequence", 4, ("r", "g", "b"), length=11))
    assert sequence.shape == (3, 11, 4, 4) and sequence.dtype == np.float32
    expected = 10 * np.linspace(0, 5, 11)  # frame values are 10 × the frame number
    np.testing.assert_allclose(sequence[0, :, 0, 0], expected, atol=1e-4)
    assert (sequence[:, 0] == 0).all() and (sequence[:, -1] == 50).all()


def test_sequence_reads_only_the_frames_its_blends_need():
    spec = InputSpec("sequence", 8, length=3)
    assert frames_read(spec, list(range(10, 31)), 10, 15, 30) == (10, 20, 30)
    steps = InputSpec("flow_sequence", 8, ("u",), length=2)
    assert frames_read(steps, list(range(10, 31)), 10, 15, 30) == (10, 20, 30)


# ------------------------------------------------------------------------------------------------ flow
def test_flow_of_a_known_shift_has_its_sign_and_a_pure_shift_has_no_strain():
    onset = texture()
    maps = flow_maps(onset, shifted(onset, 3, -2), ("u", "v", "strain", "magnitude", "angle"), SIDE, "dis")
    u, v, strain, magnitude, angle = (channel[MARGIN:-MARGIN, MARGIN:-MARGIN] for channel in maps)
    assert np.median(u) == pytest.approx(3, abs=0.25) and np.median(v) == pytest.approx(-2, abs=0.25)
    assert np.median(strain) < 0.05
    assert np.median(magnitude) == pytest.approx(math.hypot(3, 2), abs=0.3)
    assert np.median(angle) == pytest.approx(math.atan2(-2, 3), abs=0.1)


def test_flow_is_scaled_per_channel_and_a_patch_moving_right_is_bright_in_u():
    onset = texture(1)
    apex = onset.copy()
    apex[80:140, 83:143] = onset[80:140, 80:140]  # a patch moves 3 px to the right
    clip = ClipFrames({0: rgb(onset), 1: rgb(apex)}, onset=0, apex=1, offset=1)
    flow = build_flow(clip, InputSpec("flow", 28, ("u", "grey", "v")), "dis")
    assert flow.shape == (3, 28, 28) and flow.dtype == np.float32
    assert flow.reshape(3, -1).min(axis=1) == pytest.approx([0, 0, 0])
    assert flow.reshape(3, -1).max(axis=1) == pytest.approx([255, 255, 255])
    u = flow[0]
    inside, outside = u[12:16, 12:16].mean(), np.concatenate([u[:5].ravel(), u[-5:].ravel()]).mean()
    assert inside > outside + 60


def test_flow_matches_ststnets_flow_features_at_the_working_size():
    onset, apex = rgb(texture(2)), rgb(shifted(texture(2), 2, 1))
    clip = ClipFrames({0: onset, 1: apex}, onset=0, apex=1, offset=1)
    ours = build_flow(clip, InputSpec("flow", 28, ("u", "v", "strain")), "dis")
    theirs = flow_features(onset, apex, size=28, method="dis").transpose(2, 0, 1)
    np.testing.assert_allclose(ours, theirs, atol=0.51)


def test_scale_channels_leaves_a_constant_channel_at_zero():
    maps = np.stack([np.full((2, 3, 3), 7.0), np.arange(18.0).reshape(2, 3, 3)], axis=1)  # (T=2, C=2, 3, 3)
    scaled = scale_channels(maps, axis=1)
    assert (scaled[:, 0] == 0).all()
    assert scaled[:, 1].min() == 0 and scaled[:, 1].max() == 255 and scaled[1, 1, 2, 2] == 255


def test_flow_sequence_holds_one_flow_per_consecutive_resampled_frame():
    clip = moving_clip(5, dx=2, dy=0)
    spec = InputSpec("flow_sequence", 16, ("u", "v", "magnitude", "strain", "grey"), length=4)
    steps = build_flow_sequence(clip, spec, "dis")
    assert steps.shape == (4, 5, 16, 16) and steps.dtype == np.float32
    per_channel = steps.transpose(1, 0, 2, 3).reshape(5, -1)
    assert (per_channel.min(axis=1) >= 0).all() and (per_channel.max(axis=1) <= 255).all()
    assert per_channel[4].max() == pytest.approx(255)  # the grey channel spans its range over the steps


def test_flow_cells_are_right_aligned_and_zero_padded_at_the_front():
    clip = moving_clip(4, dx=0, dy=2)  # 3 steps of downward motion
    cells = build_flow_cells(clip, InputSpec("flow_cells", 4, ("angle", "magnitude"), length=6), "dis")
    assert cells.shape == (6, 2, 4, 4)
    assert (cells[:3] == 0).all() and cells[3:].max() > 0


def test_flow_cells_angle_is_the_direction_of_the_mean_flow_in_each_cell():
    onset = texture(3)
    for (dx, dy), direction in (((2, 0), 0.0), ((0, 2), math.pi / 2), ((-2, 0), math.pi)):
        angle, magnitude = flow_maps(onset, shifted(onset, dx, dy), ("angle", "magnitude"), 4, "dis")
        inner = angle[1:3, 1:3]
        assert np.abs(np.angle(np.exp(1j * (inner - direction)))).max() < 0.15
        assert magnitude[1:3, 1:3] == pytest.approx(2, abs=0.3)


def test_flow_cells_keep_the_last_steps_of_a_longer_clip():
    assert cell_steps(list(range(0, 20)), onset=2, offset=17, length=4) == (13, 14, 15, 16, 17)
    assert cell_steps([3, 5, 9], onset=3, offset=9, length=64) == (3, 5, 9)
    with pytest.raises(ValueError, match="at least two frames"):
        cell_steps([3], onset=3, offset=9, length=4)


# ------------------------------------------------------------------------------------------------ regions
EYES = ((60.0, 80.0), (100.0, 80.0))  # eye distance d = 40
FACE = FaceDetection(box=(30.0, 40.0, 100.0, 120.0), left_eye=EYES[0], right_eye=EYES[1])


def painted_face() -> np.ndarray:
    """A black RGB frame with green eyes where FACE has them and a red mouth about one eye distance below."""
    frame = np.zeros((200, 160, 3), dtype=np.uint8)
    for centre in EYES:
        cv2.circle(frame, tuple(int(v) for v in centre), 6, (0, 255, 0), -1)
    cv2.rectangle(frame, (65, 118), (95, 126), (255, 0, 0), -1)  # mouth: rows 118–126 = my + 0.95…1.15·d
    return frame


def test_region_boxes_follow_the_eye_line_and_the_face_box():
    boxes = region_boxes(FACE, (200, 160, 3))
    assert boxes["eyes"] == (30, 62, 100, 32)  # rows 80 − 0.45·40 … 80 + 0.35·40, the face box's width
    assert boxes["mouth"] == (40, 100, 80, 40)  # rows 80 + 0.5·40 … 80 + 1.5·40, 80 % of the width
    edge = region_boxes(FaceDetection(box=(-20.0, 0.0, 100.0, 100.0), left_eye=(0.0, 5.0), right_eye=(40.0, 5.0)),
                        (200, 160, 3))
    assert edge["eyes"][:2] == (0, 0)  # clipped to the frame


def test_regions_crop_the_eyes_and_the_mouth_of_every_frame():
    frame = painted_face()
    clip = ClipFrames({0: frame, 1: frame, 2: frame}, onset=0, offset=2)
    eyes = build_regions(clip, InputSpec("regions", 16, ("r", "g", "b"), length=4, region="eyes"), FACE)
    mouth = build_regions(clip, InputSpec("regions", 16, ("r", "g", "b"), length=4, region="mouth"), FACE)
    assert eyes.shape == mouth.shape == (3, 4, 16, 16)
    assert eyes[1].max() > 100 and eyes[0].max() == 0  # green eyes, no red mouth
    assert mouth[0].max() > 100 and mouth[1].max() == 0  # the red mouth, no green eye
    np.testing.assert_array_equal(eyes[:, 0], eyes[:, -1])  # the box is fixed from the onset


def test_regions_on_a_real_face_frame_the_hand_located_eyes_and_mouth():
    cbook = pytest.importorskip("matplotlib.cbook")
    photo = read_frame(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    from micronbert.data.faces import FaceAligner, make_backend

    face, _ = FaceAligner(backend=make_backend("opencv")).detect(photo, "grace_hopper.jpg")
    boxes = region_boxes(face, photo.shape)
    # located by eye on the photo: pupils, mouth corners and centre, nose tip
    eyes_points = [(222, 190), (305, 187)]
    mouth_points = [(230, 276), (303, 276), (267, 277), (267, 247)]

    def inside(box, point):
        x, y, w, h = box
        return x <= point[0] < x + w and y <= point[1] < y + h

    assert all(inside(boxes["eyes"], point) for point in eyes_points)
    assert all(inside(boxes["mouth"], point) for point in mouth_points)
    assert not any(inside(boxes["eyes"], point) for point in mouth_points)
    assert not any(inside(boxes["mouth"], point) for point in eyes_points)
    hand_eyes = resize_square(photo, 32, (165, 160, 200, 55)).astype(float).ravel()
    clip = ClipFrames({0: photo, 1: photo}, onset=0, offset=1)
    crop = build_regions(clip, InputSpec("regions", 32, ("r", "g", "b"), length=2, region="eyes"), face)
    ours = crop[:, 0].transpose(1, 2, 0).ravel()
    hand_mouth = resize_square(photo, 32, (215, 235, 105, 60)).astype(float).ravel()
    assert np.corrcoef(ours, hand_eyes)[0, 1] > np.corrcoef(ours, hand_mouth)[0, 1] + 0.2
