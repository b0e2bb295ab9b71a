"""Pair sampling: δ in seconds per source, bad input, the decoded-frame cache, face crop, sampler."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import micronbert.data.pretrain_pairs as pairs_module
from micronbert.data.pretrain_pairs import (
    PairSampler,
    PreparedSource,
    PretrainDataConfig,
    PretrainPairDataset,
    build_pretrain_dataset,
    delta_frames,
    normalise_batch,
)
from micronbert.data.transforms import to_model_input
from micronbert.data.video import BadInputError


def write_numbered_frames(folder: Path, count: int, size: int = 16) -> list[Path]:
    """Frame k is uniformly grey level k, so a pair tells which frames it came from."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        paths.append(folder / f"img{k + 1}.png")
        cv2.imwrite(str(paths[-1]), np.full((size, size, 3), k, np.uint8))
    return paths


def source_of(frames: int, fps: float, valid: np.ndarray | None = None) -> PreparedSource:
    images = np.repeat(np.arange(frames, dtype=np.uint8)[:, None, None, None], 8, axis=1).repeat(8, 2).repeat(3, 3)
    return PreparedSource(f"s{frames}", fps, images, np.ones(frames, bool) if valid is None else valid)


def test_delta_in_seconds_becomes_frames_per_fps():
    assert delta_frames((0.02, 0.2), 200) == (4, 40)
    assert delta_frames((0.02, 0.2), 25) == (1, 5)
    assert delta_frames((0.02, 0.05), 10) == (1, 1)


def test_pairs_follow_each_sources_fps_and_are_reproducible():
    dataset = PretrainPairDataset([source_of(100, 200.0), source_of(30, 25.0)], (0.02, 0.2), seed=3)
    gaps = {0: [], 1: []}
    for index in range(len(dataset)):
        source, first, second = dataset.locate(index)
        gaps[source].append(second - first)
        frame_t, frame_d = dataset[index]
        assert int(frame_t[0, 0, 0]) == first and int(frame_d[0, 0, 0]) == second
    assert min(gaps[0]) >= 4 and max(gaps[0]) <= 40 and max(gaps[0]) > 20
    assert min(gaps[1]) >= 1 and max(gaps[1]) <= 5
    assert len(dataset) == (100 - 4) + (30 - 1)
    again = PretrainPairDataset([source_of(100, 200.0), source_of(30, 25.0)], (0.02, 0.2), seed=3)
    assert [again.locate(i) for i in range(len(again))] == [dataset.locate(i) for i in range(len(dataset))]
    again.set_epoch(1)
    assert [again.locate(i) for i in range(len(again))] != [dataset.locate(i) for i in range(len(dataset))]


def test_unusable_frames_never_enter_a_pair():
    valid = np.ones(60, bool)
    valid[[5, 6, 7, 30, 59]] = False
    dataset = PretrainPairDataset([source_of(60, 100.0, valid)], (0.02, 0.1), seed=0)
    used = {frame for i in range(len(dataset)) for frame in dataset.locate(i)[1:]}
    assert used.isdisjoint({5, 6, 7, 30, 59})


def test_a_dataset_without_any_pair_is_refused():
    with pytest.raises(ValueError, match="no frame pair"):
        PretrainPairDataset([source_of(3, 200.0)], (0.02, 0.2))


def test_build_reads_folders_and_reports_bad_input(tmp_path):
    write_numbered_frames(tmp_path / "good", 20)
    short = write_numbered_frames(tmp_path / "short", 2)
    broken = write_numbered_frames(tmp_path / "broken", 20)
    broken[4].write_bytes(b"")
    (tmp_path / "nothing").mkdir()
    config = PretrainDataConfig(sources=[str(tmp_path / n) for n in ("good", "short", "broken", "nothing")],
                            folder_fps=100, delta_s=(0.02, 0.05))
    dataset, report = build_pretrain_dataset(config, size=8)
    assert report.sources == [str(tmp_path / "good"), str(tmp_path / "broken")]
    problems = {issue.path: issue.problem for issue in report.issues}
    assert "shorter than the smallest δ" in problems[str(short[0].parent)]
    assert "empty" in problems[str(broken[4])]
    assert "no frames" in problems[str(tmp_path / "nothing")]
    assert all(4 not in dataset.locate(i)[1:] for i in range(len(dataset)) if dataset.locate(i)[0] == 1)
    assert dataset[0][0].shape == (8, 8, 3) and dataset[0][0].dtype == torch.uint8


@pytest.mark.parametrize("make_bad, named", [
    (lambda root: write_numbered_frames(root / "bad", 20)[3].write_bytes(b""), "img4.png"),
    (lambda root: write_numbered_frames(root / "bad", 1), "bad"),
    (lambda root: (root / "bad").mkdir(), "bad"),
])
def test_stop_policy_raises_naming_the_file(tmp_path, make_bad, named):
    write_numbered_frames(tmp_path / "good", 20)
    make_bad(tmp_path)
    config = PretrainDataConfig(sources=[str(tmp_path / "good"), str(tmp_path / "bad")], folder_fps=100,
                            on_bad_input="stop")
    with pytest.raises(BadInputError, match=named):
        build_pretrain_dataset(config, size=8)


