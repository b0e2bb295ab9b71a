"""A chunked frame store for pre-training on millions of frames.

Every source (see :mod:`micronbert.data.video`) is decoded once, cropped to the face-crop hook's box or the
centre square and resized exactly as :mod:`micronbert.data.pretrain_pairs` does (its helpers are reused), then
appended to large chunk files. Pre-training opens the store in O(number of sources): one index file is read (by
rank 0, whose bytes the other ranks may receive instead of reading it) and the size of each chunk is checked,
one file-system call per chunk and none per frame.

Libraries compared (2026-12; ``pip download --no-deps`` and ``pip install --dry-run`` with and without
``constraints.txt``, nothing installed):

- **litdata** 0.2.76: requires ``torchvision`` (plus boto3, obstore, requests, tifffile, lightning-utilities).
  Under our constraints it would install torchvision 0.28.0, whose registry builds are CUDA-only and fail to
  import with the CPU torch; unconstrained it pulls torch 2.14.1 with about 20 CUDA packages. Its
  ``StreamingDataset`` is an ``IterableDataset`` whose shuffle and resume are its own state (samples yielded,
  workers, batch size), not a function of (seed, epoch, index); its ``TemporalArrayLoader`` (whole tracks per
  record, windows read by byte range) is the closest fit for (t, t+δ), but only through its indexed access,
  and the dependency rules it out.
- **MosaicML streaming** 0.13.0 (last release 2025-07): requires ``torchvision``, ``transformers``,
  ``numpy<2.2`` (a downgrade of ours) and the AWS, Google, Azure, OCI and SFTP clients: about 70 packages in the
  dry run, torchvision 0.28.0 among them, a CUDA torch unconstrained. Random access works on its MDS shards, but
  resume is its ``sample_in_epoch`` state tied to ``num_canonical_nodes``.
- **webdataset** 1.0.2: installs cleanly (numpy, pyyaml, braceexpand). But tar shards are read sequentially
  through an ``IterableDataset``; version 1.0 no longer ships the indexed reader (``wids``), so frame t+δ of
  the same source cannot be read by position, and the order is not a function of (seed, epoch, index).

None gives random access to t and t+δ with an order we control without pulling torchvision, so the store is a
small documented format on numpy and the standard library.

Layout of a store folder (format version 1; every file is written through a temporary file and renamed):

- ``store.json``: what the store is: format version, ``size``, ``fmt``, ``jpeg_quality``, ``cropper``,
  ``sources_per_shard``, ``chunk_bytes``. A later build into the folder with other values is refused.
- ``shards/plan.json``: the ordered source list (path, fps override); source k belongs to shard
  ``k // sources_per_shard``, whatever the number of ranks or processes, so the bytes do not depend on them.
- ``chunks/SSSSS-PPP.bin``: the frames of shard S, part P, appended contiguously source after source; a part is
  closed once it holds ``chunk_bytes`` (a source is never split, so a part may hold more).
  ``raw``: S·S·3 bytes RGB per frame; ``yuv420``: I420 planes, S·S·3/2 bytes (S even); ``jpeg``: one JPEG
  per frame at ``jpeg_quality``. An unreadable frame is stored black and marked invalid.
- ``shards/SSSSS.json``: one shard's sources (path, size/mtime digest, fps, frame count, valid mask, chunk part,
  byte offset and length, JPEG frame offsets, problems met) and its chunk parts (bytes, SHA-256). Written last,
  so a shard without it is rebuilt by the next run; a shard whose sources' digests changed is rebuilt too.
- ``index.npz`` (numpy arrays, no pickles): ``meta`` (version, size, format code, JPEG quality); per source
  ``source_chunk``, ``source_offset``, ``source_bytes``, ``source_frames``, ``source_fps``; ``valid_bits``
  (the valid masks of all frames, bit-packed); ``frame_offsets`` (JPEG only, per frame); per chunk
  ``chunk_shard``, ``chunk_part``, ``chunk_bytes``. Sources that could not be read are left out.
- ``manifest.json``: every source (path, frame count, valid frames, fps, digest, status, problems), every chunk
  (name, bytes, SHA-256) and the index's SHA-256. Written last of all: a folder without it is not a store.

Which format: ``raw`` (the default, exact). Measured on a real face video at 224² (benchmarks/bench_store.py):
YUV 4:2:0 halves the bytes at 49 dB PSNR and changes the change maps |I_t − I_{t+δ}| by 3.5 % of their mean
(false change on still pixels 0.09 grey levels against 0.06); JPEG q95 stores a tenth of the bytes at 45 dB but
changes the change maps by 11 % (q90: 15 %, q75: 22 %) and puts 0.27 grey levels of false change on still
pixels, comparable to the faint motion micro-expressions leave; its frames also read 15-27x slower than raw ones
(decoding). Use ``yuv420`` only where storage is the limit, and JPEG not for pre-training.

:class:`FrameStore` reads frames with positioned reads through file handles opened lazily in each process
(DataLoader worker) and dropped on pickling, so a dataset pickles without its frames under every start
method. :class:`StorePairDataset` draws the same pairs as
:class:`~micronbert.data.pretrain_pairs.PretrainPairDataset`; :class:`WindowedPairSampler` deals out blocks of
consecutive items so that a batch needs a few contiguous reads instead of one read per frame.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import logging
import math
import multiprocessing
import os
import time
import zipfile
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..config import Config
from ..io import atomic_path, check_positive_int, claim_folder, read_json_mapping, write_json_atomically
from .pretrain_pairs import DataReport, FaceCropper, PairSampler, _resized_frames, delta_frames, load_face_cropper
from .video import BadInputError, SourceIssue, SourceSpec, check_policy, discover_sources, source_fps

LOG = logging.getLogger(__name__)

FORMAT_VERSION = 1
STORE_FORMATS: tuple[str, ...] = ("raw", "yuv420", "jpeg")
IDENTITY_FILE, PLAN_FILE, INDEX_FILE, MANIFEST_FILE = "store.json", "shards/plan.json", "index.npz", "manifest.json"
INDEX_KEYS: tuple[str, ...] = ("meta", "source_chunk", "source_offset", "source_bytes", "source_frames",
                               "source_fps", "valid_bits", "frame_offsets", "chunk_shard", "chunk_part", "chunk_bytes")
ANCHOR_BATCH_FRAMES = 1 << 20  # frames per step when the anchors are found (bounds start-up memory)


# ------------------------------------------------------------------------------------------ configuration
@dataclass
class FrameStoreConfig(Config):
    """How a store is built (the options of the index step).

    ``size``: side of the square frames; ``fmt``: ``"raw"`` (exact), ``"yuv420"`` or ``"jpeg"``;
    ``jpeg_quality``: 1..100; ``sources_per_shard``: sources per unit of parallel, resumable work;
    ``chunk_bytes``: a chunk file is closed once it holds this many bytes; ``workers``: processes per rank;
    ``folder_fps``: frame rate of frame folders without one; ``on_bad_input``: ``"skip"`` or ``"stop"``.
    """

    size: int = 224
    fmt: str = "raw"
    jpeg_quality: int = 95
    sources_per_shard: int = 16
    chunk_bytes: int = 1 << 30
    workers: int = 1
    folder_fps: float | None = None
    on_bad_input: str = "skip"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first inconsistent field."""
        for name in ("size", "sources_per_shard", "chunk_bytes", "workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"store.{name} must be a positive integer, got {value!r}")
        if self.fmt not in STORE_FORMATS:
            raise ValueError(f"store.fmt must be one of {', '.join(STORE_FORMATS)}; got {self.fmt!r}")
        if self.fmt == "yuv420" and self.size % 2:
            raise ValueError(f"store.size must be even for yuv420 (chroma is halved), got {self.size}")
        if not 1 <= int(self.jpeg_quality) <= 100:
            raise ValueError(f"store.jpeg_quality must lie in 1..100, got {self.jpeg_quality}")
        check_policy(self.on_bad_input)

    def identity(self, cropper: str) -> dict[str, Any]:
        """What makes two builds write the same store (recorded in ``store.json``)."""
        return {"format_version": FORMAT_VERSION, "size": self.size, "fmt": self.fmt,
                "jpeg_quality": int(self.jpeg_quality), "cropper": cropper,
                "sources_per_shard": self.sources_per_shard, "chunk_bytes": self.chunk_bytes}


# ------------------------------------------------------------------------------------------ frame coding
@dataclass(frozen=True)
class FrameCodec:
    """Turns (S, S, 3) RGB uint8 frames into stored bytes and back."""

    fmt: str
    size: int
    jpeg_quality: int = 95

    @property
    def frame_bytes(self) -> int | None:
        """Bytes per stored frame (None for JPEG, whose frames vary)."""
        return {"raw": 3 * self.size ** 2, "yuv420": 3 * self.size ** 2 // 2}.get(self.fmt)

    def encode(self, image: np.ndarray) -> bytes:
        if self.fmt == "raw":
            return np.ascontiguousarray(image, np.uint8).tobytes()
        if self.fmt == "yuv420":
            return cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420).tobytes()
        ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]),
                                   [cv2.IMWRITE_JPEG_QUALITY, int(self.jpeg_quality)])
        if not ok:
            raise ValueError(f"JPEG encoding of a {self.size}x{self.size} frame failed")
        return encoded.tobytes()

    def decode(self, data: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        """Frames (n, S, S, 3) from ``data``, whose frame k spans ``data[bounds[k]:bounds[k + 1]]``."""
        count, side = len(bounds) - 1, self.size
        if self.fmt == "raw":
            return data[bounds[0]:bounds[-1]].reshape(count, side, side, 3)
        out = np.empty((count, side, side, 3), np.uint8)
        for k in range(count):
            piece = data[bounds[k]:bounds[k + 1]]
            if self.fmt == "yuv420":
                out[k] = cv2.cvtColor(piece.reshape(side * 3 // 2, side), cv2.COLOR_YUV2RGB_I420)
                continue
            image = cv2.imdecode(piece, cv2.IMREAD_COLOR)
            if image is None or image.shape != (side, side, 3):
                raise ValueError(f"stored JPEG frame {k} of the read cannot be decoded")
            out[k] = image[..., ::-1]
        return out


# ------------------------------------------------------------------------------------------ building
@dataclass
class StoreBuildReport:
    """What one call of :func:`build_frame_store` did (on this rank)."""

    shards_built: list[int] = field(default_factory=list)
    shards_skipped: list[int] = field(default_factory=list)
    sources: int = 0
    frames: int = 0
    issues: list[SourceIssue] = field(default_factory=list)
    merged: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {"shards_built": self.shards_built, "shards_skipped": self.shards_skipped, "sources": self.sources,
                "frames": self.frames, "merged": self.merged, "seconds": self.seconds,
                "issues": [{"path": i.path, "problem": i.problem} for i in self.issues]}


@dataclass(frozen=True)
class _ShardJob:
    out_dir: str
    shard: int
    specs: tuple[SourceSpec, ...]
    config: FrameStoreConfig
    face_crop: str | FaceCropper | None
    cropper_name: str


@dataclass
class _ShardResult:
    shard: int
    skipped: bool
    frames: int
    issues: list[SourceIssue]


def build_frame_store(sources: Sequence[SourceSpec | str | os.PathLike[str]], out_dir: str | os.PathLike[str],
                      size: int, *, fmt: str = "raw", workers: int = 1, rank: int = 0, world_size: int = 1,
                      face_crop: str | FaceCropper | None = None, folder_fps: float | None = None,
                      on_bad_input: str = "skip", jpeg_quality: int = 95, sources_per_shard: int = 16,
                      chunk_bytes: int = 1 << 30, merge_timeout_s: float = 86400.0) -> StoreBuildReport:
    """Decode, crop and resize ``sources`` into a store in ``out_dir`` (see the module docstring).

    ``sources``: :class:`SourceSpec` entries, or paths expanded like ``data.sources`` (video files, frame folders,
    folders holding them). Rank ``rank`` of ``world_size`` builds shards ``rank, rank + world_size, …`` with
    ``workers`` processes; finished shards whose sources are unchanged are skipped. Rank 0 then merges the shard
    indexes, waiting up to ``merge_timeout_s`` for the other ranks' shards. ``face_crop``: a :data:`FaceCropper`
    (a module-level function when ``workers > 1``) or ``"package.module:function"``. Under
    ``on_bad_input="stop"`` the first problem raises :class:`BadInputError` naming the file.
    """
    started = time.perf_counter()
    config = FrameStoreConfig(size=size, fmt=fmt, jpeg_quality=jpeg_quality, sources_per_shard=sources_per_shard,
                              chunk_bytes=chunk_bytes, workers=workers, folder_fps=folder_fps,
                              on_bad_input=on_bad_input)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
    report = StoreBuildReport()
    specs = _expand_sources(sources, report.issues, on_bad_input)
    if not specs:
        raise ValueError(f"no source to store: {'; '.join(map(str, report.issues)) or 'none given'}")
    if isinstance(face_crop, str):
        load_face_cropper(face_crop)  # fails here, naming the target, rather than in every worker
    cropper_name = face_crop if isinstance(face_crop, str) else (
        getattr(face_crop, "__qualname__", repr(face_crop)) if face_crop is not None else "")
    root = Path(out_dir)
    claim_folder(root / IDENTITY_FILE, config.identity(cropper_name), "frame store")
    write_json_atomically(root / PLAN_FILE, _plan(specs, config))
    jobs = [_ShardJob(str(root), shard, tuple(specs[begin:begin + sources_per_shard]), config, face_crop,
                      cropper_name)
            for shard, begin in enumerate(range(0, len(specs), sources_per_shard)) if shard % world_size == rank]
    for result in _run_jobs(jobs, workers):
        (report.shards_skipped if result.skipped else report.shards_built).append(result.shard)
        report.frames += result.frames
        report.issues.extend(result.issues)
    report.sources = sum(len(job.specs) for job in jobs)
    if rank == 0:
        merge_frame_store(root, timeout_s=merge_timeout_s if world_size > 1 else 0.0)
        report.merged = True
    report.seconds = time.perf_counter() - started
    return report


def _expand_sources(sources: Sequence[SourceSpec | str | os.PathLike[str]], issues: list[SourceIssue],
                    on_bad_input: str) -> list[SourceSpec]:
    if isinstance(sources, (str, bytes, os.PathLike)):
        raise ValueError(f"sources must be a list of paths or SourceSpec entries, got {sources!r}")
    specs: list[SourceSpec] = []
    for item in sources:
        specs.extend([item] if isinstance(item, SourceSpec) else discover_sources([item], issues))
    if on_bad_input == "stop" and issues:
        raise BadInputError(f"bad input: {issues[0]}")
    return specs


def _plan(specs: Sequence[SourceSpec], config: FrameStoreConfig) -> dict[str, Any]:
    return {"sources_per_shard": config.sources_per_shard,
            "sources": [{"path": str(spec.path), "fps": spec.fps} for spec in specs]}


def _run_jobs(jobs: Sequence[_ShardJob], workers: int) -> Iterator[_ShardResult]:
    """Shard results in shard order; in this process for one worker, else in a pool of spawned processes."""
    if workers == 1 or len(jobs) <= 1:
        yield from map(_build_shard, jobs)
        return
    context = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
        yield from pool.map(_build_shard, jobs)


def source_digest(spec: SourceSpec, fps: float) -> str:
    """Digest of a source's path, fps and the size and modification time of its files (one ``stat`` per file)."""
    if spec.is_video:
        status = spec.path.stat()
        stats = [(spec.path.name, status.st_size, status.st_mtime_ns)]
    else:
        with os.scandir(spec.path) as entries:
            stats = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries if e.is_file())
    return hashlib.sha256(json.dumps([str(spec.path), fps, stats]).encode()).hexdigest()[:32]


def _shard_path(root: Path, shard: int) -> Path:
    return root / "shards" / f"{shard:05d}.json"


def chunk_name(shard: int, part: int) -> str:
    """File name (relative to the store) of part ``part`` of shard ``shard``."""
    return f"chunks/{shard:05d}-{part:03d}.bin"


def _build_shard(job: _ShardJob) -> _ShardResult:
    """Build one shard unless its record exists with the same sources and digests."""
    root, config = Path(job.out_dir), job.config
    fingerprints = [_fingerprint_source(spec, config.folder_fps) for spec in job.specs]
    recorded = _read_shard(root, job.shard)
    if recorded is not None and [(s["path"], s["digest"]) for s in recorded["sources"]] == [
            (str(spec.path), digest) for spec, (_, digest, _) in zip(job.specs, fingerprints)]:
        return _ShardResult(job.shard, True, sum(s["frames"] for s in recorded["sources"]), [])
    _invalidate(root, job.shard)
    cropper = load_face_cropper(job.face_crop) if isinstance(job.face_crop, str) else job.face_crop
    codec = FrameCodec(config.fmt, config.size, config.jpeg_quality)
    entries, issues = [], []
    with _ChunkWriter(root, job.shard, config.chunk_bytes) as writer:
        for spec, (fps, digest, problem) in zip(job.specs, fingerprints):
            entry, source_issues = _store_source(writer, codec, spec, fps, digest, problem, cropper)
            if config.on_bad_input == "stop" and source_issues:
                raise BadInputError(f"bad input: {source_issues[0]}")
            for issue in source_issues:
                LOG.warning("frame store: %s", issue)
            entries.append(entry)
            issues.extend(source_issues)
    write_json_atomically(_shard_path(root, job.shard), {"shard": job.shard, "sources": entries,
                                                         "chunks": writer.parts})
    return _ShardResult(job.shard, False, sum(e["frames"] for e in entries), issues)


def _fingerprint_source(spec: SourceSpec, folder_fps: float | None) -> tuple[float, str, str | None]:
    """(fps, digest, problem): a source that cannot be used gets fps 0, a digest of its path and the problem."""
    try:
        fps = source_fps(spec, folder_fps)
        return fps, source_digest(spec, fps), None
    except (OSError, ValueError) as err:
        problem = "does not exist" if isinstance(err, FileNotFoundError) else str(err)
        return 0.0, hashlib.sha256(json.dumps([str(spec.path), problem]).encode()).hexdigest()[:32], problem


def _read_shard(root: Path, shard: int) -> dict[str, Any] | None:
    path = _shard_path(root, shard)
    if not path.is_file():
        return None
    try:
        record = read_json_mapping(path, "frame store shard record")
        return record if isinstance(record.get("sources"), list) and isinstance(record.get("chunks"), list) else None
    except ValueError:
        return None  # a damaged record: the shard is built again


def _invalidate(root: Path, shard: int) -> None:
    """Remove what a rebuild of ``shard`` makes stale: the merged store, the shard's record and its chunks."""
    for name in (MANIFEST_FILE, INDEX_FILE):
        (root / name).unlink(missing_ok=True)
    _shard_path(root, shard).unlink(missing_ok=True)
    for old in (root / "chunks").glob(f"{shard:05d}-*.bin"):
        old.unlink(missing_ok=True)


def _store_source(writer: _ChunkWriter, codec: FrameCodec, spec: SourceSpec, fps: float, digest: str,
                  problem: str | None, cropper: FaceCropper | None) -> tuple[dict[str, Any], list[SourceIssue]]:
    """Append one source's frames; a source that cannot be read leaves no bytes and a ``failed`` entry."""
    entry: dict[str, Any] = {"path": str(spec.path), "digest": digest, "fps": fps, "frames": 0, "status": "failed"}
    if problem is not None:
        return {**entry, "issues": [{"path": str(spec.path), "problem": problem}]}, [SourceIssue(str(spec.path),
                                                                                                 problem)]
    issues: list[SourceIssue] = []
    blank = np.zeros((codec.size, codec.size, 3), np.uint8)
    writer.start_source()
    valid: list[bool] = []
    try:
        for frame in _resized_frames(spec, codec.size, cropper, issues):
            writer.write(codec.encode(blank if frame is None else frame))
            valid.append(frame is not None)
    except ValueError as err:
        writer.abort_source()
        issue = SourceIssue(str(spec.path), str(err))
        return {**entry, "issues": [{"path": issue.path, "problem": issue.problem}]}, [issue]
    part, offset, size, frame_offsets = writer.end_source()
    entry.update(frames=len(valid), valid_frames=int(sum(valid)), status="ok", part=part, offset=offset, bytes=size,
                 valid=_pack_array(np.packbits(np.array(valid, bool))),
                 issues=[{"path": i.path, "problem": i.problem} for i in issues])
    if codec.frame_bytes is None:
        entry["frame_offsets"] = _pack_array(np.array(frame_offsets, np.int64))
    return entry, issues


def _pack_array(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()).decode()


def _unpack_array(text: str, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), np.dtype(dtype).newbyteorder("<")).astype(dtype)


class _ChunkWriter:
    """Appends one shard's frames to chunk parts; each part is written to a temporary file and renamed when
    closed (:func:`micronbert.io.atomic_path`), and hashed while written."""

    def __init__(self, root: Path, shard: int, chunk_bytes: int) -> None:
        self.root, self.shard, self.chunk_bytes = root, shard, chunk_bytes
        self.parts: list[dict[str, Any]] = []
        self._stack: contextlib.ExitStack | None = None
        self._handle: BinaryIO | None = None
        self._hash = hashlib.sha256()
        self._written = 0
        self._source_start = 0
        self._source_hash = self._hash.copy()
        self._frame_offsets: list[int] = []

    def __enter__(self) -> _ChunkWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: Any) -> None:
        if self._stack is not None:
            if kind is None:
                self._close_part()
            else:
                self._stack.__exit__(kind, error, trace)  # removes the temporary file

    def start_source(self) -> None:
        if self._handle is not None and self._written >= self.chunk_bytes:
            self._close_part()
        if self._handle is None:
            self._open_part()
        self._source_start, self._source_hash, self._frame_offsets = self._written, self._hash.copy(), []

    def write(self, data: bytes) -> None:
        assert self._handle is not None
        self._frame_offsets.append(self._written)
        self._handle.write(data)
        self._hash.update(data)
        self._written += len(data)

    def abort_source(self) -> None:
        """Forget the bytes of the source being written."""
        assert self._handle is not None
        self._handle.seek(self._source_start)
        self._handle.truncate()
        self._written, self._hash = self._source_start, self._source_hash

    def end_source(self) -> tuple[int, int, int, list[int]]:
        """(part, byte offset, bytes, frame offsets) of the source just written."""
        return len(self.parts), self._source_start, self._written - self._source_start, self._frame_offsets

    def _open_part(self) -> None:
        self._stack = contextlib.ExitStack()
        temporary = self._stack.enter_context(atomic_path(self.root / chunk_name(self.shard, len(self.parts))))
        self._handle = self._stack.enter_context(open(temporary, "wb"))
        self._hash, self._written = hashlib.sha256(), 0

    def _close_part(self) -> None:
        assert self._stack is not None
        self._stack.close()
        self.parts.append({"part": len(self.parts), "bytes": self._written, "sha256": self._hash.hexdigest()})
        self._stack, self._handle = None, None


