"""Tests of the synthetic micro-expression generator (micronbert.data.synthetic)."""
from __future__ import annotations

import dataclasses
import json
import re

import av
import cv2
import numpy as np
import openpyxl
import pandas as pd
import pytest

from micronbert.data.synthetic import (
    ACTION_UNITS,
    CLASS_AU_COMBINATIONS,
    CLASSES,
    CODING_COLUMNS,
    FrameTiming,
    MicroExpression,
    NuisanceConfig,
    PhotoFace,
    Scene,
    SynthConfig,
    SyntheticFace,
    casme2_emotion,
    jpeg_roundtrip,
    make_pair,
    read_clip_masks,
    render_clip,
    sample_expression,
    scene_from_ground_truth,
    write_synthetic_dataset,
)

REQUIRED_AUS = {1, 2, 4, 6, 9, 12, 14, 15, 17}
CASME2_COLUMNS = ["Subject", "Filename", "Unnamed: 2", "OnsetFrame", "ApexFrame", "OffsetFrame", "Unnamed: 6",
                  "Action Units", "Estimated Emotion"]
STILL_HEAD = dataclasses.replace(NuisanceConfig(), head_translation=0.0, head_rotation_deg=0.0)


def _expression(objective_class: str = "positive", seed: int = 0, fps: float = 200, onset: int = 4,
                amplitude: tuple[float, float] = (0.003, 0.02)) -> MicroExpression:
    return sample_expression(np.random.default_rng(seed), objective_class, fps, onset, amplitude)


def _frame_difference(pair) -> np.ndarray:
    return np.abs(pair.frame_a.astype(np.int32) - pair.frame_b.astype(np.int32)).sum(-1)


# --- faces -------------------------------------------------------------------------------------------------

def test_face_is_deterministic_from_seed():
    a, b = SyntheticFace.sample(11), SyntheticFace.sample(11)
    assert a == b
    layers_a, layers_b = a.render_layers(48), b.render_layers(48)
    np.testing.assert_array_equal(layers_a.skin_rgb, layers_b.skin_rgb)
    np.testing.assert_array_equal(layers_a.accessory_alpha, layers_b.accessory_alpha)


def test_identities_vary_in_shape_tone_features_and_accessories():
    faces = [SyntheticFace.sample(seed) for seed in range(24)]
    for field in ("width", "height_ratio", "eye_dx", "mouth_y", "nose_half_width", "texture_strength"):
        values = [getattr(f, field) for f in faces]
        assert len(set(values)) == len(faces), field
    tones = np.array([np.mean(f.skin) for f in faces])
    assert tones.max() - tones.min() > 0.3
    assert 0 < sum(f.glasses for f in faces) < len(faces)
    assert 0 < sum(f.hair for f in faces) < len(faces)
    images = [f.render_layers(32).skin_rgb for f in faces[:4]]
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            assert np.abs(images[i] - images[j]).mean() > 0.02


def test_face_draws_consistently_at_any_resolution():
    face = SyntheticFace.sample(3)
    small, large = face.render_layers(48), face.render_layers(192)
    assert small.skin_rgb.shape == (48, 48, 3) and large.skin_alpha.shape == (192, 192)
    shrunk = cv2.resize(large.skin_rgb, (48, 48), interpolation=cv2.INTER_AREA)
    assert np.abs(shrunk - small.skin_rgb).mean() < 0.03
    assert face.render_layers(33).skin_alpha.shape == (33, 33)


def test_face_rejects_bad_seed_and_size():
    with pytest.raises(ValueError, match="seed"):
        SyntheticFace.sample(-1)
    with pytest.raises(ValueError, match="size"):
        SyntheticFace.sample(1).render_layers(8)


# --- action units, classes, timing ----------------------------------------------------------------------------

def test_required_action_units_are_defined():
    assert REQUIRED_AUS <= set(ACTION_UNITS)


