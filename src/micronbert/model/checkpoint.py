"""Checkpoints: the project's own format and the import of the published Micron-BERT checkpoint.

Own format: a folder with ``config.json`` (the :class:`ModelConfig`) and ``model.safetensors``.
The published checkpoint (METHOD.md §9) is a torch pickle; it is read with ``weights_only=True`` and
only ``argparse.Namespace`` allowed, so a file that tries to run code fails without running anything.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import pickle
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import ModelConfig, named_config
from .micronbert import MicronBERT

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_NAME = "micronbert"
FORMAT_VERSION = 1

# Published key prefixes of the DINO branch → this package's names.
OFFICIAL_DINO_KEYS = {
    "student.head.": "agreement.student_head.",
    "teacher.backbone.": "agreement.teacher.",
    "teacher.head.": "agreement.teacher_head.",
    "dino_loss_fn.center": "agreement.center",
}
STUDENT_BACKBONE = "student.backbone."


# ----------------------------------------------------------------------------------- strict loading
def load_state_strictly(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """Load ``state`` into ``model``; any missing or unexpected key or wrong shape raises one
    ``ValueError`` naming ``source`` and the key."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        raise ValueError(f"{source}: unexpected key {unexpected[0]!r}"
                         + (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""))
    if missing:
        raise ValueError(f"{source}: missing key {missing[0]!r}"
                         + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ValueError(f"{source}: key {key!r} has shape {tuple(value.shape)}, "
                             f"the model expects {tuple(expected[key].shape)}")
    model.load_state_dict(state, strict=True)


# ----------------------------------------------------------------------------------- own format
def save(model: MicronBERT, path: str | Path) -> Path:
    """Write ``model`` to the folder ``path`` (config.json + model.safetensors), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, str(staging / WEIGHTS_FILE), metadata={"format": FORMAT_NAME})
        config = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "model": model.config.to_dict()}
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
        _replace_folder(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def _replace_folder(new: Path, target: Path) -> None:
    if not target.exists():
        os.replace(new, target)
        return
    if not target.is_dir():
        raise ValueError(f"{target}: exists and is not a micronbert checkpoint folder")
    backup = target.with_name(f".{target.name}.old")
    shutil.rmtree(backup, ignore_errors=True)
    os.replace(target, backup)
    os.replace(new, target)
    shutil.rmtree(backup, ignore_errors=True)


def read_config(path: str | Path) -> ModelConfig:
    """The :class:`ModelConfig` stored in a checkpoint folder."""
    config_file = _checkpoint_folder(path) / CONFIG_FILE
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file}: missing (not a micronbert checkpoint folder)")
    try:
        data = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{config_file}: not valid JSON ({err})") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME or "model" not in data:
        raise ValueError(f"{config_file}: not a micronbert config (expected format={FORMAT_NAME!r})")
    try:
        return ModelConfig.from_dict(data["model"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{config_file}: {err}") from err


def load(path: str | Path, map_location: str | torch.device = "cpu") -> MicronBERT:
    """Read a model written by :func:`save` (the folder, or the ``model.safetensors`` inside it)."""
    folder = _checkpoint_folder(path)
    model = MicronBERT(read_config(folder))
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: missing")
    try:
        state = load_file(str(weights), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{weights}: not a readable safetensors file ({err})") from err
    load_state_strictly(model, state, weights)
    return model.to(map_location)


def _checkpoint_folder(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix == ".safetensors":
        path = path.parent
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    return path


# ----------------------------------------------------------------------------- published checkpoint
def read_official_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict (``module.`` prefix removed) and the training arguments of a published checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with _allow_namespace():
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(f"{path}: refused to load: the file holds objects other than tensors and training "
                         f"arguments, which could run code; nothing was executed ({_first_line(err)})") from err
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, ImportError) as err:
        raise ValueError(f"{path}: not a readable PyTorch checkpoint, truncated or corrupt "
                         f"({_first_line(err)})") from err
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        state, args = obj["model"], obj.get("args")
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state, args = obj, None
    else:
        raise ValueError(f"{path}: expected a dict with a 'model' state dict (or a bare state dict)")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{path}: entry {bad[0]!r} of the state dict is not a tensor")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    return state, (vars(args) if isinstance(args, argparse.Namespace) else dict(args or {}))


@contextlib.contextmanager
def _allow_namespace():
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    if safe_globals is None:  # torch 2.4
        torch.serialization.add_safe_globals([argparse.Namespace])
        yield
        return
    with safe_globals([argparse.Namespace]):
        yield


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]


def official_config(state: dict[str, torch.Tensor], args: dict[str, Any], source: str | Path) -> ModelConfig:
    """The ``official-small``-style configuration matching a published state dict's shapes."""
    def need(key: str) -> torch.Tensor:
        if key not in state:
            raise ValueError(f"{source}: missing key {key!r}")
        return state[key]

    patch_weight = need("backbone.patch_embed.proj.weight")
    patch = patch_weight.shape[-1]
    grid = math.isqrt(need("backbone.pos_embed").shape[1] - 1)
    decoder_grid = math.isqrt(need("decoder_pos_embed").shape[1] - 1)
    overrides: dict[str, Any] = dict(
        img_size=int(args.get("img_size", grid * patch)), patch_size=patch, in_chans=patch_weight.shape[1],
        dim=need("backbone.cls_token").shape[-1], depth=_count_blocks(state, "backbone.blocks."),
        mlp_dim=need("backbone.blocks.0.mlp.fc1.weight").shape[0],
        decoder_dim=need("decoder_embed.weight").shape[0], decoder_depth=_count_blocks(state, "decoder_blocks."),
        decoder_mlp_dim=need("decoder_blocks.0.mlp.fc1.weight").shape[0], decoder_pos_size=decoder_grid * patch,
        dma_heads=1, dma_query="swapped", poi="off", aux_head="fc.weight" in state, agreement="off",
    )
    if overrides["img_size"] != grid * patch:
        raise ValueError(f"{source}: args.img_size={overrides['img_size']} does not match the position table "
                         f"({grid}×{grid} patches of {patch})")
    if any(k.startswith(("student.", "teacher.", "dino_loss_fn.")) for k in state):
        overrides.update(agreement="dino", dino_out_dim=need("dino_loss_fn.center").shape[-1],
                         dino_hidden=need("student.head.mlp.0.weight").shape[0],
                         dino_bottleneck=need("student.head.mlp.4.weight").shape[0],
                         dino_local_crops=int(args.get("local_crops_number", 8)))
    return named_config("official-small", **overrides)


def _count_blocks(state: dict[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    indices = {int(m.group(1)) for k in state if (m := pattern.match(k))}
    return max(indices) + 1 if indices else 0


def map_official_keys(state: dict[str, torch.Tensor], source: str | Path) -> dict[str, torch.Tensor]:
    """Rename the DINO branch's keys; ``student.backbone.*`` aliases ``backbone.*`` (one shared module in
    the published code) and must equal it."""
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(STUDENT_BACKBONE):
            twin = "backbone." + key.removeprefix(STUDENT_BACKBONE)
            if twin not in state:
                raise ValueError(f"{source}: key {key!r} has no counterpart {twin!r}")
            if not torch.equal(state[twin], value):
                raise ValueError(f"{source}: key {key!r} differs from {twin!r}, but the published model "
                                 "shares one backbone between them")
            continue
        for old, new in OFFICIAL_DINO_KEYS.items():
            if key.startswith(old):
                key = new + key.removeprefix(old)
                break
        mapped[key] = value
    return mapped


def load_official_checkpoint(path: str | Path) -> MicronBERT:
    """Build the matching ``official-small`` model (``dma_query="swapped"``, PoI as published) and load
    every tensor of a published checkpoint (with or without DINO keys and ``module.`` prefix)."""
    state, args = read_official_file(path)
    model = MicronBERT(official_config(state, args, path))
    load_state_strictly(model, map_official_keys(state, path), path)
    return model.eval()


def convert_official(source: str | Path, destination: str | Path) -> Path:
    """Read a published checkpoint and write it in the project's own format."""
    return save(load_official_checkpoint(source), destination)
