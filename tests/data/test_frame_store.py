"""The chunked frame store: building (parallel, sharded, resumable), reading, verifying, pair items and windows."""
from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import micronbert.data.frame_store as frame_store
from micronbert.data.frame_store import (
    FrameStore,
    FrameStoreConfig,
    StorePairDataset,
    WindowedPairSampler,
    build_frame_store,
    verify,
)
from micronbert.data.pretrain_pairs import PairSampler, PretrainDataConfig, build_pretrain_dataset
from micronbert.data.transforms import resize_square
from micronbert.data.video import BadInputError, SourceSpec

SIZE = 16
FPS = 100.0


def write_source(folder: Path, count: int, seed: int, shape: tuple[int, int] = (SIZE, SIZE)) -> list[np.ndarray]:
    """A folder of ``count`` random RGB PNG frames; returns the frames as RGB arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = np.random.default_rng(seed).integers(0, 256, (count, *shape, 3), dtype=np.uint8)
    for k, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"img{k + 1}.png"), frame[..., ::-1])
    return list(frames)


@pytest.fixture()
def sources(tmp_path: Path) -> list[Path]:
    """Five frame folders of different lengths (each a shard of its own with ``sources_per_shard=2``)."""
    folders = [tmp_path / "src" / f"clip{k}" for k in range(5)]
    for k, (folder, count) in enumerate(zip(folders, (20, 12, 30, 9, 16))):
        write_source(folder, count, seed=k)
    return folders


def build(sources: list[Path], out: Path, **options: object) -> frame_store.StoreBuildReport:
    settings = {"folder_fps": FPS, "sources_per_shard": 2, "chunk_bytes": 4 * 3 * SIZE * SIZE} | options
    return build_frame_store(sources, out, SIZE, **settings)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_raw_frames_round_trip_exactly(sources, tmp_path):
    build(sources, tmp_path / "store")
    store = FrameStore.open(tmp_path / "store")
    for number, folder in enumerate(sources):
        expected = np.stack([cv2.imread(str(p))[..., ::-1] for p in sorted(folder.iterdir(),
                                                                            key=lambda p: int(p.stem[3:]))])
        assert np.array_equal(store.read(number, 0, len(expected)), expected)
        assert np.array_equal(store.read_frames(number, [5, 1, 5, 2], max_gap=2), expected[[5, 1, 5, 2]])


def test_non_square_frames_are_centre_cropped_as_pretraining_does(tmp_path):
    frames = write_source(tmp_path / "wide", 6, seed=9, shape=(SIZE, SIZE + 8))
    build([tmp_path / "wide"], tmp_path / "store")
    stored = FrameStore.open(tmp_path / "store").read(0, 0, 6)
    assert np.array_equal(stored, np.stack([f[:, 4:4 + SIZE] for f in frames]))


def test_index_and_manifest_describe_every_source(sources, tmp_path):
    (sources[1] / "img4.png").write_bytes(b"")
    report = build(sources + [tmp_path / "missing"], tmp_path / "store")
    assert [i.path for i in report.issues] == [str(tmp_path / "missing"), str(sources[1] / "img4.png")]
    store = FrameStore.open(tmp_path / "store")
    manifest = store.manifest()
    assert manifest["size"] == SIZE and manifest["fmt"] == "raw" and manifest["frames"] == 20 + 12 + 30 + 9 + 16
    assert [s["path"] for s in manifest["sources"]] == [str(s) for s in sources]
    assert [s["frames"] for s in manifest["sources"]] == [20, 12, 30, 9, 16]
    assert [s["valid_frames"] for s in manifest["sources"]] == [20, 11, 30, 9, 16]
    assert {s["fps"] for s in manifest["sources"]} == {FPS}
    assert all(len(s["digest"]) == 32 for s in manifest["sources"])
    assert store.source_paths() == [str(s) for s in sources]
    assert store.source_frames.tolist() == [20, 12, 30, 9, 16] and store.num_frames == 87
    assert np.flatnonzero(~store.valid(1)).tolist() == [3]
    assert sum(c["bytes"] for c in manifest["chunks"]) == 87 * 3 * SIZE * SIZE
    assert all((tmp_path / "store" / c["name"]).stat().st_size == c["bytes"] for c in manifest["chunks"])
    assert verify(tmp_path / "store", full=True) == len(manifest["chunks"])
    report = StorePairDataset(store, (0.02, 0.1)).report()
    assert report.sources == store.source_paths() and report.frames == 87
    assert [i.path for i in report.issues] == [str(sources[1] / "img4.png")]


def test_two_worker_processes_write_the_same_bytes_as_one(sources, tmp_path):
    build(sources, tmp_path / "one")
    report = build(sources, tmp_path / "two", workers=2)
    assert report.shards_built == [0, 1, 2] and report.frames == 87
    assert tree_bytes(tmp_path / "two") == tree_bytes(tmp_path / "one")


def test_two_ranks_each_build_their_shards_and_rank_zero_merges(sources, tmp_path):
    build(sources, tmp_path / "one")
    second = build(sources, tmp_path / "ranks", rank=1, world_size=2)
    assert second.shards_built == [1] and second.merged is False
    assert not (tmp_path / "ranks" / "manifest.json").exists()
    first = build(sources, tmp_path / "ranks", rank=0, world_size=2)
    assert first.merged and first.shards_built == [0, 2]
    assert tree_bytes(tmp_path / "ranks") == tree_bytes(tmp_path / "one")


def test_merge_names_the_shards_another_rank_has_not_built(sources, tmp_path):
    with pytest.raises(ValueError, match=r"shard\(s\) 1 not built"):
        build(sources, tmp_path / "store", rank=0, world_size=2, merge_timeout_s=0.0)


def test_an_interrupted_build_resumes_where_it_stopped(sources, tmp_path, monkeypatch):
    build_shard = frame_store._build_shard

    def crash_at_shard_one(job):
        if job.shard == 1:
            raise KeyboardInterrupt("killed")
        return build_shard(job)

    monkeypatch.setattr(frame_store, "_build_shard", crash_at_shard_one)
    with pytest.raises(KeyboardInterrupt):
        build(sources, tmp_path / "store")
    assert (tmp_path / "store" / "shards" / "00000.json").is_file()
    assert not (tmp_path / "store" / "manifest.json").exists()
    with pytest.raises(FileNotFoundError, match="not a finished frame store"):
        FrameStore.open(tmp_path / "store")
    monkeypatch.setattr(frame_store, "_build_shard", build_shard)
    report = build(sources, tmp_path / "store")
    assert report.shards_skipped == [0] and report.shards_built == [1, 2]
    build(sources, tmp_path / "fresh")
    assert tree_bytes(tmp_path / "store") == tree_bytes(tmp_path / "fresh")
    assert build(sources, tmp_path / "store").shards_built == []


def test_a_changed_source_is_rebuilt_and_only_its_shard(sources, tmp_path):
    build(sources, tmp_path / "store")
    new_frame = np.full((SIZE, SIZE, 3), 77, np.uint8)
    cv2.imwrite(str(sources[2] / "img3.png"), new_frame)
    stamp = (sources[2] / "img3.png").stat().st_mtime_ns + 10**9
    os.utime(sources[2] / "img3.png", ns=(stamp, stamp))
    report = build(sources, tmp_path / "store")
    assert report.shards_built == [1] and report.shards_skipped == [0, 2]
    assert np.array_equal(FrameStore.open(tmp_path / "store").read(2, 2, 3)[0], new_frame)
    assert verify(tmp_path / "store", full=True) > 0


def test_the_dataset_pickles_without_frames_and_reopens_in_a_worker(sources, tmp_path):
    build(sources, tmp_path / "store")
    dataset = StorePairDataset(FrameStore.open(tmp_path / "store"), (0.02, 0.1), seed=1)
    before = [dataset[i] for i in range(4)]
    assert dataset.store._files, "reading opened a chunk file"
    payload = pickle.dumps(dataset)
    assert len(payload) < 87 * 3 * SIZE * SIZE / 4
    clone = pickle.loads(payload)
    assert clone.store._files == {} and dataset.store._files
    assert all(torch.equal(a, c) for pair, again in zip(before, [clone[i] for i in range(4)])
               for a, c in zip(pair, again))
    loader = DataLoader(dataset, batch_size=4, num_workers=1, multiprocessing_context="spawn")
    first_t, first_d = next(iter(loader))
    assert torch.equal(first_t, torch.stack([p[0] for p in before]))
    assert torch.equal(first_d, torch.stack([p[1] for p in before]))


def test_items_equal_the_in_memory_pair_dataset(sources, tmp_path):
    (sources[2] / "img8.png").write_bytes(b"")  # an unusable frame inside a source
    write_source(tmp_path / "src" / "short", 1, seed=7)  # shorter than the smallest δ: no pair
    folders = sources[:3] + [tmp_path / "src" / "short"] + sources[3:]
    config = PretrainDataConfig(sources=[str(f) for f in folders], folder_fps=FPS, delta_s=(0.02, 0.1))
    reference, _ = build_pretrain_dataset(config, SIZE, seed=5)
    build(folders, tmp_path / "store")
    store = FrameStore.open(tmp_path / "store")
    dataset = StorePairDataset(store, config.delta_s, seed=5)
    assert len(dataset) == len(reference)
    names = store.source_paths()
    for epoch in (0, 3):
        dataset.set_epoch(epoch)
        reference.set_epoch(epoch)
        for index in range(len(dataset)):
            source, first, second = dataset.locate(index)
            expected = reference.locate(index)
            assert (names[source], first, second) == (reference.sources[expected[0]].name, *expected[1:])
        for index in range(0, len(dataset), 7):
            assert all(torch.equal(a, b) for a, b in zip(dataset[index], reference[index]))


def test_the_face_crop_box_is_applied_to_every_frame(tmp_path):
    frames = write_source(tmp_path / "face", 5, seed=3, shape=(40, 40))
    build([tmp_path / "face"], tmp_path / "store", face_crop=box_of_the_face)
    stored = FrameStore.open(tmp_path / "store").read(0, 0, 5)
    assert np.array_equal(stored, np.stack([resize_square(f, SIZE, (4, 6, 24, 24)) for f in frames]))
    assert FrameStore.open(tmp_path / "store").manifest()["cropper"] == "box_of_the_face"


def box_of_the_face(image: np.ndarray) -> tuple[int, int, int, int]:
    return 4, 6, 24, 24


def test_the_windowed_order_is_deterministic_complete_and_resumable():
    sampler = WindowedPairSampler(103, global_batch=8, seed=3, block=4)
    sampler.set_position(1)
    order = list(sampler)
    assert len(order) == 12 * 8 and len(set(order)) == len(order)
    assert set(sampler.epoch_order().tolist()) == set(range(103))
    full = sampler.epoch_order().tolist()
    starts = [k for k in range(0, len(full), 1) if k == 0 or full[k] != full[k - 1] + 1]
    assert all(full[s] % 4 == 0 for s in starts), "every block starts on a block boundary"
    again = WindowedPairSampler(103, global_batch=8, seed=3, block=4)
    again.set_position(1, 5)
    assert list(again) == order[5 * 8:]
    ranks = [WindowedPairSampler(103, global_batch=8, rank=r, world_size=2, seed=3, block=4) for r in (0, 1)]
    for rank in ranks:
        rank.set_position(1)
    parts = [list(r) for r in ranks]
    assert [i for b in range(12) for part in parts for i in part[b * 4:(b + 1) * 4]] == order
    other_epoch = WindowedPairSampler(103, global_batch=8, seed=3, block=4)
    other_epoch.set_position(2)
    assert list(other_epoch) != order


def test_a_windowed_batch_reads_contiguous_windows_and_equals_single_items(sources, tmp_path, monkeypatch):
    build(sources, tmp_path / "store")
    dataset = StorePairDataset(FrameStore.open(tmp_path / "store"), (0.02, 0.05), seed=2, block=4)
    sampler = dataset.sampler(global_batch=16)
    assert isinstance(sampler, WindowedPairSampler)
    indices = list(sampler)[:16]
    singles = [dataset[i] for i in indices]
    reads = []
    original = FrameStore._read_bytes
    monkeypatch.setattr(FrameStore, "_read_bytes", lambda self, *a: reads.append(a) or original(self, *a))
    batch = dataset.__getitems__(indices)
    assert all(torch.equal(a, b) for pair, single in zip(batch, singles) for a, b in zip(pair, single))
    assert len(reads) <= 8 < 2 * len(indices)
    stepped = dataset.__getitems__([(7, i) for i in indices[:3]])
    assert [item[0] for item in stepped] == [7, 7, 7]
    assert all(torch.equal(a, b) for item, single in zip(stepped, singles) for a, b in zip(item[1:], single))
    assert dataset[(9, indices[0])][0] == 9 and torch.equal(dataset[(9, indices[0])][2], singles[0][1])
    assert isinstance(StorePairDataset(dataset.store, (0.02, 0.05)).sampler(16), PairSampler)
    assert dataset.fingerprint() != StorePairDataset(dataset.store, (0.02, 0.05), seed=2).fingerprint()


@pytest.mark.parametrize(("fmt", "min_psnr"), [("yuv420", 30.0), ("jpeg", 30.0)])
def test_compact_formats_store_smooth_frames_closely(tmp_path, fmt, min_psnr):
    folder = tmp_path / "smooth"
    folder.mkdir()
    ramp = np.linspace(0, 255, SIZE * 2).astype(np.uint8)
    frames = [np.stack([np.add.outer(ramp[:SIZE], ramp[k:k + SIZE]) // 2] * 3, axis=-1).astype(np.uint8)
              for k in range(6)]
    for k, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"img{k + 1}.png"), frame[..., ::-1])
    build([folder], tmp_path / fmt, fmt=fmt)
    stored = FrameStore.open(tmp_path / fmt).read(0, 0, 6).astype(float)
    psnr = 10 * np.log10(255.0 ** 2 / np.mean((stored - np.stack(frames)) ** 2))
    assert psnr > min_psnr
    assert verify(tmp_path / fmt, full=True) == 1


def test_bad_options_are_named(sources, tmp_path):
    with pytest.raises(ValueError, match="store.fmt"):
        build(sources, tmp_path / "a", fmt="png")
    with pytest.raises(ValueError, match="even for yuv420"):
        build_frame_store(sources, tmp_path / "a", 15, fmt="yuv420", folder_fps=FPS)
    with pytest.raises(ValueError, match="rank 2 outside"):
        build(sources, tmp_path / "a", rank=2, world_size=2)
    with pytest.raises(ValueError, match="store.jpeg_quality"):
        FrameStoreConfig(jpeg_quality=0)
    assert FrameStoreConfig.from_dict({"fmt": "yuv420", "size": 64, "workers": 4}).identity("")["fmt"] == "yuv420"
    with pytest.raises(ValueError, match="store.sources_per_shard"):
        FrameStoreConfig.from_dict({"sources_per_shard": 0})
    with pytest.raises(ValueError, match="face_crop"):
        build(sources, tmp_path / "a", face_crop="no_such_module:crop")
    with pytest.raises(ValueError, match="list of paths"):
        build(str(sources[0]), tmp_path / "a")  # type: ignore[arg-type]
    build(sources, tmp_path / "b")
    with pytest.raises(ValueError, match="holds a different frame store"):
        build_frame_store(sources, tmp_path / "b", SIZE + 2, folder_fps=FPS, sources_per_shard=2)
    with pytest.raises(ValueError, match="delta_s"):
        StorePairDataset(FrameStore.open(tmp_path / "b"), (0.2, 0.1))
    with pytest.raises(ValueError, match="no frame pair"):
        StorePairDataset(FrameStore.open(tmp_path / "b"), (5.0, 6.0))


def test_bad_input_stops_the_build_when_asked(sources, tmp_path):
    (sources[3] / "img2.png").write_bytes(b"")
    with pytest.raises(BadInputError, match="img2.png"):
        build(sources, tmp_path / "store", on_bad_input="stop")
    assert not list((tmp_path / "store").rglob("*.tmp")), "a stopped build leaves no temporary file"
    assert not (tmp_path / "store" / "shards" / "00001.json").exists()
    with pytest.raises(BadInputError, match="missing"):
        build([tmp_path / "missing"], tmp_path / "other", on_bad_input="stop")
    with pytest.raises(ValueError, match="no source could be stored"):
        build([SourceSpec(tmp_path / "missing")], tmp_path / "third")


def test_damaged_stores_are_named(sources, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a finished frame store"):
        FrameStore.open(tmp_path)
    build(sources, tmp_path / "store")
    shutil.copytree(tmp_path / "store", tmp_path / "copy")
    assert verify(tmp_path / "copy", against=tmp_path / "store") > 0
    manifest = FrameStore.open(tmp_path / "copy").manifest()
    chunk = tmp_path / "copy" / manifest["chunks"][1]["name"]
    data = bytearray(chunk.read_bytes())
    data[10] ^= 0xFF
    chunk.write_bytes(bytes(data))
    assert verify(tmp_path / "copy") > 0  # sizes agree: only the full check reads the content
    with pytest.raises(ValueError, match=manifest["chunks"][1]["name"]):
        verify(tmp_path / "copy", full=True)
    chunk.write_bytes(bytes(data[:-5]))
    with pytest.raises(ValueError, match=f"{chunk.name}: {len(data) - 5} bytes"):
        FrameStore.open(tmp_path / "copy")
    (tmp_path / "copy" / "index.npz").write_bytes(b"not an index")
    with pytest.raises(ValueError, match=r"index\.npz: not a readable frame store index"):
        FrameStore.open(tmp_path / "copy")
    with pytest.raises(IndexError, match="outside source 0"):
        FrameStore.open(tmp_path / "store").read(0, 5, 50)


def test_other_ranks_can_open_from_broadcast_index_bytes(sources, tmp_path):
    build(sources, tmp_path / "store")
    payload = FrameStore.read_index_bytes(tmp_path / "store")
    received = FrameStore.open(tmp_path / "store", index_bytes=payload)
    direct = FrameStore.open(tmp_path / "store")
    assert received.digest == direct.digest
    assert np.array_equal(received.read(4, 0, 16), direct.read(4, 0, 16))