def test_classes_are_au_combinations_in_the_spirit_of_casme2():
    assert (6, 12) in CLASS_AU_COMBINATIONS["positive"]
    assert CLASS_AU_COMBINATIONS["surprise"] == ((1, 2),)
    negative_aus = {au for combo in CLASS_AU_COMBINATIONS["negative"] for au in combo}
    assert {4, 9, 14, 15, 17} <= negative_aus
    assert all(len(combo) == 1 for combo in CLASS_AU_COMBINATIONS["others"])
    assert casme2_emotion("positive", (6, 12)) == "happiness"
    assert casme2_emotion("surprise", (1, 2)) == "surprise"
    assert casme2_emotion("negative", (4, 9)) == "disgust"
    assert casme2_emotion("negative", (15, 17)) == "repression"
    assert casme2_emotion("others", (7,)) == "others"
    for objective_class in CLASSES:
        for seed in range(10):
            expression = _expression(objective_class, seed)
            assert expression.aus in CLASS_AU_COMBINATIONS[objective_class]
            assert expression.objective_class == objective_class


@pytest.mark.parametrize("fps", [30, 90, 200])
def test_timing_is_onset_apex_offset_within_0_1_to_0_5_s(fps):
    for seed in range(40):
        timing = _expression("negative", seed, fps=fps, onset=7).frame_timing(fps)
        assert timing.onset == 7
        assert timing.onset < timing.apex < timing.offset
        duration = (timing.offset - timing.onset) / fps
        assert 0.1 - 1e-9 <= duration <= 0.5 + 1e-9


def test_intensity_rises_to_one_at_apex_and_falls_back_to_zero():
    timing = FrameTiming(10, 20, 40)
    profile = timing.intensity(np.arange(0, 50))
    assert profile[10] == 0 and profile[20] == pytest.approx(1.0) and profile[40] == pytest.approx(0.0)
    assert np.all(np.diff(profile[10:21]) > 0) and np.all(np.diff(profile[20:41]) < 0)
    assert np.all(profile[:10] == 0) and np.all(profile[41:] == 0)


def test_expression_validates_its_inputs():
    with pytest.raises(ValueError, match="unknown action units"):
        MicroExpression((3,), 0.01, 0.0, 0.1, 0.2)
    with pytest.raises(ValueError, match="onset < apex < offset"):
        MicroExpression((12,), 0.01, 0.2, 0.1, 0.3)
    with pytest.raises(ValueError, match="no room"):
        sample_expression(np.random.default_rng(0), "positive", 10, 0, duration_s=(0.1, 0.15))


# --- rendering -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("objective_class", CLASSES)
def test_apex_displacement_is_the_asked_fraction_of_face_width(objective_class):
    face = SyntheticFace.sample(5)
    expression = _expression(objective_class, seed=2, amplitude=(0.003, 0.02))
    timing = expression.frame_timing(200)
    pair = make_pair(face, expression, timing.onset, timing.apex, 200, 96, NuisanceConfig.none())
    fraction = pair.displacement_px.max() / (face.face_width * 96)
    assert 0.003 <= expression.amplitude <= 0.02
    assert fraction == pytest.approx(expression.amplitude, rel=0.05)
    assert pair.intensity_a == 0 and pair.intensity_b == pytest.approx(1.0)


@pytest.mark.parametrize("aus", [(1, 2), (4,), (6, 12), (9,), (14,), (15,), (17,)])
def test_expression_moves_pixels_only_inside_its_au_regions(aus):
    face = SyntheticFace.sample(8)
    expression = MicroExpression(aus, 0.02, 0.0, 0.1, 0.2)
    pair = make_pair(face, expression, 0, 20, 200, 128, NuisanceConfig.none())
    difference = _frame_difference(pair)
    assert difference.sum() > 0 and pair.au_mask.any()
    assert difference[pair.au_mask].sum() / difference.sum() > 0.9
    assert pair.au_mask.mean() < 0.2
    assert not pair.moving_background.any()


def test_regions_of_different_aus_sit_in_different_places():
    face = SyntheticFace.sample(9)

    def mask_centre(aus):
        pair = make_pair(face, MicroExpression(aus, 0.01, 0.0, 0.1, 0.2), 0, 20, 200, 64, NuisanceConfig.none())
        rows, _ = np.nonzero(pair.au_mask)
        return rows.mean()

    assert mask_centre((1, 2)) < mask_centre((9,)) < mask_centre((12,)) < mask_centre((17,))


