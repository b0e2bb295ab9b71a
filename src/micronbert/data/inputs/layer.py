"""The input layer: for every usable row of a sample table, one array per :class:`InputSpec`, computed once per
sample and spec and cached on disk (:mod:`micronbert.data.inputs.cache`), so that every fold, run and method that
reads the same input shares it.

Each row's frames are read once for all specs (the union of the frames they read); a spec's array is then read
from the cache or built (:mod:`micronbert.data.inputs.builders`) and stored. Bad rows raise
:class:`~micronbert.data.labelled_pairs.SampleError` naming the sample, or are skipped and listed.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from micronbert.data.faces import FaceAligner, FaceAlignmentError, FaceBackend, FaceDetection, make_backend
from micronbert.data.flow import FLOW_METHODS
from micronbert.data.frames import frame_number, read_frame
from micronbert.data.inputs.builders import (
    FLOW_TAG,
    REGIONS_TAG,
    ClipFrames,
    build_apex,
    build_flow,
    build_flow_cells,
    build_flow_sequence,
    build_pair,
    build_precomputed,
    build_regions,
    build_sequence,
    frames_read,
    output_shape,
    resolve_flow_method,
)
from micronbert.data.inputs.cache import CacheStats, InputCache, entry_key, pixel_digest
from micronbert.data.inputs.spec import FLOW_KINDS, InputSpec
from micronbert.data.labelled_pairs import SampleError, row_key

logger = logging.getLogger(__name__)

FRAME_COLUMNS = ("dataset", "subject", "clip", "frames", "onset", "apex", "offset")
APEX_KINDS = ("pair", "apex", "flow")
IMAGE_BUILDERS = {"pair": build_pair, "apex": build_apex, "sequence": build_sequence}
FLOW_BUILDERS = {"flow": build_flow, "flow_sequence": build_flow_sequence, "flow_cells": build_flow_cells}


@dataclass
class InputBatch:
    """The inputs of the usable rows: ``tensors[j]`` is (n, …) float32 for ``specs[j]`` (layouts in
    :class:`InputSpec`), sample i being table row ``rows[i]`` named ``keys[i]``; ``skipped`` lists (sample key,
    reason) of the rows left out; ``flow_method`` is the optical flow actually used (None when no spec needs one);
    ``stats`` counts arrays computed and read from the cache under ``cache_dir``."""

    specs: tuple[InputSpec, ...]
    tensors: tuple[torch.Tensor, ...]
    rows: np.ndarray
    keys: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    flow_method: str | None = None
    stats: CacheStats = field(default_factory=CacheStats)
    cache_dir: Path | None = None

    def __len__(self) -> int:
        return len(self.rows)


def build_inputs(table: pd.DataFrame, specs: Sequence[InputSpec], flow_method: str = "auto",
                 cache_dir: str | Path | None = None, progress: bool = False, skip_bad: bool = False,
                 face_backend: str | FaceBackend = "opencv") -> InputBatch:
    """Every usable row's input arrays for ``specs``, from the cache or computed once and cached.

    flow_method: ``auto`` (TV-L1 when ``cv2.optflow`` exists, else DIS), ``tvl1``, ``dis`` or ``farneback``; the
    one used is in the result and in the log. cache_dir: None for :func:`~micronbert.data.inputs.cache.
    default_cache_dir`. face_backend: the backend (or its name for :func:`make_backend`) that finds the face on
    the onset frame for ``regions`` inputs. skip_bad: leave out and list a row that cannot be used instead of
    raising :class:`SampleError` naming it. Labels are not read: every row with usable frames (or image) is kept,
    and the caller selects rows by label. Raises ValueError for no or non-InputSpec specs, an unknown flow method,
    or a table without the columns the specs read.
    """
    specs = _checked_specs(specs)
    if flow_method not in FLOW_METHODS:
        raise ValueError(f"unknown optical-flow method {flow_method!r}; choose one of {FLOW_METHODS}")
    _check_columns(table, specs)
    method = resolve_flow_method(flow_method) if any(spec.kind in FLOW_KINDS for spec in specs) else None
    if method is not None:
        logger.info("input layer: optical flow %s (asked for %s)", method, flow_method)
    aligner = FaceAligner(backend=_backend(face_backend)) if any(spec.kind == "regions" for spec in specs) else None
    builder = _SampleBuilder(specs, InputCache(cache_dir), method, aligner)
    arrays: list[list[np.ndarray]] = [[] for _ in specs]
    rows, keys, skipped = [], [], []
    for index, row in enumerate(tqdm(table.itertuples(index=False), total=len(table), desc="inputs",
                                     disable=not progress)):
        try:
            sample = builder.arrays(row)
        except SampleError as err:
            if not skip_bad:
                raise
            skipped.append((row_key(row), str(err)))
            continue
        for collected, array in zip(arrays, sample):
            collected.append(array)
        rows.append(index)
        keys.append(row_key(row))
    tensors = tuple(_stacked(collected, spec) for collected, spec in zip(arrays, specs))
    stats = builder.cache.stats
    logger.info("input layer: %d samples, %d arrays computed, %d read from %s", len(rows), stats.computed,
                stats.cached, builder.cache.root)
    return InputBatch(specs, tensors, np.asarray(rows, dtype=np.int64), keys, skipped, method, stats,
                      builder.cache.root)


def compute_input(spec: InputSpec, clip: ClipFrames, image: np.ndarray | None, flow_method: str | None,
                  face: FaceDetection | None) -> np.ndarray:
    """One sample's array of ``spec`` (dispatch to the builder of its kind)."""
    if spec.kind == "precomputed":
        if image is None:
            raise ValueError("no precomputed image was read")
        return build_precomputed(image, spec)
    if spec.kind == "regions":
        if face is None:
            raise ValueError("regions need the face of the onset frame")
        return build_regions(clip, spec, face)
    if spec.kind in FLOW_BUILDERS:
        if flow_method is None:
            raise ValueError(f"a {spec.kind} input needs a resolved flow method")
        return FLOW_BUILDERS[spec.kind](clip, spec, flow_method)
    return IMAGE_BUILDERS[spec.kind](clip, spec)


