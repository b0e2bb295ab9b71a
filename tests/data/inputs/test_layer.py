"""The input layer: every usable row's inputs, computed once per sample and spec and cached on disk."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from micronbert.data.faces import FaceDetection
from micronbert.data.frames import read_frame
from micronbert.data.inputs import builders, layer
from micronbert.data.inputs.builders import output_shape, resolve_flow_method
from micronbert.data.inputs.cache import default_cache_dir
from micronbert.data.inputs.layer import build_inputs
from micronbert.data.inputs.spec import InputSpec
from micronbert.data.labelled_pairs import SampleError
from micronbert.data.synthetic import SynthConfig, write_synthetic_dataset
from micronbert.data.table import make_table
from micronbert.datasets import load

ALL_FRAME_KINDS = (
    InputSpec("pair", 16),
    InputSpec("apex", 16, ("r", "g", "b")),
    InputSpec("flow", 8, ("u", "v", "strain")),
    InputSpec("sequence", 8, length=4),
    InputSpec("flow_sequence", 8, ("u", "v", "magnitude", "strain"), length=3),
    InputSpec("flow_cells", 4, ("angle", "magnitude"), length=5),
    InputSpec("regions", 8, length=3, region="eyes"),
    InputSpec("regions", 8, length=3, region="mouth"),
)


@dataclass
class FixedFace:
    """A face backend that finds the given face (or none) in every frame."""

    detection: FaceDetection | None
    name: str = "fixed"

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        return [] if self.detection is None else [self.detection]


SYNTHETIC_FACE = FixedFace(FaceDetection(box=(8.0, 8.0, 48.0, 48.0), left_eye=(22.0, 26.0), right_eye=(42.0, 26.0)))


@pytest.fixture(scope="module")
def synthetic_table(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """Four synthetic CASME II-like clips of 64×64 frames, read by the CASME II reader."""
    folder = tmp_path_factory.mktemp("synthetic")
    dataset = write_synthetic_dataset(folder / "data", SynthConfig(
        subjects=2, clips_per_subject=2, size=64, unlabeled_videos=0, write_mp4=False, duration_s=(0.05, 0.1)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load("casme2", dataset.casme2_root, scheme="casme2-5class")


def texture(seed: int, side: int = 48) -> np.ndarray:
    noise = (np.random.default_rng(seed).random((side, side, 3)) * 255).astype(np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 1.5)


def write_clip(folder: Path, count: int, seed: int = 0, first: int = 1) -> list[str]:
    """``count`` PNG frames ``img<n>.png`` (lossless) numbered from ``first``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        path = folder / f"img{first + k}.png"
        cv2.imwrite(str(path), texture(seed + k))
        paths.append(str(path))
    return paths


def row(clip: str, frames: list[str], onset: int | None, apex: int | None, offset: int | None,
        **extra: object) -> dict[str, object]:
    return {"dataset": "casme2", "subject": "casme2/sub01", "clip": clip, "frames": frames, "onset": onset,
            "apex": apex, "offset": offset, "emotion": "happiness", "label": 0,
            "apex_source": None if apex is None else "annotated", **extra}


def small_table(tmp_path: Path, clips: int = 2) -> pd.DataFrame:
    """``clips`` clips of 5 PNG frames (1…5, apex 3)."""
    return make_table([row(f"EP0{index}", write_clip(tmp_path / f"EP0{index}", 5, seed=10 * index), 1, 3, 5)
                       for index in range(clips)])


def counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[tuple]:
    """Count the calls of ``layer.<name>`` (arguments recorded)."""
    calls: list[tuple] = []
    original = getattr(layer, name)

    def wrapper(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(layer, name, wrapper)
    return calls


# ------------------------------------------------------------------------------------------------ layouts
def test_every_kind_has_its_layout_on_synthetic_casme2(synthetic_table: pd.DataFrame, tmp_path: Path):
    batch = build_inputs(synthetic_table, ALL_FRAME_KINDS, cache_dir=tmp_path, progress=True,
                         face_backend=SYNTHETIC_FACE)
    count = len(synthetic_table)
    assert len(batch) == count and batch.rows.tolist() == list(range(count)) and not batch.skipped
    assert batch.flow_method == resolve_flow_method("auto")
    for spec, tensor in zip(ALL_FRAME_KINDS, batch.tensors):
        assert tensor.dtype == torch.float32 and tuple(tensor.shape) == (count, *output_shape(spec))
        assert 0 <= tensor.min() and tensor.max() <= 255
    assert batch.stats.computed == count * len(ALL_FRAME_KINDS) and batch.stats.cached == 0
    assert len(list(tmp_path.rglob("*.safetensors"))) == count * len(ALL_FRAME_KINDS)
    assert batch.keys[0].startswith("casme2 casme2/sub01")


def test_the_sequence_starts_at_the_onset_and_ends_at_the_offset_frame(synthetic_table: pd.DataFrame,
                                                                        tmp_path: Path):
    first = synthetic_table.iloc[[0]].reset_index(drop=True)
    spec = InputSpec("sequence", 16, ("r", "g", "b"), length=5)
    batch = build_inputs(first, (spec, InputSpec("pair", 16, ("r", "g", "b"))), cache_dir=tmp_path)
    sequence, pair = batch.tensors
    np.testing.assert_array_equal(sequence[0, :, 0].numpy(), pair[0, :3].numpy())  # onset
    offset = builders.image_channels(read_frame(first.frames[0][-1]), spec.channels, 16)
    np.testing.assert_array_equal(sequence[0, :, -1].numpy(), offset)


# ------------------------------------------------------------------------------------------------ cache
def test_a_second_call_reads_everything_from_the_cache(synthetic_table: pd.DataFrame, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch):
    first = build_inputs(synthetic_table, ALL_FRAME_KINDS, cache_dir=tmp_path, face_backend=SYNTHETIC_FACE)
    computed = counting(monkeypatch, "compute_input")
    second = build_inputs(synthetic_table, ALL_FRAME_KINDS, cache_dir=tmp_path, face_backend=SYNTHETIC_FACE)
    assert computed == []
    assert second.stats.computed == 0 and second.stats.cached == len(synthetic_table) * len(ALL_FRAME_KINDS)
    for before, after in zip(first.tensors, second.tensors):
        torch.testing.assert_close(before, after, rtol=0, atol=0)


def test_another_method_reading_the_same_input_shares_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    table = small_table(tmp_path / "frames")
    apex = InputSpec("apex", 16)
    build_inputs(table, (apex, InputSpec("flow", 8, ("u", "v"))), flow_method="dis", cache_dir=tmp_path / "cache")
    computed = counting(monkeypatch, "compute_input")
    other = build_inputs(table, (InputSpec("flow", 8, ("u", "v")), apex, InputSpec("pair", 8)), flow_method="dis",
                         cache_dir=tmp_path / "cache")
    assert [args[0].kind for args in computed] == ["pair", "pair"]
    assert (other.stats.cached, other.stats.computed) == (4, 2)


def test_flow_inputs_are_keyed_by_the_flow_method_and_the_others_are_not(tmp_path: Path):
    table = small_table(tmp_path / "frames", clips=1)
    specs = (InputSpec("apex", 16), InputSpec("flow", 8, ("u", "v")))
    dis = build_inputs(table, specs, flow_method="dis", cache_dir=tmp_path / "cache")
    farneback = build_inputs(table, specs, flow_method="farneback", cache_dir=tmp_path / "cache")
    assert (dis.flow_method, farneback.flow_method) == ("dis", "farneback")
    assert (farneback.stats.cached, farneback.stats.computed) == (1, 1)


def test_frames_are_read_once_per_sample_for_all_specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    table = small_table(tmp_path / "frames")
    reads = counting(monkeypatch, "read_frame")
    specs = (InputSpec("pair", 8), InputSpec("apex", 8), InputSpec("flow", 8, ("u",)), InputSpec("sequence", 8,
                                                                                                   length=5))
    build_inputs(table, specs, flow_method="dis", cache_dir=tmp_path / "cache")
    paths = [str(args[0]) for args in reads]
    assert len(paths) == len(set(paths)) == 2 * 5  # every frame of both clips, each once


def test_changing_a_frames_pixels_recomputes_only_the_inputs_that_read_it(tmp_path: Path):
    table = small_table(tmp_path / "frames")
    specs = (InputSpec("apex", 16), InputSpec("sequence", 8, length=2))  # the sequence reads onset and offset
    build_inputs(table, specs, cache_dir=tmp_path / "cache")
    apex_file = Path(table.frames[0][2])
    image = cv2.imread(str(apex_file))
    image[0, 0] = 255 - image[0, 0]
    cv2.imwrite(str(apex_file), image)
    again = build_inputs(table, specs, cache_dir=tmp_path / "cache")
    assert (again.stats.computed, again.stats.cached) == (1, 3)


def test_a_damaged_cache_entry_is_recomputed(tmp_path: Path):
    table = small_table(tmp_path / "frames", clips=1)
    build_inputs(table, (InputSpec("apex", 16),), cache_dir=tmp_path / "cache")
    (entry,) = (tmp_path / "cache").rglob("*.safetensors")
    entry.write_bytes(b"not a safetensors file")
    again = build_inputs(table, (InputSpec("apex", 16),), cache_dir=tmp_path / "cache")
    assert (again.stats.computed, again.stats.cached) == (1, 0)


def test_the_default_cache_lives_under_xdg_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "micronbert" / "inputs"
    table = small_table(tmp_path / "frames", clips=1)
    batch = build_inputs(table, (InputSpec("apex", 8),))
    assert batch.cache_dir == default_cache_dir()
    assert len(list(default_cache_dir().rglob("*.safetensors"))) == 1


# ------------------------------------------------------------------------------------------------ precomputed
def test_precomputed_images_are_read_from_the_image_column(tmp_path: Path):
    images = []
    for index in range(2):
        pixels = np.zeros((28, 28, 3), dtype=np.uint8)
        pixels[:, :, index] = 200  # file stored as RGB: red, then green
        path = tmp_path / f"s{index}.png"
        cv2.imwrite(str(path), pixels[..., ::-1])
        images.append(str(path))
    table = make_table([row(f"EP0{index}", [], None, None, None, image=path) for index, path in enumerate(images)])
    batch = build_inputs(table, (InputSpec("precomputed", 14, ("r", "g", "b")),), cache_dir=tmp_path / "cache")
    (tensor,) = batch.tensors
    assert tuple(tensor.shape) == (2, 3, 14, 14) and batch.flow_method is None
    assert (tensor[0, 0] == 200).all() and (tensor[0, 1:] == 0).all() and (tensor[1, 1] == 200).all()


def test_a_precomputed_input_needs_the_image_column_and_its_files(tmp_path: Path):
    table = small_table(tmp_path / "frames", clips=1)
    with pytest.raises(ValueError, match="image"):
        build_inputs(table, (InputSpec("precomputed", 14),), cache_dir=tmp_path / "cache")
    table = make_table([row("EP00", [], None, None, None, image=str(tmp_path / "missing.png"))])
    with pytest.raises(SampleError, match="missing.png"):
        build_inputs(table, (InputSpec("precomputed", 14),), cache_dir=tmp_path / "cache")


# ------------------------------------------------------------------------------------------------ bad rows
def test_bad_rows_are_named_or_skipped(tmp_path: Path):
    good = write_clip(tmp_path / "good", 5)
    gone = write_clip(tmp_path / "gone", 5)
    Path(gone[2]).unlink()
    odd = write_clip(tmp_path / "odd", 5)
    cv2.imwrite(odd[4], np.zeros((30, 40, 3), dtype=np.uint8))
    table = make_table([
        row("good", good, 1, 3, 5),
        row("late", good, 4, 3, 5),
        row("gone", gone, 1, 3, 5),
        row("odd", odd, 1, 3, 5),
        row("empty", [], 1, 3, 5),
    ])
    specs = (InputSpec("apex", 8), InputSpec("sequence", 8, length=3))
    with pytest.raises(SampleError, match="late @4: onset 4 is after apex 3"):
        build_inputs(table, specs, cache_dir=tmp_path / "cache")
    batch = build_inputs(table, specs, cache_dir=tmp_path / "cache", skip_bad=True)
    assert batch.rows.tolist() == [0] and tuple(batch.tensors[1].shape) == (1, 1, 3, 8, 8)
    reasons = dict(batch.skipped)
    assert [key.split()[2] for key in reasons] == ["late", "gone", "odd", "empty"]
    assert list(reasons.values())[1].endswith(f"frame file not found: {gone[2]}")
    assert "differ in size" in list(reasons.values())[2]
    assert "lists no frames" in list(reasons.values())[3]


def test_a_sequence_needs_its_onset_and_offset_frames(tmp_path: Path):
    frames = write_clip(tmp_path / "clip", 4, first=2)  # frames 2…5
    table = make_table([row("short", frames, 2, 3, 3), row("cut", frames[:-1], 2, 3, 5)])
    batch = build_inputs(table, (InputSpec("sequence", 8, length=3),), cache_dir=tmp_path / "cache", skip_bad=True)
    reasons = [reason for _, reason in batch.skipped]
    assert batch.rows.tolist() == [0]
    assert "offset frame 5 is not among the clip's frames" in reasons[0]


def test_regions_without_a_face_name_the_sample(tmp_path: Path):
    table = small_table(tmp_path / "frames", clips=1)
    with pytest.raises(SampleError, match="EP00 @1: regions input: .*no face found"):
        build_inputs(table, (InputSpec("regions", 8, length=3, region="eyes"),), cache_dir=tmp_path / "cache",
                     face_backend=FixedFace(None))


def test_specs_and_flow_method_are_checked(tmp_path: Path):
    table = small_table(tmp_path / "frames", clips=1)
    with pytest.raises(ValueError, match="no input specs"):
        build_inputs(table, (), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown optical-flow method"):
        build_inputs(table, (InputSpec("apex", 8),), flow_method="fast", cache_dir=tmp_path)


def test_an_empty_table_gives_empty_tensors_of_the_right_layout(tmp_path: Path):
    batch = build_inputs(make_table([]), (InputSpec("flow_sequence", 8, ("u", "v"), length=3),), cache_dir=tmp_path)
    assert len(batch) == 0 and tuple(batch.tensors[0].shape) == (0, 3, 2, 8, 8)