# ------------------------------------------------------------------------------------------ merging
def merge_frame_store(out_dir: str | os.PathLike[str], timeout_s: float = 0.0, poll_s: float = 2.0) -> Path:
    """Merge the shard records into ``index.npz`` and ``manifest.json``; wait up to ``timeout_s`` for shards
    other ranks are still building. Returns the manifest's path; ``ValueError`` names missing shards."""
    root = Path(out_dir)
    identity = read_json_mapping(root / IDENTITY_FILE, "frame store identity")
    plan = read_json_mapping(root / PLAN_FILE, "frame store plan")
    per_shard = int(plan["sources_per_shard"])
    paths = [entry["path"] for entry in plan["sources"]]
    expected = [paths[begin:begin + per_shard] for begin in range(0, len(paths), per_shard)]
    deadline = time.monotonic() + timeout_s
    while True:
        records = [_read_shard(root, shard) for shard in range(len(expected))]
        missing = [shard for shard, (record, wanted) in enumerate(zip(records, expected))
                   if record is None or [s["path"] for s in record["sources"]] != wanted]
        if not missing:
            break
        if time.monotonic() >= deadline:
            raise ValueError(f"{root}: shard(s) {', '.join(map(str, missing[:10]))} not built "
                             f"({len(missing)} of {len(expected)} missing); run the build on every rank")
        time.sleep(poll_s)
    return _write_merged(root, identity, [r for r in records if r is not None])