def _checked_specs(specs: Sequence[InputSpec]) -> tuple[InputSpec, ...]:
    specs = tuple(specs)
    if not specs:
        raise ValueError("no input specs given")
    odd = [spec for spec in specs if not isinstance(spec, InputSpec)]
    if odd:
        raise ValueError(f"input specs must be InputSpec instances, got {odd[0]!r}")
    return specs


def _check_columns(table: pd.DataFrame, specs: tuple[InputSpec, ...]) -> None:
    needed = list(FRAME_COLUMNS) + (["image"] if any(spec.kind == "precomputed" for spec in specs) else [])
    missing = [name for name in needed if name not in table.columns]
    if missing:
        hint = (" (a precomputed input reads the image column, written by micronbert prepare flow-images)"
                if "image" in missing else "")
        raise ValueError(f"the sample table lacks the columns {missing}{hint}")


def _backend(face_backend: str | FaceBackend) -> FaceBackend:
    return make_backend(face_backend) if isinstance(face_backend, str) else face_backend


def _stacked(arrays: list[np.ndarray], spec: InputSpec) -> torch.Tensor:
    if not arrays:
        return torch.zeros((0, *output_shape(spec)), dtype=torch.float32)
    return torch.from_numpy(np.stack(arrays).astype(np.float32, copy=False))


