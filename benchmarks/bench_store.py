"""Benchmark of the chunked frame store (micronbert.data.frame_store) at pre-training scale, on this CPU.

1. Builds a real store from a real face video (``../shared/data/real_video/WolfgangLanger_Pexels.mp4`` when
   present, else synthetic frames) at 224² in raw, YUV 4:2:0 and JPEG, and measures what storage does to the pixels
   (PSNR against raw) and to change maps (|I_t − I_{t+δ}| of pairs drawn like pre-training's δ).
2. Simulates an 8 M-frame store: a synthetic index (``--frames`` over sources of ``--frames-per-source``) over a
   few real chunk files that many sources point into, then, in a fresh process per simulated world size (1, 8,
   64), measures one rank's start-up (index read, chunk check, anchors, sampler, first batch) and resident memory,
   and in fresh processes the memory of a DataLoader worker (the dataset unpickled, as under spawn) for two
   dataset sizes.
3. Measures read throughput per worker: sequential windows against random single frames, warm (page cache) and
   cold (this benchmark's chunk files evicted with posix_fadvise), and pairs per second with the plain and the
   windowed sampler.

Writes ``benchmarks/results/bench_store_cpu_<date>.json`` and ``.md`` with the machine, the date and the load
average (the machine is shared).

Usage: python benchmarks/bench_store.py [--frames 8000000] [--frames-per-source 200] [--chunks 4]
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, markdown_table, write_results  # noqa: E402
from micronbert.data.frame_store import (
    FORMAT_VERSION,
    STORE_FORMATS,
    FrameStore,
    StorePairDataset,
    build_frame_store,
    write_index_arrays,
)
from micronbert.data.pretrain_pairs import delta_frames
from micronbert.data.video import SourceSpec

REAL_VIDEO = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real_video" / "WolfgangLanger_Pexels.mp4"
DELTA_S = (0.02, 0.2)
SIZE = 224


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8_000_000, help="frames of the simulated store")
    parser.add_argument("--frames-per-source", type=int, default=200, help="frames per simulated source")
    parser.add_argument("--chunks", type=int, default=4, help="real chunk files under the simulated index")
    parser.add_argument("--world-sizes", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--per-rank-batch", type=int, default=256,
                        help="pairs per rank and step (the global batch follows the world size)")
    parser.add_argument("--block", type=int, default=8, help="block of the windowed sampler")
    parser.add_argument("--seconds", type=float, default=3.0, help="time box of each throughput measurement")
    parser.add_argument("--probe", choices=("rank", "worker"), help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--rank", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--world-size", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.frames < args.frames_per_source or args.frames_per_source < 50 or args.chunks < 1:
        parser.error("--frames >= --frames-per-source >= 50 and --chunks >= 1")
    return args


# ------------------------------------------------------------------------------------------ memory
def memory_mb() -> dict[str, float]:
    """Resident memory of this process from /proc/self/status (MB): total, peak, anonymous, file-backed."""
    fields = {"VmRSS": "rss", "VmHWM": "peak_rss", "RssAnon": "anon", "RssFile": "file"}
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in fields:
            values[fields[key]] = int(rest.split()[0]) / 1024
    return values


def run_probe(args: list[str]) -> dict[str, object]:
    """Run this file in probe mode in a fresh process and return its JSON line."""
    command = [sys.executable, __file__, *args]
    done = subprocess.run(command, capture_output=True, text=True, check=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(done.stdout.strip().splitlines()[-1])


def rank_probe(store_dir: str, rank: int, world_size: int, per_rank_batch: int, block: int) -> dict[str, object]:
    """One rank's start-up: read the index (rank 0's part; the others receive these bytes), open, build the
    dataset and its sampler, draw and read the first per-rank batch."""
    baseline = memory_mb()
    clock = time.perf_counter()
    index = FrameStore.read_index_bytes(store_dir)
    read_s = time.perf_counter() - clock
    store = FrameStore.open(store_dir, index_bytes=index)
    open_s = time.perf_counter() - clock
    dataset = StorePairDataset(store, DELTA_S, seed=0, block=block)
    dataset_s = time.perf_counter() - clock
    sampler = dataset.sampler(per_rank_batch * world_size, rank, world_size)
    indices = list(itertools.islice(iter(sampler), sampler.per_rank))
    sampler_s = time.perf_counter() - clock
    batch = dataset.__getitems__(indices)
    total_s = time.perf_counter() - clock
    memory = memory_mb()
    return {"world_size": world_size, "rank": rank, "per_rank_batch": len(batch), "pairs": len(dataset),
            "sources": store.num_sources, "frames": store.num_frames, "index_mb": len(index) / 2**20,
            "read_index_s": read_s, "open_s": open_s, "dataset_s": dataset_s, "sampler_s": sampler_s,
            "startup_s": total_s, "rss_mb": memory["rss"], "peak_rss_mb": memory["peak_rss"],
            "rss_after_imports_mb": baseline["rss"], "pickled_dataset_mb": len(pickle.dumps(dataset)) / 2**20}


def worker_probe(store_dir: str, items: int = 512) -> dict[str, object]:
    """A DataLoader worker under spawn: unpickle the dataset, read ``items`` random pairs in batches of 32."""
    dataset = StorePairDataset(FrameStore.open(store_dir), DELTA_S, seed=0)
    payload = pickle.dumps(dataset)
    del dataset
    baseline = memory_mb()
    worker = pickle.loads(payload)
    indices = np.random.default_rng(0).integers(0, len(worker), items).tolist()
    for begin in range(0, items, 32):
        worker.__getitems__(indices[begin:begin + 32])
    memory = memory_mb()
    return {"frames": worker.store.num_frames, "pickled_mb": len(payload) / 2**20,
            "anon_growth_mb": memory["anon"] - baseline["anon"], "rss_mb": memory["rss"],
            "anon_mb": memory["anon"], "file_mb": memory["file"]}


# ------------------------------------------------------------------------------------------ stores
def real_frames(work: Path) -> tuple[np.ndarray, float, str, float]:
    """(frames (T, 224, 224, 3) from a raw store built of the real video, its fps, what it is, build frames/s)."""
    if REAL_VIDEO.is_file():
        source, what = SourceSpec(REAL_VIDEO.resolve()), f"real video {REAL_VIDEO.name}"
    else:
        source, what = synthetic_source(work / "synthetic"), "synthetic frames (real video absent)"
    clock = time.perf_counter()
    build_frame_store([source], work / "real_raw", SIZE, folder_fps=25.0)
    elapsed = time.perf_counter() - clock
    store = FrameStore.open(work / "real_raw")
    count = int(store.source_frames[0])
    return store.read(0, 0, count), float(store.source_fps[0]), what, count / elapsed


def synthetic_source(folder: Path, count: int = 240) -> SourceSpec:
    """A frame folder of a textured pattern drifting by a pixel every few frames, plus sensor-like noise."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (300, 300, 3), dtype=np.uint8), (0, 0), 3)
    for k in range(count):
        frame = texture[k // 4:k // 4 + 256, :256].astype(np.int16) + rng.integers(-2, 3, (256, 256, 3))
        cv2.imwrite(str(folder / f"img{k + 1}.png"), np.clip(frame, 0, 255).astype(np.uint8))
    return SourceSpec(folder)


def storage_effects(work: Path, frames: np.ndarray, fps: float) -> list[dict[str, object]]:
    """PSNR and change-map error of each compact format against raw, on the same frames."""
    folder = work / "real_png"
    folder.mkdir(exist_ok=True)
    for k, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"img{k + 1}.png"), frame[..., ::-1])
    low, high = delta_frames(DELTA_S, fps)
    rng = np.random.default_rng(0)
    anchors = rng.integers(0, len(frames) - high, 200)
    pairs = [(int(t), int(t + rng.integers(low, high + 1))) for t in anchors]
    reference = change_maps(frames, pairs)
    rows = [{"format": "raw", "bytes_per_frame": frames[0].nbytes, "psnr_db": "exact",
             **change_map_errors(reference, reference)}]
    for fmt, quality in (("yuv420", 95), ("jpeg", 95), ("jpeg", 90), ("jpeg", 75)):
        out = work / f"real_{fmt}_{quality}"
        build_frame_store([folder], out, SIZE, fmt=fmt, jpeg_quality=quality, folder_fps=fps)
        store = FrameStore.open(out)
        stored = store.read(0, 0, len(frames))
        error = np.mean((stored.astype(np.float64) - frames) ** 2)
        rows.append({"format": fmt if fmt != "jpeg" else f"jpeg q{quality}",
                     "bytes_per_frame": int(store.chunk_bytes.sum()) / len(frames),
                     "psnr_db": float(10 * np.log10(255.0 ** 2 / error)),
                     **change_map_errors(reference, change_maps(stored, pairs))})
    return rows