def _write_merged(root: Path, identity: dict[str, Any], records: list[dict[str, Any]]) -> Path:
    codec = FrameCodec(identity["fmt"], int(identity["size"]), int(identity["jpeg_quality"]))
    chunk_ids: dict[tuple[int, int], int] = {}
    chunks, sources, used = [], [], []
    for record in records:
        for part in record["chunks"]:
            chunk_ids[(record["shard"], part["part"])] = len(chunks)
            chunks.append({"name": chunk_name(record["shard"], part["part"]), "shard": record["shard"], **part})
        for entry in record["sources"]:
            sources.append({key: entry.get(key) for key in ("path", "frames", "valid_frames", "fps", "digest",
                                                            "status", "issues")} | {"shard": record["shard"]})
            if _is_indexed(entry):
                used.append((chunk_ids[(record["shard"], entry["part"])], entry))
    if not used:
        raise ValueError(f"{root}: no source could be stored: "
                         + "; ".join(f"{s['path']}: {s['issues'][0]['problem']}" for s in sources[:10]))
    arrays = _index_arrays(codec, chunks, used)
    with atomic_path(root / INDEX_FILE) as temporary:
        write_index_arrays(temporary, arrays)
    manifest = {**identity, "frames": int(arrays["source_frames"].sum()), "sources": sources,
                "chunks": [{k: c[k] for k in ("name", "bytes", "sha256")} for c in chunks],
                "index_sha256": hashlib.sha256((root / INDEX_FILE).read_bytes()).hexdigest()}
    return write_json_atomically(root / MANIFEST_FILE, manifest)