class _SampleBuilder:
    """Reads a row's frames once and returns its arrays of every spec, from the cache or computed."""

    def __init__(self, specs: tuple[InputSpec, ...], cache: InputCache, flow_method: str | None,
                 aligner: FaceAligner | None) -> None:
        self.specs = specs
        self.cache = cache
        self.flow_method = flow_method
        self.aligner = aligner
        self.contexts = [self._context(spec) for spec in specs]

    def _context(self, spec: InputSpec) -> str:
        if spec.kind in FLOW_KINDS:
            return f"{FLOW_TAG}|flow={self.flow_method}"
        if spec.kind == "regions" and self.aligner is not None:
            backend = self.aligner.backend
            return f"{REGIONS_TAG}|face={backend.name}:{getattr(backend, 'settings', '')!r}:{self.aligner.config!r}"
        return ""

    def arrays(self, row: Any) -> list[np.ndarray]:
        key = row_key(row)
        onset, apex, offset = (None if pd.isna(value) else int(value) for value in (row.onset, row.apex, row.offset))
        plans = self._plans(row, key, onset, apex, offset)
        frames = self._read_frames(row, key, sorted({number for plan in plans for number in plan}))
        digests = {number: pixel_digest(frame) for number, frame in frames.items()}
        image, image_digest = self._read_image(row, key)
        clip = ClipFrames(frames, onset if onset is not None else 0, apex, offset)
        face: FaceDetection | None = None
        out = []
        for spec, context, plan in zip(self.specs, self.contexts, plans):
            sources = ([(0, image_digest)] if spec.kind == "precomputed"
                       else [(number - clip.onset, digests[number]) for number in plan])
            entry = entry_key(spec, sources, context)
            array = self.cache.read(entry, output_shape(spec))
            if array is None:
                if spec.kind == "regions" and face is None:
                    face = self._face(clip, row, key)
                array = self._compute(spec, clip, image, face, key)
                self.cache.write(entry, array, f"{key}: {spec.describe()}")
            out.append(array)
        return out

    def _plans(self, row: Any, key: str, onset: int | None, apex: int | None,
               offset: int | None) -> list[tuple[int, ...]]:
        frame_specs = [spec for spec in self.specs if spec.kind != "precomputed"]
        if frame_specs:
            _check_annotation(key, frame_specs, onset, apex, offset)
            if len(row.frames) == 0:
                raise SampleError(f"{key}: the table lists no frames (load the dataset with check_frames=True)")
        numbers = _frame_numbers(row, key) if frame_specs else []
        plans = []
        for spec in self.specs:
            try:
                plans.append(frames_read(spec, numbers, onset, apex, offset))
            except ValueError as err:
                raise SampleError(f"{key}: {spec.kind} input: {err} ({Path(row.frames[0]).parent})") from None
        missing = sorted({number for plan in plans for number in plan} - set(numbers))
        if missing:
            names = {number: name for name, number in (("offset", offset), ("apex", apex), ("onset", onset))}
            what = names.get(missing[0], "")
            raise SampleError(f"{key}: {what} frame {missing[0]} is not among the clip's frames "
                              f"({Path(row.frames[0]).parent})")
        return plans

    def _read_frames(self, row: Any, key: str, numbers: list[int]) -> dict[int, np.ndarray]:
        paths = {frame_number(path): path for path in row.frames} if numbers else {}
        frames: dict[int, np.ndarray] = {}
        for number in numbers:
            try:
                frames[number] = read_frame(paths[number])
            except (FileNotFoundError, ValueError) as err:
                raise SampleError(f"{key}: frame {number}: {err}") from None
        shapes = {frame.shape for frame in frames.values()}
        if len(shapes) > 1:
            first, other = sorted(shapes)[:2]
            raise SampleError(f"{key}: the clip's frames differ in size: {first[:2]} vs {other[:2]}")
        return frames

    def _read_image(self, row: Any, key: str) -> tuple[np.ndarray | None, str]:
        if not any(spec.kind == "precomputed" for spec in self.specs):
            return None, ""
        path = row.image
        if path is None or pd.isna(path) or not str(path).strip():
            raise SampleError(f"{key}: no precomputed image (the image column is empty)")
        try:
            image = read_frame(Path(str(path)).expanduser())
        except (FileNotFoundError, ValueError) as err:
            raise SampleError(f"{key}: precomputed image: {err}") from None
        return image, pixel_digest(image)

    def _face(self, clip: ClipFrames, row: Any, key: str) -> FaceDetection:
        source = str(next((path for path in row.frames if frame_number(path) == clip.onset), key))
        try:
            face, _ = self.aligner.detect(clip[clip.onset], source)
        except FaceAlignmentError as err:
            raise SampleError(f"{key}: regions input: {err}") from None
        return face

    def _compute(self, spec: InputSpec, clip: ClipFrames, image: np.ndarray | None, face: FaceDetection | None,
                 key: str) -> np.ndarray:
        try:
            return compute_input(spec, clip, image, self.flow_method, face)
        except ValueError as err:
            raise SampleError(f"{key}: {spec.kind} input: {err}") from None


def _check_annotation(key: str, specs: list[InputSpec], onset: int | None, apex: int | None,
                      offset: int | None) -> None:
    """The checks of :func:`micronbert.data.labelled_pairs.read_pair` for the kinds that read the apex, and the
    onset-before-offset check for the sequence kinds."""
    if any(spec.kind in APEX_KINDS for spec in specs):
        if onset is None or apex is None:
            raise SampleError(f"{key}: onset or apex frame is not known")
        if onset > apex:
            raise SampleError(f"{key}: onset {onset} is after apex {apex}")
        if offset is not None and apex > offset:
            raise SampleError(f"{key}: apex {apex} is outside the clip (offset {offset})")
    if any(spec.kind not in APEX_KINDS for spec in specs):
        if onset is None or offset is None:
            raise SampleError(f"{key}: onset or offset frame is not known")
        if offset <= onset:
            raise SampleError(f"{key}: offset {offset} is not after onset {onset}: a sequence needs two frames")


def _frame_numbers(row: Any, key: str) -> list[int]:
    try:
        return [frame_number(path) for path in row.frames]
    except ValueError as err:
        raise SampleError(f"{key}: {err}") from None
