"""On-disk cache of encoder tokens, one file per frame, for the ``frozen`` recognition mode (METHOD.md §8).

A cached entry is keyed by three things, so that a stale entry can never be returned:

- the encoder: a SHA-256 of the backbone's configuration and weights (:func:`encoder_digest`);
- the frame: a SHA-256 of the image *pixels* after pre-processing (same pixels, same tokens, wherever the
  file lives; an edited file gets new tokens);
- the pre-processing: a short text tag (model input size, interpolation, normalisation) folded into the key.

Entries are safetensors files (never pickles) written through a temporary file and renamed into place, so an
interrupted run leaves no half-written entry and every later fold or re-run reuses what exists.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from micronbert.config import Config
from micronbert.data.transforms import IMAGENET_MEAN, IMAGENET_STD, to_model_input
from micronbert.io import atomic_path, check_positive_int
from micronbert.model.micronbert import MicronBERT

CACHE_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


@dataclass(frozen=True)
class TokenCacheConfig(Config):
    """Where and how encoder tokens are cached (``frozen`` recognition): ``dir`` (None:
    :func:`default_cache_dir`), ``dtype`` of the stored tokens, ``encode_batch_size`` frames per encoder call.
    None of them changes a prediction beyond the rounding of ``dtype``."""

    dir: str | None = None
    dtype: str = "float16"
    encode_batch_size: int = 16

    def __post_init__(self) -> None:
        if self.dtype not in CACHE_DTYPES:
            raise ValueError(f"cache.dtype must be one of {', '.join(CACHE_DTYPES)}, got {self.dtype!r}")
        check_positive_int("cache.encode_batch_size", self.encode_batch_size)

    def open(self, model: MicronBERT) -> TokenCache:
        """The cache of ``model``'s encoder."""
        root = Path(self.dir).expanduser() if self.dir else default_cache_dir()
        return TokenCache(root, model, self.dtype, self.encode_batch_size)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/micronbert/tokens`` (``~/.cache/micronbert/tokens`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "micronbert" / "tokens"


def encoder_digest(model: MicronBERT) -> str:
    """SHA-256 of the encoder's configuration and every backbone tensor (names, shapes, dtypes, values)."""
    digest = hashlib.sha256()
    config = model.config
    digest.update(repr((config.img_size, config.patch_size, config.in_chans, config.dim, config.depth,
                        config.heads, config.mlp_dim, config.ln_eps)).encode())
    for name, tensor in sorted(model.backbone.state_dict().items()):
        array = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(array.shape)}:{array.dtype}".encode())
        digest.update(array.view(torch.uint8).numpy().tobytes() if array.numel() else b"")
    return digest.hexdigest()


def preprocessing_tag(image_size: int) -> str:
    """Text naming every pre-processing choice that changes the encoder's input."""
    return f"resize={image_size}x{image_size}:area|norm={IMAGENET_MEAN}/{IMAGENET_STD}"


def pixel_digest(image: np.ndarray) -> str:
    """SHA-256 of a pre-processed uint8 image (shape included)."""
    array = np.ascontiguousarray(image)
    return hashlib.sha256(repr(array.shape).encode() + array.tobytes()).hexdigest()


@dataclass
class CacheStats:
    """How many distinct frames were found in the cache and how many had to be encoded."""

    hits: int = 0
    encoded: int = 0


class TokenCache:
    """Encoder tokens per frame, computed once per (encoder, pixels, pre-processing) and kept on disk."""

    def __init__(self, root: str | Path, model: MicronBERT, dtype: str = "float16", batch_size: int = 16) -> None:
        if dtype not in CACHE_DTYPES:
            raise ValueError(f"cache dtype must be one of {sorted(CACHE_DTYPES)}, got {dtype!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.model = model
        self.dtype = CACHE_DTYPES[dtype]
        self.batch_size = batch_size
        self.tag = preprocessing_tag(model.config.img_size)
        self.folder = Path(root) / encoder_digest(model)[:32]
        self.stats = CacheStats()

    def path_for(self, image: np.ndarray) -> Path:
        """Where the tokens of ``image`` (pre-processed uint8 (H, W, 3)) live."""
        key = hashlib.sha256(f"{self.tag}|{pixel_digest(image)}|{self.dtype}".encode()).hexdigest()
        return self.folder / key[:2] / f"{key}.safetensors"

    def tokens(self, images: Sequence[np.ndarray] | np.ndarray) -> torch.Tensor:
        """Tokens (n, 1 + N, dim) of uint8 (H, W, 3) images, read from the cache or encoded and stored."""
        if len(images) == 0:
            raise ValueError("no images to encode")
        paths = [self.path_for(image) for image in images]
        found: dict[Path, torch.Tensor] = {}
        first_index: dict[Path, int] = {}
        for index, path in enumerate(paths):
            if path in found or path in first_index:
                continue
            tokens = self._read(path)
            if tokens is None:
                first_index[path] = index
            else:
                found[path] = tokens
                self.stats.hits += 1
        missing = list(first_index.items())
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start:start + self.batch_size]
            encoded = self._encode(np.stack([images[index] for _, index in chunk]))
            for (path, _), tokens in zip(chunk, encoded):
                self._write(path, tokens)
                found[path] = tokens
            self.stats.encoded += len(chunk)
        return torch.stack([found[path] for path in paths])

    @torch.no_grad()
    def _encode(self, images: np.ndarray) -> torch.Tensor:
        device = self.model.device
        was_training = self.model.training
        self.model.eval()
        try:
            tokens = self.model.encode(to_model_input(images).to(device))
        finally:
            self.model.train(was_training)
        return tokens.to(self.dtype).cpu()

    def _read(self, path: Path) -> torch.Tensor | None:
        if not path.is_file():
            return None
        try:
            return load_file(str(path))["tokens"]
        except (SafetensorError, OSError, KeyError, ValueError):
            return None  # a damaged entry is re-encoded and overwritten

    def _write(self, path: Path, tokens: torch.Tensor) -> None:
        with atomic_path(path) as temporary:
            save_file({"tokens": tokens.contiguous()}, str(temporary), metadata={"preprocessing": self.tag})