def test_nuisances_change_background_but_not_the_au_mask():
    face = SyntheticFace.sample(4)
    expression = _expression("surprise", seed=1)
    timing = expression.frame_timing(200)
    clean = make_pair(face, expression, timing.onset, timing.apex, 200, 64, NuisanceConfig.none(), seed=3)
    noisy = make_pair(face, expression, timing.onset, timing.apex, 200, 64, STILL_HEAD, seed=3)
    moving = make_pair(face, expression, timing.onset, timing.apex, 200, 64, NuisanceConfig(), seed=3)
    np.testing.assert_array_equal(noisy.au_mask, clean.au_mask)
    np.testing.assert_allclose(noisy.displacement_px, clean.displacement_px, atol=1e-5)
    iou = (moving.au_mask & clean.au_mask).sum() / (moving.au_mask | clean.au_mask).sum()
    assert iou > 0.8
    assert not clean.moving_background.any()
    assert noisy.moving_background.any()
    assert not (noisy.moving_background & noisy.face_mask).any()
    clean_difference, noisy_difference = _frame_difference(clean), _frame_difference(noisy)
    assert clean_difference[~clean.face_mask].max() == 0
    assert clean_difference[clean.au_mask].sum() > 0.9 * clean_difference.sum()
    still_background = ~noisy.face_mask & ~noisy.moving_background
    assert noisy_difference[still_background].mean() > 0
    assert noisy_difference[noisy.moving_background].mean() > 5 * noisy_difference[still_background].mean()


def test_head_motion_moves_the_whole_face():
    face = SyntheticFace.sample(4)
    expression = _expression("others", seed=1)
    head_only = NuisanceConfig(head_translation=0.02, head_rotation_deg=2.0, flicker=0.0, sensor_noise=0.0,
                               jpeg_quality=None, background_motion=0.0)
    pair = make_pair(face, expression, 0, 100, 200, 64, head_only, seed=2)
    difference = _frame_difference(pair)
    edges = pair.face_mask & ~pair.au_mask
    assert difference[edges].mean() > 1
    assert not pair.moving_background.any()


def test_rendering_is_deterministic_and_frames_do_not_depend_on_the_clip():
    face = SyntheticFace.sample(6)
    expression = _expression("negative", seed=4, onset=3)
    first = render_clip(face, expression, 200, 30, 48, seed=9)
    second = render_clip(face, expression, 200, 30, 48, seed=9)
    np.testing.assert_array_equal(first.frames, second.frames)
    scene = Scene(face, [expression], 200, 48, NuisanceConfig(), seed=9)
    np.testing.assert_array_equal(scene.frame(17), first.frames[17])
    other_seed = render_clip(face, expression, 200, 30, 48, seed=10)
    assert np.abs(other_seed.frames.astype(int) - first.frames).mean() > 1


def test_render_clip_shapes_and_ground_truth():
    face = SyntheticFace.sample(2)
    expression = _expression("positive", seed=3, onset=5)
    timing = expression.frame_timing(200)
    clip = render_clip(face, expression, 200, 40, 64)
    assert clip.frames.shape == (40, 64, 64, 3) and clip.frames.dtype == np.uint8
    assert clip.displacement_px.shape == (40, 64, 64) and clip.moving_background.shape == (40, 64, 64)
    whole = render_clip(face, expression, 200, timing.offset + 3, 32)
    assert whole.reference_frame == timing.onset
    assert whole.au_mask.any()
    peaks = whole.displacement_px.max(axis=(1, 2))
    assert whole.frame_indices[int(np.argmax(peaks))] == timing.apex
    assert peaks[timing.onset] == 0 and peaks[timing.offset] == pytest.approx(0, abs=1e-6)
    np.testing.assert_allclose(whole.intensities[:, 0], timing.intensity(whole.frame_indices), atol=1e-6)


# --- configuration -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, message", [
    ({"subjects": 100}, "subjects"),
    ({"size": 63}, "even"),
    ({"classes": ("happy",)}, "classes"),
    ({"amplitude": (0.02, 0.01)}, "amplitude"),
    ({"fps": 10, "duration_s": (0.1, 0.15)}, "2 frames"),
    ({"nuisance_strength": -1.0}, "nuisance_strength"),
])
def test_config_rejects_bad_values(changes, message):
    with pytest.raises(ValueError, match=message):
        SynthConfig(**changes)


def test_config_round_trips_through_a_dict_and_rejects_unknown_keys():
    config = SynthConfig(seed=5, classes=("positive", "others"), amplitude=(0.01, 0.02))
    assert SynthConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown option"):
        SynthConfig.from_dict({"subject": 3})