def test_fps_zero_in_a_manifest_stops_the_run(tmp_path):
    write_numbered_frames(tmp_path / "a", 10)
    (tmp_path / "list.csv").write_text("path,fps\na,0\n")
    with pytest.raises(ValueError, match="list.csv, row 2"):
        build_pretrain_dataset(PretrainDataConfig(manifest=str(tmp_path / "list.csv")), size=8)


def test_nothing_usable_is_an_error_even_when_skipping(tmp_path):
    write_numbered_frames(tmp_path / "short", 1)
    with pytest.raises(ValueError, match="no usable source.*short"):
        build_pretrain_dataset(PretrainDataConfig(sources=[str(tmp_path / "short")], folder_fps=100), size=8)


def test_cache_is_reused_and_invalidated_by_changed_files(tmp_path, monkeypatch):
    paths = write_numbered_frames(tmp_path / "clip", 12)
    paths[2].write_bytes(b"junk")
    config = PretrainDataConfig(sources=[str(tmp_path / "clip")], folder_fps=100, cache_dir=str(tmp_path / "cache"))
    first, first_report = build_pretrain_dataset(config, size=8)

    def no_decoding(spec):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(pairs_module, "decode_frames", no_decoding)
    second, second_report = build_pretrain_dataset(config, size=8)
    assert isinstance(second.sources[0].frames, np.memmap)
    assert np.array_equal(second.sources[0].frames, first.sources[0].frames)
    assert [i.path for i in second_report.issues] == [str(paths[2])]
    assert all(torch.equal(a, b) for a, b in zip(first[7], second[7]))
    cv2.imwrite(str(paths[2]), np.full((16, 16, 3), 2, np.uint8))
    with pytest.raises(AssertionError, match="cache should have been used"):
        build_pretrain_dataset(config, size=8)
    assert not list((tmp_path / "cache").glob(".*tmp"))


@pytest.mark.parametrize("damage", ["index", "frames"])
def test_damaged_cache_entry_is_decoded_again(tmp_path, damage):
    write_numbered_frames(tmp_path / "clip", 12)
    config = PretrainDataConfig(sources=[str(tmp_path / "clip")], folder_fps=100, cache_dir=str(tmp_path / "cache"))
    first, _ = build_pretrain_dataset(config, size=8)
    expected = np.array(first.sources[0].frames)
    del first  # its frames are mapped from the file damaged below
    suffix = ".json" if damage == "index" else ".u8"
    [entry] = (tmp_path / "cache").glob(f"*{suffix}")
    entry.write_bytes(entry.read_bytes()[:10])
    second, _ = build_pretrain_dataset(config, size=8)
    assert np.array_equal(np.asarray(second.sources[0].frames), expected)
    assert entry.stat().st_size > 10


def test_face_crop_hook_crops_every_frame_of_a_source_to_one_box(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    for k in range(6):
        image = np.zeros((20, 40, 3), np.uint8)
        image[:, :20] = (0, 0, 200)       # BGR: red on the left
        image[:, 20:] = (200, 0, 0)       # blue on the right
        cv2.imwrite(str(folder / f"f{k}.png"), image)
    calls = []

    def left_half(frame):
        calls.append(frame.shape)
        return (0, 0, 20, 20)

    config = PretrainDataConfig(sources=[str(folder)], folder_fps=50, delta_s=(0.02, 0.04))
    dataset, _ = build_pretrain_dataset(config, size=8, cropper=left_half)
    assert calls == [(20, 40, 3)]
    frames = dataset.sources[0].frames
    assert frames.shape == (6, 8, 8, 3) and (frames[..., 0] == 200).all() and (frames[..., 2] == 0).all()
    centre, _ = build_pretrain_dataset(config, size=8)
    assert (centre.sources[0].frames[:, :, :4, 0] == 200).all() and (centre.sources[0].frames[:, :, 4:, 2] == 200).all()


def test_sampler_splits_global_batches_over_ranks_and_resumes():
    single = list(PairSampler(50, global_batch=8, seed=1))
    ranks = [list(PairSampler(50, global_batch=8, rank=r, world_size=2, seed=1)) for r in range(2)]
    assert len(single) == 48 and len(set(single)) == 48
    for batch in range(6):
        assert single[8 * batch:8 * batch + 8] == ranks[0][4 * batch:4 * batch + 4] + ranks[1][4 * batch:4 * batch + 4]
    resumed = PairSampler(50, global_batch=8, seed=1)
    resumed.set_position(0, 4)
    assert list(resumed) == single[32:] and len(resumed) == 16
    resumed.set_position(1, 0)
    assert list(resumed) != single
    with pytest.raises(ValueError, match="multiple"):
        PairSampler(50, global_batch=7, world_size=2)
    with pytest.raises(ValueError, match="fewer than one global batch"):
        PairSampler(5, global_batch=8)


def test_normalise_batch_matches_the_model_input_transform():
    images = torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8)
    assert torch.allclose(normalise_batch(images, "cpu"), to_model_input(images.numpy()), atol=1e-6)
    with pytest.raises(ValueError, match="uint8"):
        normalise_batch(images.float(), "cpu")


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="delta_s"):
        PretrainDataConfig(sources=["x"], delta_s=(0.2, 0.1))
    with pytest.raises(ValueError, match="on_bad_input"):
        PretrainDataConfig(sources=["x"], on_bad_input="ignore")
    with pytest.raises(ValueError, match="sources"):
        PretrainDataConfig()