def _is_indexed(entry: dict[str, Any]) -> bool:
    return entry["status"] == "ok" and entry["frames"] > 0


def _index_arrays(codec: FrameCodec, chunks: list[dict[str, Any]],
                  used: list[tuple[int, dict[str, Any]]]) -> dict[str, np.ndarray]:
    frames = np.array([e["frames"] for _, e in used], np.int64)
    valid = np.concatenate([np.unpackbits(_unpack_array(e["valid"], "uint8"), count=e["frames"]) for _, e in used])
    frame_offsets = (np.concatenate([_unpack_array(e["frame_offsets"], "int64") for _, e in used])
                     if codec.frame_bytes is None else np.zeros(0, np.int64))
    return {"meta": np.array([FORMAT_VERSION, codec.size, STORE_FORMATS.index(codec.fmt), codec.jpeg_quality],
                             np.int64),
            "source_chunk": np.array([chunk for chunk, _ in used], np.int32),
            "source_offset": np.array([e["offset"] for _, e in used], np.int64),
            "source_bytes": np.array([e["bytes"] for _, e in used], np.int64), "source_frames": frames,
            "source_fps": np.array([e["fps"] for _, e in used], np.float64),
            "valid_bits": np.packbits(valid.astype(bool)), "frame_offsets": frame_offsets,
            "chunk_shard": np.array([c["shard"] for c in chunks], np.int32),
            "chunk_part": np.array([c["part"] for c in chunks], np.int32),
            "chunk_bytes": np.array([c["bytes"] for c in chunks], np.int64)}