# --- on-disk datasets ----------------------------------------------------------------------------------------

SMALL = SynthConfig(seed=1, subjects=2, clips_per_subject=4, size=32, fps=100, unlabeled_videos=1,
                    unlabeled_frames=150, expressions_per_second=4.0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("synth") / "out", SMALL)


def _frame_number(path) -> int:
    return int(re.search(r"(\d+)$", path.stem).group(1))


def test_coding_sheet_has_the_casme2_columns_with_two_blank_headers(dataset):
    assert dataset.coding_sheet.name == "CASME2-coding-20140508.xlsx"
    header = [cell.value for cell in next(openpyxl.load_workbook(dataset.coding_sheet).active.iter_rows())]
    assert header == list(CODING_COLUMNS)
    assert header[2] is None and header[6] is None
    sheet = pd.read_excel(dataset.coding_sheet, engine="openpyxl")
    assert sheet.columns.tolist() == CASME2_COLUMNS


def test_casme2_tree_reads_back_to_the_right_subjects_clips_and_labels(dataset):
    sheet = pd.read_excel(dataset.coding_sheet, engine="openpyxl", usecols=[0, 1, 3, 4, 5, 7, 8], dtype=str)
    truth = pd.read_csv(dataset.ground_truth_csv, dtype={"clip": str})
    assert len(sheet) == len(truth) == dataset.n_clips == SMALL.subjects * SMALL.clips_per_subject
    assert sorted(set(sheet["Subject"].astype(int))) == [1, 2]
    assert sheet["Filename"].str.fullmatch(r"EP\d{2}_\d{2}").all()
    for row, expected in zip(sheet.itertuples(index=False), truth.itertuples(index=False)):
        subject, clip, onset, apex, offset, aus, emotion = row
        assert (int(subject), clip) == (expected.subject, expected.clip)
        assert (int(onset), int(apex), int(offset)) == (expected.onset, expected.apex, expected.offset)
        assert int(onset) < int(apex) < int(offset)
        assert 0.1 - 1e-9 <= (int(offset) - int(onset)) / SMALL.fps <= 0.5 + 1e-9
        assert aus == expected.action_units
        assert emotion == expected.emotion == casme2_emotion(expected.objective_class,
                                                             [int(a) for a in aus.split("+")])
        frames = sorted((dataset.casme2_root / "Cropped" / f"sub{int(subject):02d}" / clip).glob("reg_img*.jpg"),
                        key=_frame_number)
        assert [_frame_number(p) for p in frames] == list(range(int(onset), int(offset) + 1))
        assert all(p.name == f"reg_img{_frame_number(p)}.jpg" for p in frames)
        assert cv2.imread(str(frames[0])).shape == (SMALL.size, SMALL.size, 3)
    assert set(truth["objective_class"]) == set(CLASSES)
    assert set(truth["emotion"]) <= {"happiness", "surprise", "disgust", "repression", "others"}


def test_ground_truth_rebuilds_the_scene_of_each_clip(dataset):
    truth = json.loads(dataset.ground_truth_json.read_text())
    clip = truth["clips"][0]
    scene = scene_from_ground_truth(truth, clip)
    path = dataset.casme2_root / "Cropped" / clip["subject_folder"] / clip["clip"] / f"reg_img{clip['apex']}.jpg"
    np.testing.assert_array_equal(cv2.imread(str(path))[..., ::-1],
                                  jpeg_roundtrip(scene.frame(clip["apex"]), truth["jpeg_quality"]))
    pair = scene.pair(clip["onset"], clip["apex"])
    for column, truth_mask in (("mask", pair.au_mask), ("face_mask", pair.face_mask)):
        mask = cv2.imread(str(dataset.casme2_root / clip[column]), cv2.IMREAD_GRAYSCALE) > 0
        np.testing.assert_array_equal(mask, truth_mask)


