"""The frozen-mode token cache: where it lives, what it refuses, and how it survives damage and failures."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import micronbert.train.token_cache as token_cache
from micronbert.data.transforms import to_model_input
from micronbert.model import create_model
from micronbert.train.token_cache import TokenCache, default_cache_dir


@pytest.fixture(scope="module")
def model():
    return create_model("tiny")


def _images(count: int = 2) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (count, 64, 64, 3), dtype=np.uint8)


def test_the_default_folder_follows_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "micronbert" / "tokens"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "micronbert" / "tokens"


@pytest.mark.parametrize("options, message", [
    (dict(dtype="int8"), "cache dtype must be one of"),
    (dict(batch_size=0), "batch_size must be positive, got 0"),
])
def test_bad_options_are_refused(model, tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        TokenCache(tmp_path, model, **options)


def test_nothing_to_encode_is_an_error(model, tmp_path):
    with pytest.raises(ValueError, match="no images to encode"):
        TokenCache(tmp_path, model).tokens(np.zeros((0, 64, 64, 3), np.uint8))


def test_a_damaged_entry_is_encoded_again_and_replaced(model, tmp_path):
    images = _images()
    first = TokenCache(tmp_path, model, dtype="float32")
    tokens = first.tokens(images)
    damaged = first.path_for(images[0])
    damaged.write_bytes(damaged.read_bytes()[:40])

    again = TokenCache(tmp_path, model, dtype="float32")
    assert torch.equal(again.tokens(images), tokens)
    assert (again.stats.hits, again.stats.encoded) == (1, 1)
    assert torch.equal(TokenCache(tmp_path, model, dtype="float32").tokens(images[:1]), tokens[:1])


def test_each_storage_dtype_has_its_own_entries(model, tmp_path):
    images = _images(1)
    half = TokenCache(tmp_path, model, dtype="float16")
    full = TokenCache(tmp_path, model, dtype="float32")

    assert half.tokens(images).dtype == torch.float16 and full.tokens(images).dtype == torch.float32
    assert half.path_for(images[0]) != full.path_for(images[0])
    assert full.stats.encoded == 1


def test_encoding_leaves_the_model_in_training_mode_if_it_was(model, tmp_path):
    model.train()
    try:
        TokenCache(tmp_path, model).tokens(_images(1))
        assert model.training
    finally:
        model.eval()


def test_a_failed_write_leaves_no_partial_entry(model, tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(token_cache, "save_file", full_disk)
    cache = TokenCache(tmp_path, model)

    with pytest.raises(OSError, match="No space left"):
        cache.tokens(_images(1))
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_token_cache_encodes_each_frame_once(tmp_path: Path) -> None:
    model = create_model("tiny")
    images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    batch = np.concatenate([images, images[:1]])
    cache = TokenCache(tmp_path, model, dtype="float32", batch_size=2)
    tokens = cache.tokens(batch)
    assert cache.stats.encoded == 3 and cache.stats.hits == 0
    with torch.no_grad():
        direct = model.eval().encode(to_model_input(images))
    assert torch.allclose(tokens[:3], direct, atol=1e-5) and torch.equal(tokens[3], tokens[0])
    again = TokenCache(tmp_path, model, dtype="float32")
    assert torch.equal(again.tokens(images), tokens[:3])
    assert again.stats.encoded == 0 and again.stats.hits == 3
    with torch.no_grad():
        model.backbone.norm.weight.add_(1.0)
    changed = TokenCache(tmp_path, model, dtype="float32")
    changed.tokens(images)
    assert changed.stats.encoded == 3, "new encoder weights must not reuse old tokens"


def model_input(images: np.ndarray) -> torch.Tensor:
    from micronbert.data.transforms import to_model_input

    return to_model_input(images)