def write_index_arrays(path: str | os.PathLike[str], arrays: dict[str, np.ndarray]) -> None:
    """Write the index arrays (:data:`INDEX_KEYS`) to ``path`` as an uncompressed ``.npz`` with fixed entry dates,
    so the same arrays give the same bytes (used by the merge, and to synthesise stores in benchmarks)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.ascontiguousarray(array), allow_pickle=False)


# ------------------------------------------------------------------------------------------ reading
class FrameStore:
    """A built store opened for reading: the index in memory, chunk files opened lazily in each process.

    Open with :meth:`open`. Frames are read with positioned reads into fresh arrays (no memory map: a store
    far larger than memory never fills a worker's resident set, a truncated chunk raises an error instead of a
    bus error, and at most ``max_open_files`` chunks are held open, least recently used closed first). Open
    files are dropped on pickling and after a fork, so each DataLoader worker opens its own.
    """

    def __init__(self, directory: str | os.PathLike[str], arrays: dict[str, np.ndarray], digest: str,
                 max_open_files: int = 64) -> None:
        self.directory = Path(directory)
        meta = arrays["meta"]
        self.codec = FrameCodec(STORE_FORMATS[int(meta[2])], int(meta[1]), int(meta[3]))
        self.digest = digest
        self.source_chunk, self.source_offset = arrays["source_chunk"], arrays["source_offset"]
        self.source_bytes, self.source_frames = arrays["source_bytes"], arrays["source_frames"]
        self.source_fps, self.valid_bits = arrays["source_fps"], arrays["valid_bits"]
        self.frame_offsets = arrays["frame_offsets"]
        self.chunk_shard, self.chunk_part, self.chunk_bytes = (arrays["chunk_shard"], arrays["chunk_part"],
                                                               arrays["chunk_bytes"])
        self.frame_base = np.concatenate([[0], np.cumsum(self.source_frames)]).astype(np.int64)
        check_positive_int("max_open_files", max_open_files)
        self.max_open_files = max_open_files
        self._files: OrderedDict[int, BinaryIO] = OrderedDict()
        self._pid = os.getpid()

    @staticmethod
    def read_index_bytes(directory: str | os.PathLike[str]) -> bytes:
        """The index file's bytes (read on rank 0 and broadcast; see :meth:`open`)."""
        path = Path(directory) / INDEX_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{directory}: not a finished frame store (no {INDEX_FILE}); build it first")
        return path.read_bytes()

    @classmethod
    def open(cls, directory: str | os.PathLike[str], index_bytes: bytes | None = None, max_open_files: int = 64,
             check_chunks: bool = True) -> FrameStore:
        """Open the store in ``directory``; ``index_bytes`` (from :meth:`read_index_bytes` on another rank) spares
        reading the index. ``check_chunks`` compares each chunk's size with the index (one ``stat`` per chunk)."""
        data = cls.read_index_bytes(directory) if index_bytes is None else bytes(index_bytes)
        store = cls(directory, _load_index(data, Path(directory) / INDEX_FILE), hashlib.sha256(data).hexdigest(),
                    max_open_files)
        if check_chunks:
            store.check_chunk_sizes()
        return store

    @property
    def size(self) -> int:
        return self.codec.size

    @property
    def fmt(self) -> str:
        return self.codec.fmt

    @property
    def num_sources(self) -> int:
        return len(self.source_frames)

    @property
    def num_frames(self) -> int:
        return int(self.frame_base[-1])

    def chunk_path(self, chunk: int) -> Path:
        return self.directory / chunk_name(int(self.chunk_shard[chunk]), int(self.chunk_part[chunk]))

    def check_chunk_sizes(self) -> None:
        """``ValueError`` (or ``FileNotFoundError``) naming the first chunk whose size differs from the index."""
        for chunk, expected in enumerate(self.chunk_bytes.tolist()):
            path = self.chunk_path(chunk)
            if not path.is_file():
                raise FileNotFoundError(f"{path}: chunk listed in the index is missing")
            found = path.stat().st_size
            if found != expected:
                raise ValueError(f"{path}: {found} bytes, the index expects {expected}; the store is damaged")

    def manifest(self) -> dict[str, Any]:
        """The store's manifest (sources with paths and problems, chunks with checksums)."""
        return read_json_mapping(self.directory / MANIFEST_FILE, "frame store manifest")

    def source_paths(self) -> list[str]:
        """The path of each indexed source, in index order (sources that could not be read are not indexed)."""
        return [s["path"] for s in self.manifest()["sources"] if _is_indexed(s)]

    def valid(self, source: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Valid flags of frames ``start..stop-1`` of ``source``."""
        stop = int(self.source_frames[source]) if stop is None else stop
        first, last = int(self.frame_base[source]) + start, int(self.frame_base[source]) + stop
        bits = np.unpackbits(self.valid_bits[first // 8:(last + 7) // 8])
        return bits[first % 8:first % 8 + last - first].astype(bool)

    def read(self, source: int, start: int, stop: int) -> np.ndarray:
        """Frames ``start..stop-1`` of ``source`` as (n, S, S, 3) uint8, with one contiguous read."""
        count = int(self.source_frames[source])
        if not 0 <= start < stop <= count:
            raise IndexError(f"frames {start}..{stop - 1} outside source {source} (0..{count - 1})")
        offset, chunk = int(self.source_offset[source]), int(self.source_chunk[source])
        if self.codec.frame_bytes is not None:
            begin = offset + start * self.codec.frame_bytes
            bounds = np.arange(stop - start + 1, dtype=np.int64) * self.codec.frame_bytes
        else:
            base = int(self.frame_base[source])
            end = int(self.frame_offsets[base + stop]) if stop < count else offset + int(self.source_bytes[source])
            bounds = np.append(self.frame_offsets[base + start:base + stop], end)
            begin, bounds = int(bounds[0]), bounds - bounds[0]
        data = self._read_bytes(chunk, begin, int(bounds[-1]))
        try:
            return self.codec.decode(data, bounds)
        except ValueError as err:
            raise ValueError(f"{self.chunk_path(chunk)} (source {source}, frames {start}..{stop - 1}): {err}") from None

    def read_frames(self, source: int, frames: Sequence[int], max_gap: int = 0) -> np.ndarray:
        """Frames ``frames`` of ``source`` (any order, repeats allowed) as (n, S, S, 3); frames at most
        ``max_gap`` apart share one contiguous read."""
        wanted = np.unique(np.asarray(frames, np.int64))
        splits = np.flatnonzero(np.diff(wanted) > max_gap + 1) + 1
        gathered = np.empty((len(wanted), self.size, self.size, 3), np.uint8)
        done = 0
        for cluster in np.split(wanted, splits):
            block = self.read(source, int(cluster[0]), int(cluster[-1]) + 1)
            gathered[done:done + len(cluster)] = block[cluster - cluster[0]]
            done += len(cluster)
        return gathered[np.searchsorted(wanted, np.asarray(frames, np.int64))]

    def _read_bytes(self, chunk: int, offset: int, length: int) -> np.ndarray:
        buffer = np.empty(length, np.uint8)
        view, handle, done = memoryview(buffer), self._handle(chunk), 0
        handle.seek(offset)
        while done < length:
            got = handle.readinto(view[done:])
            if not got:
                raise ValueError(f"{self.chunk_path(chunk)}: ends at byte {offset + done}, the index expects "
                                 f"{offset + length}; the store is damaged (run verify)")
            done += got
        return buffer

    def _handle(self, chunk: int) -> BinaryIO:
        if self._pid != os.getpid():  # forked: never share a file position with the parent
            self._files, self._pid = OrderedDict(), os.getpid()
        handle = self._files.get(chunk)
        if handle is None:
            handle = open(self.chunk_path(chunk), "rb", buffering=0)  # kept open; closed on eviction
            self._files[chunk] = handle
            if len(self._files) > self.max_open_files:
                self._files.popitem(last=False)[1].close()
        self._files.move_to_end(chunk)
        return handle

    def close(self) -> None:
        """Close the chunk files this process opened."""
        while self._files:
            self._files.popitem()[1].close()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_files"] = OrderedDict()
        return state


def _load_index(data: bytes, where: Path) -> dict[str, np.ndarray]:
    """The index arrays, checked for consistency; ``ValueError`` naming ``where`` otherwise."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in INDEX_KEYS}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise ValueError(f"{where}: not a readable frame store index ({type(err).__name__}: {err})") from None
    meta = arrays["meta"]
    if meta.shape != (4,) or int(meta[0]) != FORMAT_VERSION or not 0 <= int(meta[2]) < len(STORE_FORMATS):
        raise ValueError(f"{where}: unknown frame store format {meta.tolist()} (this version reads "
                         f"format {FORMAT_VERSION})")
    sources = len(arrays["source_frames"])
    frames = int(arrays["source_frames"].sum())
    chunks = len(arrays["chunk_bytes"])
    problems = [name for name in ("source_chunk", "source_offset", "source_bytes", "source_fps")
                if arrays[name].shape != (sources,)]
    if sources == 0 or arrays["source_frames"].min() < 1:
        problems.append("source_frames (no source, or a source without frames)")
    if len(arrays["valid_bits"]) != (frames + 7) // 8:
        problems.append("valid_bits")
    if STORE_FORMATS[int(meta[2])] == "jpeg" and len(arrays["frame_offsets"]) != frames:
        problems.append("frame_offsets")
    if sources and (arrays["source_chunk"].min() < 0 or arrays["source_chunk"].max() >= chunks):
        problems.append("source_chunk (chunk number out of range)")
    elif sources and np.any(arrays["source_offset"] + arrays["source_bytes"]
                            > arrays["chunk_bytes"][arrays["source_chunk"]]):
        problems.append("source_offset/source_bytes (beyond the end of a chunk)")
    if problems:
        raise ValueError(f"{where}: inconsistent frame store index ({', '.join(problems)})")
    return arrays


def verify(directory: str | os.PathLike[str], against: str | os.PathLike[str] | None = None,
           full: bool = False) -> int:
    """Check a store (e.g. a node-local copy) against its manifest: the index's SHA-256, every chunk's presence and
    size, and with ``full`` every chunk's SHA-256; ``against``: a store folder whose manifest must be identical.
    Returns the number of chunks checked; ``ValueError`` names every file at fault."""
    root = Path(directory)
    if not (root / MANIFEST_FILE).is_file():
        raise FileNotFoundError(f"{root}: not a finished frame store (no {MANIFEST_FILE})")
    manifest = read_json_mapping(root / MANIFEST_FILE, "frame store manifest")
    problems = []
    if against is not None and read_json_mapping(Path(against) / MANIFEST_FILE, "frame store manifest") != manifest:
        problems.append(f"{root / MANIFEST_FILE} differs from {Path(against) / MANIFEST_FILE}")
    index = root / INDEX_FILE
    if not index.is_file() or _file_sha256(index) != manifest.get("index_sha256"):
        problems.append(f"{index}: missing or not the index the manifest lists")
    for chunk in manifest.get("chunks", []):
        path = root / chunk["name"]
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.stat().st_size != chunk["bytes"]:
            problems.append(f"{path}: {path.stat().st_size} bytes, the manifest lists {chunk['bytes']}")
        elif full and _file_sha256(path) != chunk["sha256"]:
            problems.append(f"{path}: content differs from the manifest's SHA-256")
    if problems:
        raise ValueError(f"{root}: {len(problems)} problem(s): " + "; ".join(problems[:10]))
    return len(manifest.get("chunks", []))


def _file_sha256(path: Path, block: int = 1 << 23) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for piece in iter(lambda: handle.read(block), b""):
            digest.update(piece)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------ pairs
class StorePairDataset(Dataset):
    """Pairs (I_t, I_{t+δ}) of uint8 (S, S, 3) tensors from a :class:`FrameStore`.

    Item ``i`` is the same pair as item ``i`` of a :class:`~micronbert.data.pretrain_pairs.PretrainPairDataset`
    over the same sources: anchors ordered by source then frame, δ drawn from a generator seeded by
    (seed, epoch, i). Anchors are kept as runs (one per source when every frame is valid), so memory grows with
    the number of sources, not frames. ``block``: items per block of :meth:`sampler`'s order (1: plain
    :class:`PairSampler`); ``max_gap``: :meth:`__getitems__` reads frames at most this far apart in one go.
    """

    def __init__(self, store: FrameStore, delta_s: tuple[float, float], seed: int = 0, block: int = 1,
                 max_gap: int = 4) -> None:
        if len(delta_s) != 2 or not 0.0 < delta_s[0] <= delta_s[1]:
            raise ValueError(f"delta_s must be (min, max) seconds with 0 < min <= max, got {delta_s}")
        if isinstance(block, bool) or not isinstance(block, int) or block < 1:
            raise ValueError(f"block must be a positive integer, got {block!r}")
        if max_gap < 0:
            raise ValueError(f"max_gap must be >= 0, got {max_gap}")
        self.store = store
        self.delta_s = (float(delta_s[0]), float(delta_s[1]))
        self.seed, self.block, self.max_gap, self.epoch = int(seed), block, int(max_gap), 0
        self._low, self._high = _delta_ranges(store.source_fps, self.delta_s)
        self._run_start, self._run_cum, self._all_valid = _anchor_runs(store, self._low, self._high)
        if len(self) == 0:
            raise ValueError("no frame pair can be drawn from the store: every source is shorter than δ "
                             "or has too few readable frames")

    def __len__(self) -> int:
        return int(self._run_cum[-1])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def locate(self, index: int) -> tuple[int, int, int]:
        """(source number, t, t + δ) of item ``index`` in the current epoch."""
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"pair index {index} out of range 0..{len(self) - 1}")
        run = int(np.searchsorted(self._run_cum, index, side="right") - 1)
        frame = int(self._run_start[run]) + index - int(self._run_cum[run])
        source = int(np.searchsorted(self.store.frame_base, frame, side="right") - 1)
        anchor = frame - int(self.store.frame_base[source])
        low, high, fps = int(self._low[source]), int(self._high[source]), float(self.store.source_fps[source])
        last = min(int(self.store.source_frames[source]) - 1, anchor + high)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        wanted = min(max(round(rng.uniform(*self.delta_s) * fps), low), last - anchor) + anchor
        if self._all_valid[source]:
            return source, anchor, wanted
        candidates = anchor + low + np.flatnonzero(self.store.valid(source, anchor + low, last + 1))
        return source, anchor, int(candidates[np.argmin(np.abs(candidates - wanted))])

    def __getitem__(self, index: int | tuple[int, int]) -> tuple:
        """(I_t, I_{t+δ}) of item ``index``; for a ``(step, index)`` pair (as a step-numbering batch sampler
        deals them), (step, I_t, I_{t+δ})."""
        if isinstance(index, tuple):
            step, item = index
            return (step, *self[item])
        source, first, second = self.locate(index)
        frames = self.store.read_frames(source, [first, second])
        return torch.from_numpy(frames[0]), torch.from_numpy(frames[1])

    def __getitems__(self, indices: Sequence[int | tuple[int, int]]) -> list[tuple]:
        """The items ``indices`` (what a DataLoader asks for per batch; plain indices or ``(step, index)``
        pairs, as :meth:`__getitem__`), reading each source's frames that lie within ``max_gap`` of each other
        with one read."""
        pairs = self._pairs([i[1] if isinstance(i, tuple) else i for i in indices])
        return [(i[0], *pair) if isinstance(i, tuple) else pair for i, pair in zip(indices, pairs)]

    def _pairs(self, indices: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        located = [self.locate(i) for i in indices]
        by_source: dict[int, list[int]] = {}
        for position, (source, _, _) in enumerate(located):
            by_source.setdefault(source, []).append(position)
        items: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(located)
        for source, positions in by_source.items():
            wanted = [frame for p in positions for frame in located[p][1:]]
            frames = torch.from_numpy(self.store.read_frames(source, wanted, self.max_gap))
            for k, position in enumerate(positions):
                items[position] = (frames[2 * k], frames[2 * k + 1])
        return items  # type: ignore[return-value]

    def fingerprint(self) -> str:
        """Identifies the store's content and the sampling (checked when a run is resumed)."""
        parts = [self.store.digest, self.delta_s, self.seed, self.block]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]

    def report(self) -> DataReport:
        """What the store holds, as pre-training reports it: sources used, frames, pairs and every problem met
        while the store was built (read from the manifest)."""
        manifest = self.store.manifest()
        issues = [SourceIssue(i["path"], i["problem"]) for s in manifest["sources"] for i in s.get("issues") or []]
        return DataReport(sources=[s["path"] for s in manifest["sources"] if _is_indexed(s)],
                          frames=self.store.num_frames, pairs=len(self), issues=issues)

    def sampler(self, global_batch: int, rank: int = 0, world_size: int = 1) -> PairSampler:
        """The distributed, resumable sampler for this dataset (block-wise when ``block > 1``)."""
        if self.block == 1:
            return PairSampler(len(self), global_batch, rank, world_size, self.seed)
        return WindowedPairSampler(len(self), global_batch, rank, world_size, self.seed, self.block)


