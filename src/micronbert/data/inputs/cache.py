"""On-disk cache of the input layer: one safetensors file per sample and input spec.

An entry's key is a SHA-256 of everything that determines the array, so that a stale entry is never returned:

- the pixels of the frames (or the image file) the input reads: a SHA-256 of each decoded image (shape
  included), with each frame's number relative to the onset (the resampling weights depend on it); the same
  pixels give the same key wherever the files live and whichever table, fold, run or method reads them, and an
  edited frame gives a new key;
- the input spec (:meth:`InputSpec.describe`);
- the context: the optical-flow method actually used (flow kinds only, so that the other kinds are shared
  between flow methods), the face backend (``regions``), the builders' geometry (working size, region boxes);
- :data:`INPUTS_VERSION`, raised whenever a builder changes what it computes.

Entries are written through a temporary file renamed into place (:func:`micronbert.io.atomic_path`), so an
interrupted run leaves no half-written entry; an unreadable or mis-shaped entry is recomputed and overwritten.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from micronbert.data.inputs.spec import InputSpec
from micronbert.io import atomic_path

INPUTS_VERSION = "inputs-v1"
ENTRY_NAME = "input"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/micronbert/inputs`` (``~/.cache/micronbert/inputs`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "micronbert" / "inputs"


def pixel_digest(image: np.ndarray) -> str:
    """SHA-256 of a decoded image's shape, type and pixels."""
    array = np.ascontiguousarray(image)
    return hashlib.sha256(f"{array.shape}|{array.dtype}|".encode() + array.tobytes()).hexdigest()


def entry_key(spec: InputSpec, sources: Sequence[tuple[int, str]], context: str) -> str:
    """The key of one sample's ``spec`` array: ``sources`` are (frame number relative to the onset, pixel digest)
    of what it reads, in the reading order; ``context`` names the method-dependent choices."""
    text = "|".join([INPUTS_VERSION, spec.describe(), context] + [f"{offset}:{digest}" for offset, digest in sources])
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class CacheStats:
    """How many sample × spec arrays were computed and how many were read from the cache."""

    computed: int = 0
    cached: int = 0


class InputCache:
    """Arrays by key under ``root`` (``root/ab/abcdef….safetensors``)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.stats = CacheStats()

    def path_for(self, key: str) -> Path:
        """Where the entry ``key`` lives."""
        return self.root / key[:2] / f"{key}.safetensors"

    def read(self, key: str, shape: tuple[int, ...]) -> np.ndarray | None:
        """The cached array of ``key``, or None when absent, unreadable or not of ``shape``."""
        path = self.path_for(key)
        if not path.is_file():
            return None
        try:
            array = load_file(str(path))[ENTRY_NAME]
        except (SafetensorError, OSError, KeyError, ValueError):
            return None
        if array.shape != shape:
            return None
        self.stats.cached += 1
        return array

    def write(self, key: str, array: np.ndarray, description: str) -> None:
        """Store ``array`` under ``key`` atomically, with ``description`` in the file's metadata."""
        with atomic_path(self.path_for(key)) as temporary:
            save_file({ENTRY_NAME: np.ascontiguousarray(array)}, str(temporary),
                      metadata={"version": INPUTS_VERSION, "description": description})
        self.stats.computed += 1