def test_read_clip_masks_gives_each_table_row_its_masks(dataset):
    truth = json.loads(dataset.ground_truth_json.read_text())
    table = pd.DataFrame({"subject": [f"casme2/{c['subject_folder']}" for c in truth["clips"][::-1]],
                          "clip": [c["clip"] for c in truth["clips"][::-1]]})
    au_masks = read_clip_masks(dataset.casme2_root, table, SMALL.size)
    face_masks = read_clip_masks(dataset.casme2_root, table, 2 * SMALL.size, "face_mask")
    last = scene_from_ground_truth(truth, truth["clips"][-1])
    timing = last.timings[0]
    pair = last.pair(timing.onset, timing.apex)
    np.testing.assert_array_equal(au_masks[0], pair.au_mask)
    assert face_masks[0].shape == (2 * SMALL.size,) * 2
    np.testing.assert_array_equal(face_masks[0][::2, ::2], pair.face_mask)
    with pytest.raises(ValueError, match="no 'eyes' column"):
        read_clip_masks(dataset.casme2_root, table, SMALL.size, "eyes")
    with pytest.raises(ValueError, match="no clip sub09/EP01_01"):
        read_clip_masks(dataset.casme2_root, pd.DataFrame({"subject": ["sub09"], "clip": ["EP01_01"]}), SMALL.size)


def test_unlabeled_videos_decode_to_the_right_frame_count_and_size(dataset):
    assert len(dataset.videos) == len(dataset.frame_folders) == 1
    with av.open(str(dataset.videos[0])) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(decoded) == SMALL.unlabeled_frames
    assert decoded[0].shape == (SMALL.size, SMALL.size, 3)
    jpegs = sorted(dataset.frame_folders[0].glob("img*.jpg"), key=_frame_number)
    assert [_frame_number(p) for p in jpegs] == list(range(1, SMALL.unlabeled_frames + 1))
    tenth = cv2.imread(str(jpegs[9]))[..., ::-1].astype(np.int32)
    assert np.abs(decoded[9].astype(np.int32) - tenth).mean() < 8
    truth = json.loads(dataset.unlabeled_ground_truth_json.read_text())
    events = truth["videos"][0]["events"]
    assert events
    for event in events:
        assert 1 <= event["onset"] < event["apex"] < event["offset"] <= SMALL.unlabeled_frames
    assert all(a["offset"] < b["onset"] for a, b in zip(events, events[1:]))


def test_unlabeled_video_files_are_the_same_bytes_on_every_run(tmp_path):
    config = SynthConfig(seed=3, subjects=0, unlabeled_videos=1, unlabeled_frames=60, size=160,
                         write_frame_folders=False)
    encodings = {write_synthetic_dataset(tmp_path / f"run{run}", config).videos[0].read_bytes() for run in range(4)}
    assert len(encodings) == 1


def test_parallel_workers_write_the_same_dataset_as_one_process(tmp_path):
    config = SynthConfig(seed=5, subjects=2, clips_per_subject=2, unlabeled_videos=2, unlabeled_frames=20, size=64)
    serial = write_synthetic_dataset(tmp_path / "serial", config)
    parallel = write_synthetic_dataset(tmp_path / "parallel", config, workers=2)

    def files(root):
        return {p.relative_to(root): p for p in root.rglob("*") if p.is_file()}

    serial_files, parallel_files = files(serial.root), files(parallel.root)
    assert serial_files.keys() == parallel_files.keys()
    assert len(serial_files) > 20
    sheet = serial.coding_sheet.relative_to(serial.root)  # openpyxl stamps the save time into the workbook
    for name, path in serial_files.items():
        if name != sheet:
            assert path.read_bytes() == parallel_files[name].read_bytes(), name
    cells = [list(openpyxl.load_workbook(d.coding_sheet).active.values) for d in (serial, parallel)]
    assert cells[0] == cells[1] and len(cells[0]) == 1 + 4


def test_writer_refuses_a_bad_worker_count(tmp_path):
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="workers must be a positive integer"):
            write_synthetic_dataset(tmp_path / "out", SMALL, workers=bad)
    assert not any(tmp_path.iterdir())


def test_writer_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        write_synthetic_dataset(tmp_path, SMALL)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


# --- user photos ---------------------------------------------------------------------------------------------