def _delta_ranges(fps: np.ndarray, delta_s: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per source, the range of δ in frames (:func:`delta_frames`, once per distinct fps)."""
    if len(fps) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rates, inverse = np.unique(fps, return_inverse=True)
    ranges = np.array([delta_frames(delta_s, float(rate)) for rate in rates], np.int64)
    return ranges[inverse, 0], ranges[inverse, 1]


def _anchor_runs(store: FrameStore, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(run starts as global frame numbers, cumulative run lengths, per source "every frame valid").

    An anchor is a valid frame t with a valid frame in [t + δ_min, t + δ_max] of its source; runs of
    consecutive anchors never cross a source boundary. Sources are processed in batches of about
    :data:`ANCHOR_BATCH_FRAMES` frames so that start-up memory stays bounded.
    """
    base = store.frame_base
    valid = np.unpackbits(store.valid_bits, count=store.num_frames).view(bool)
    all_valid = np.zeros(store.num_sources, bool)
    starts, lengths = [], []
    batch_of = base[:-1] // ANCHOR_BATCH_FRAMES
    edges = np.concatenate([[0], np.flatnonzero(np.diff(batch_of)) + 1, [store.num_sources]])
    for first, last in zip(edges[:-1], edges[1:]):
        run_starts, run_lengths = _batch_runs(valid, base[first:last + 1], low[first:last], high[first:last],
                                              all_valid[first:last])
        starts.append(run_starts)
        lengths.append(run_lengths)
    run_lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    run_cum = np.concatenate([[0], np.cumsum(run_lengths)]).astype(np.int64)
    return (np.concatenate(starts) if starts else np.zeros(0, np.int64)), run_cum, all_valid


def _batch_runs(valid: np.ndarray, base: np.ndarray, low: np.ndarray, high: np.ndarray,
                all_valid_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Anchor runs of the sources whose frames are ``base[0]..base[-1]-1`` (fills ``all_valid_out``)."""
    offset = int(base[0])
    local = base - offset
    flags = valid[offset:int(base[-1])]
    cumulative = np.concatenate([[0], np.cumsum(flags, dtype=np.int64)])
    counts = np.diff(local)
    all_valid_out[:] = cumulative[local[1:]] - cumulative[local[:-1]] == counts
    owner = np.repeat(np.arange(len(counts)), counts)
    frame, end = np.arange(len(flags)), local[1:][owner]
    begin = np.minimum(frame + low[owner], end)
    stop = np.minimum(frame + high[owner] + 1, end)
    anchor = flags & (cumulative[stop] > cumulative[begin])
    source_start = np.zeros(len(flags) + 1, bool)
    source_start[local] = True
    previous = np.concatenate([[False], anchor[:-1]])
    following = np.concatenate([anchor[1:], [False]])
    run_starts = np.flatnonzero(anchor & (source_start[:-1] | ~previous))
    run_ends = np.flatnonzero(anchor & (source_start[1:] | ~following)) + 1
    return run_starts + offset, run_ends - run_starts


class WindowedPairSampler(PairSampler):
    """A :class:`PairSampler` whose epoch order is a permutation of blocks of ``block`` consecutive items.

    Consecutive items are consecutive anchors of one source, so a per-rank batch holds ``per_rank / block``
    windows, each read contiguously by :meth:`StorePairDataset.__getitems__`. The order is drawn from
    (seed, epoch) alone, so ``set_position(epoch, batch)`` resumes exactly and K processes see the batches of
    one process. The items of a block are near-duplicates: keep ``block`` small against the per-rank batch.
    """

    def __init__(self, dataset_size: int, global_batch: int, rank: int = 0, world_size: int = 1, seed: int = 0,
                 block: int = 8) -> None:
        super().__init__(dataset_size, global_batch, rank, world_size, seed)
        if isinstance(block, bool) or not isinstance(block, int) or block < 1:
            raise ValueError(f"block must be a positive integer, got {block!r}")
        self.block = block

    def epoch_order(self) -> torch.Tensor:
        """This epoch's order of all item indices."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        blocks = torch.randperm(math.ceil(self.dataset_size / self.block), generator=generator)
        order = (blocks[:, None] * self.block + torch.arange(self.block)).flatten()
        return order[order < self.dataset_size]

    def __iter__(self) -> Iterator[int]:
        order = self.epoch_order()
        for batch in range(self.start_batch, self.batches_per_epoch):
            begin = batch * self.global_batch + self.rank * self.per_rank
            yield from order[begin:begin + self.per_rank].tolist()