def change_maps(frames: np.ndarray, pairs: list[tuple[int, int]]) -> np.ndarray:
    """|I_t − I_{t+δ}| averaged over colour, (n, S, S) float."""
    return np.stack([np.abs(frames[t].astype(np.float32) - frames[d]).mean(-1) for t, d in pairs])


def change_map_errors(reference: np.ndarray, stored: np.ndarray) -> dict[str, float]:
    error = np.abs(stored - reference)
    flat_ref, flat_stored = reference.reshape(len(reference), -1), stored.reshape(len(stored), -1)
    correlation = [np.corrcoef(a, b)[0, 1] for a, b in zip(flat_ref, flat_stored)]
    still = reference < 1.0
    return {"mean_change_raw": float(reference.mean()), "change_map_mae": float(error.mean()),
            "mae_over_mean_change": float(error.mean() / reference.mean()),
            "change_map_correlation": float(np.mean(correlation)),
            "false_change_on_still_pixels": float(stored[still].mean()) if still.any() else 0.0}


def synthetic_store(work: Path, frames: np.ndarray, total: int, per_source: int, chunks: int) -> Path:
    """A store of ``total`` frames whose sources all point into ``chunks`` real chunk files of real frames."""
    root = work / "synthetic_store"
    (root / "chunks").mkdir(parents=True, exist_ok=True)
    frame_bytes = frames[0].nbytes
    slots = 8  # sources' worth of frames per chunk
    chunk_frames = slots * per_source
    for chunk in range(chunks):
        with open(root / "chunks" / f"{chunk:05d}-000.bin", "wb") as handle:
            for begin in range(0, chunk_frames, 256):
                picks = (np.arange(begin, min(begin + 256, chunk_frames)) + chunk * chunk_frames) % len(frames)
                handle.write(frames[picks].tobytes())
    sources = total // per_source
    number = np.arange(sources)
    counts = np.full(sources, per_source, np.int64)
    valid = np.ones(int(counts.sum()), bool)
    valid[::997] = False  # a few unreadable frames, so anchors are not one run per source
    arrays = {"meta": np.array([FORMAT_VERSION, SIZE, STORE_FORMATS.index("raw"), 95], np.int64),
              "source_chunk": (number % chunks).astype(np.int32),
              "source_offset": ((number // chunks) % slots * per_source * frame_bytes).astype(np.int64),
              "source_bytes": counts * frame_bytes, "source_frames": counts,
              "source_fps": np.where(number % 3 == 0, 200.0, 30.0), "valid_bits": np.packbits(valid),
              "frame_offsets": np.zeros(0, np.int64), "chunk_shard": np.arange(chunks, dtype=np.int32),
              "chunk_part": np.zeros(chunks, np.int32),
              "chunk_bytes": np.full(chunks, chunk_frames * frame_bytes, np.int64)}
    write_index_arrays(root / "index.npz", arrays)
    return root


# ------------------------------------------------------------------------------------------ throughput
def evict(store: FrameStore) -> None:
    """Drop this benchmark's chunk files from the page cache (nothing else is touched)."""
    for chunk in range(len(store.chunk_bytes)):
        with open(store.chunk_path(chunk), "rb") as handle:
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def warm(store: FrameStore) -> None:
    """Read this benchmark's chunk files once, so that they are in the page cache."""
    for chunk in range(len(store.chunk_bytes)):
        with open(store.chunk_path(chunk), "rb") as handle:
            while handle.read(1 << 23):
                pass


def timed(operation, seconds: float) -> tuple[int, int, float]:
    """Run ``operation()`` (returning (frames, bytes)) until ``seconds`` pass: (frames, bytes, elapsed)."""
    frames = size = 0
    clock = time.perf_counter()
    while time.perf_counter() - clock < seconds:
        got_frames, got_bytes = operation()
        frames, size = frames + got_frames, size + got_bytes
    return frames, size, time.perf_counter() - clock


def read_throughput(store: FrameStore, seconds: float, cold: bool) -> list[dict[str, object]]:
    rng = np.random.default_rng(1)
    frame_bytes = 3 * store.size ** 2
    window = 32
    sequential_state = {"source": 0, "start": 0}

    def sequential() -> tuple[int, int]:
        source, start = sequential_state["source"], sequential_state["start"]
        count = int(store.source_frames[source])
        stop = min(start + window, count)
        store.read(source, start, stop)
        sequential_state.update(source=source if stop < count else (source + 1) % store.num_sources,
                                start=stop if stop < count else 0)
        return stop - start, (stop - start) * frame_bytes

    rows = []
    for name, operation in (("sequential windows of 32 frames", sequential),
                            ("random single frames", lambda: read_random_frame(store, rng))):
        (evict if cold else warm)(store)
        frames, size, elapsed = timed(operation, seconds)
        rows.append({"access": name, "cache": "cold" if cold else "warm", "frames_per_s": frames / elapsed,
                     "mb_per_s": size / elapsed / 2**20})
    return rows


def pair_throughput(store: FrameStore, block: int, seconds: float) -> list[dict[str, object]]:
    rows = []
    for name, size in (("plain sampler (random pairs)", 1), (f"windowed sampler, block {block}", block)):
        dataset = StorePairDataset(store, DELTA_S, seed=0, block=size)
        order = iter(dataset.sampler(64))
        for cold in (False, True):
            (evict if cold else warm)(store)
            pairs, _, elapsed = timed(lambda d=dataset, o=order: read_batch(d, o, 64), seconds)
            rows.append({"sampler": name, "cache": "cold" if cold else "warm", "pairs_per_s": pairs / elapsed})
    return rows


def read_batch(dataset: StorePairDataset, order, size: int) -> tuple[int, int]:
    dataset.__getitems__([next(order) for _ in range(size)])
    return size, 0


def format_read_speed(work: Path, seconds: float) -> list[dict[str, object]]:
    rows = []
    for name in ("real_raw", "real_yuv420_95", "real_jpeg_95"):
        store = FrameStore.open(work / name)
        rng = np.random.default_rng(2)
        frames, _, elapsed = timed(lambda s=store, r=rng: read_random_frame(s, r), seconds / 2)
        rows.append({"store": name.removeprefix("real_"), "random_frames_per_s_warm": frames / elapsed})
    return rows


def read_random_frame(store: FrameStore, rng: np.random.Generator) -> tuple[int, int]:
    source = int(rng.integers(store.num_sources))
    start = int(rng.integers(store.source_frames[source]))
    store.read(source, start, start + 1)
    return 1, 3 * store.size ** 2


# ------------------------------------------------------------------------------------------ report
def markdown(payload: dict[str, object]) -> str:
    machine = payload["machine"]
    load = payload["load_average"]
    lines = [f"# Frame store benchmark ({machine['date']})", "",
             f"Machine: {machine['cpu']}, {machine['cores']} cores (shared); Python {machine['python']}, "
             f"torch {machine['torch']}. Load average (1, 5, 15 min) at start {load['start']}, at end "
             f"{load['end']}; `uptime` at start: `{payload['uptime']}`.", "",
             f"Simulated store: {payload['simulated']['frames']:,} frames in {payload['simulated']['sources']:,} "
             f"sources of {payload['simulated']['frames_per_source']} frames at {SIZE}² raw "
             f"({payload['simulated']['virtual_tb']:.2f} TB addressed), over {payload['simulated']['chunks']} real "
             f"chunk files of {payload['simulated']['chunk_mb']:.0f} MB; 1 frame in 997 marked unreadable; fps 200 "
             f"for a third of the sources, 30 for the rest; δ in {DELTA_S} s.", "",
             "## Start-up and memory per rank (fresh process per world size; targets < 30 s, < 2 GB)", "",
             markdown_table(payload["ranks"], ["world_size", "per_rank_batch", "read_index_s", "open_s", "dataset_s",
                                               "sampler_s", "startup_s", "rss_mb", "peak_rss_mb",
                                               "rss_after_imports_mb", "index_mb", "pickled_dataset_mb"]), "",
             "Times are cumulative from the start of the index read; `sampler_s` includes drawing the epoch's "
             "permutation; `startup_s` includes reading the first per-rank batch.", "",
             "## Memory of a DataLoader worker against the dataset size (spawn: the dataset unpickled)", "",
             markdown_table(payload["workers"], ["frames", "pickled_mb", "anon_growth_mb", "anon_mb", "file_mb",
                                                 "rss_mb"]), "",
             "`anon_growth_mb`: anonymous memory added by unpickling the dataset and reading 512 random pairs.", "",
             "## Read throughput per worker (one process, raw 224²)", "",
             markdown_table(payload["reads"], ["access", "cache", "frames_per_s", "mb_per_s"]), "",
             markdown_table(payload["pairs"], ["sampler", "cache", "pairs_per_s"]), "",
             "Cold: this benchmark's chunk files were evicted from the page cache (posix_fadvise DONTNEED) before "
             "the run; the disk is a virtual disk whose host may still cache.", "",
             f"## Storage formats on {payload['formats_source']} ({payload['format_frames']} frames at "
             f"{payload['format_fps']:.2f} fps, {SIZE}²)", "",
             markdown_table(payload["formats"], ["format", "bytes_per_frame", "psnr_db", "mean_change_raw",
                                                 "change_map_mae", "mae_over_mean_change", "change_map_correlation",
                                                 "false_change_on_still_pixels"]), "",
             "Change maps: |I_t − I_{t+δ}| averaged over colour for 200 pairs with δ drawn as in pre-training; "
             "`false_change_on_still_pixels`: mean stored change where the raw change is below one grey level.", "",
             markdown_table(payload["format_reads"], ["store", "random_frames_per_s_warm"]), "",
             f"Building the raw store from the source: {payload['build_frames_per_s']:.1f} frames/s "
             "(decode, crop, resize, write; one process).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.probe == "rank":
        print(json.dumps(rank_probe(args.store, args.rank, args.world_size, args.per_rank_batch, args.block)))
        return
    if args.probe == "worker":
        print(json.dumps(worker_probe(args.store)))
        return
    started = time.perf_counter()
    load_start = os.getloadavg()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="bench_store_") as folder:
        work = Path(folder)
        frames, fps, what, build_rate = real_frames(work)
        formats = storage_effects(work, frames, fps)
        format_reads = format_read_speed(work, args.seconds)
        big = synthetic_store(work, frames, args.frames, args.frames_per_source, args.chunks)
        small = synthetic_store(work / "small", frames, args.frames // 8, args.frames_per_source, args.chunks)
        ranks = [run_probe(["--probe", "rank", "--store", str(big), "--rank", str(size - 1), "--world-size",
                            str(size), "--per-rank-batch", str(args.per_rank_batch), "--block", str(args.block)])
                 for size in args.world_sizes]
        workers = [run_probe(["--probe", "worker", "--store", str(path)]) for path in (small, big)]
        store = FrameStore.open(big)
        reads = read_throughput(store, args.seconds, cold=False) + read_throughput(store, args.seconds, cold=True)
        pairs = pair_throughput(store, args.block, args.seconds)
        chunk_mb = float(store.chunk_bytes[0]) / 2**20
    payload = {"machine": machine_info(), "load_average": {"start": [round(v, 2) for v in load_start],
                                                           "end": [round(v, 2) for v in os.getloadavg()]},
               "uptime": uptime,
               "simulated": {"frames": args.frames, "sources": args.frames // args.frames_per_source,
                             "frames_per_source": args.frames_per_source, "chunks": args.chunks,
                             "chunk_mb": chunk_mb, "virtual_tb": args.frames * 3 * SIZE ** 2 / 1e12},
               "ranks": ranks, "workers": workers, "reads": reads, "pairs": pairs, "formats": formats,
               "formats_source": what, "format_frames": len(frames), "format_fps": fps,
               "format_reads": format_reads, "build_frames_per_s": build_rate,
               "wall_s": time.perf_counter() - started}
    json_path, md_path = write_results("bench_store", payload, markdown(payload))
    print(markdown(payload))
    print(f"wrote {json_path} and {md_path} in {payload['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