def _ibug_landmarks(face: SyntheticFace, size: int) -> np.ndarray:
    """68 iBUG-ordered points (pixels) traced on a procedural face, standing in for a landmark detector."""
    f = face
    brow_y = f.eye_y - f.brow_gap
    theta = np.linspace(0, np.pi, 17)
    jaw = np.stack([-np.cos(theta) * (1 - f.jaw_taper * np.sin(theta) ** 2),
                    f.eye_y + (f.height_ratio - f.eye_y) * np.sin(theta)], 1)
    brow_x = np.linspace(f.eye_dx + 0.8 * f.brow_half_length, f.eye_dx - 0.8 * f.brow_half_length, 5)
    brows = [(-x, brow_y) for x in brow_x] + [(x, brow_y) for x in brow_x[::-1]]
    nose = [(0.0, y) for y in np.linspace(f.eye_y, f.nose_y - 0.1, 4)]
    nose += [(x, f.nose_y) for x in np.linspace(-f.nose_half_width, f.nose_half_width, 5)]
    eyes = []
    for side in (-1, 1):
        w, h, cx = f.eye_half_width, f.eye_half_height, side * f.eye_dx
        ring = [(-w, 0), (-w / 3, -h), (w / 3, -h), (w, 0), (w / 3, h), (-w / 3, h)]
        if side == -1:
            ring = [(-dx, dy) for dx, dy in ring]
            ring = [ring[3], ring[2], ring[1], ring[0], ring[5], ring[4]]
        eyes += [(cx + dx, f.eye_y + dy) for dx, dy in ring]
    w, up, down = f.mouth_half_width, f.upper_lip, f.lower_lip
    outer = [(-w, 0), (-w * 0.6, -up * 0.8), (-w * 0.3, -up), (0, -up), (w * 0.3, -up), (w * 0.6, -up * 0.8),
             (w, 0), (w * 0.6, down * 0.8), (w * 0.3, down), (0, down), (-w * 0.3, down), (-w * 0.6, down * 0.8)]
    inner = [(-w * 0.8, 0), (-w * 0.3, 0), (0, 0), (w * 0.3, 0), (w * 0.8, 0), (w * 0.3, 0), (0, 0), (-w * 0.3, 0)]
    mouth = [(x, f.mouth_y + y) for x, y in outer + inner]
    units = np.concatenate([jaw, np.array(brows), np.array(nose), np.array(eyes), np.array(mouth)])
    half = f.width / 2
    return np.stack([f.centre_x + units[:, 0] * half, f.centre_y + units[:, 1] * half], 1) * size


def _photo_of(face: SyntheticFace, size: int) -> np.ndarray:
    layers = face.render_layers(size)
    image = layers.skin_rgb + (1 - layers.skin_alpha[..., None]) * 0.4
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def test_photo_face_anchors_follow_the_landmarks():
    face = SyntheticFace.sample(12)
    photo = PhotoFace(_photo_of(face, 160), _ibug_landmarks(face, 160))
    expected, found = face.anchors(), photo.anchors()
    assert set(found) == set(expected)
    for name in ("brow_inner_l", "brow_outer_r", "eye_outer_l", "nose_ala_r", "mouth_corner_l", "upper_lip"):
        assert np.hypot(*np.subtract(found[name], expected[name])) < 0.04 * face.width, name
    assert photo.face_width == pytest.approx(face.width, rel=0.02)


def test_photo_face_is_warped_by_micro_expressions():
    face = SyntheticFace.sample(12)
    image, landmarks = _photo_of(face, 160), _ibug_landmarks(face, 160)
    expression = MicroExpression((6, 12), 0.02, 0.0, 0.1, 0.2, objective_class="positive")
    whole = make_pair(PhotoFace(image, landmarks), expression, 0, 20, 200, 96, STILL_HEAD, seed=1)
    cutout = make_pair(PhotoFace(image, landmarks, cutout=True), expression, 0, 20, 200, 96, STILL_HEAD, seed=1)
    assert whole.au_mask.any() and whole.displacement_px.max() > 0.5
    assert whole.face_mask.all() and not whole.moving_background.any()
    assert cutout.moving_background.any()
    clean = make_pair(PhotoFace(image, landmarks), expression, 0, 20, 200, 96, NuisanceConfig.none())
    difference = _frame_difference(clean)
    assert difference[clean.au_mask].sum() > 0.9 * difference.sum() > 0


def test_photo_face_validates_its_inputs():
    face = SyntheticFace.sample(1)
    image, landmarks = _photo_of(face, 64), _ibug_landmarks(face, 64)
    with pytest.raises(ValueError, match="RGB uint8"):
        PhotoFace(image.astype(np.float32), landmarks)
    with pytest.raises(ValueError, match="68"):
        PhotoFace(image, landmarks[:5])
    with pytest.raises(ValueError, match="outside"):
        PhotoFace(image, landmarks + 100)
