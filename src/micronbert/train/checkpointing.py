"""Training checkpoints: atomic writes, the last k kept plus the best, safe loading.

A checkpoint is a ``torch.save`` dict of tensors and plain Python values only (model and optimiser state,
RNG states, step, sampler position, configuration), so it is read back with ``weights_only=True``:
nothing in it is ever unpickled as arbitrary objects.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_FORMAT = "micronbert-pretrain"
CHECKPOINT_VERSION = 1
BEST_NAME = "best.pt"
_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_path(folder: str | Path, step: int) -> Path:
    return Path(folder) / f"step_{step:08d}.pt"


def _atomic_torch_save(state: dict[str, Any], path: Path) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(state, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def step_checkpoints(folder: str | Path) -> list[Path]:
    """The ``step_*.pt`` files of ``folder``, oldest step first (none when the folder is absent)."""
    directory = Path(folder)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _STEP_FILE.match(p.name))]
    return [path for _, path in sorted(found)]


def save_checkpoint(state: dict[str, Any], folder: str | Path, step: int, keep_last: int,
                    is_best: bool = False) -> Path:
    """Write ``state`` as ``step_<step>.pt`` (temp file + rename), copy it to ``best.pt`` when ``is_best``,
    and delete all but the newest ``keep_last`` step checkpoints."""
    if keep_last < 1:
        raise ValueError(f"keep_last must be >= 1, got {keep_last}")
    directory = Path(folder)
    directory.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(directory, step)
    _atomic_torch_save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}, path)
    if is_best:
        best = directory / BEST_NAME
        temporary = best.with_name(f".{best.name}.{os.getpid()}.tmp")
        shutil.copyfile(path, temporary)
        os.replace(temporary, best)
    for old in step_checkpoints(directory)[:-keep_last]:
        old.unlink(missing_ok=True)
    return path


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The step checkpoint with the highest step, or None."""
    found = step_checkpoints(folder)
    return found[-1] if found else None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``); ``ValueError`` naming
    the file when it is not one."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint not found: {file}")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise ValueError(f"{file}: not a readable checkpoint ({err})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{file}: not a micronbert pre-training checkpoint")
    if state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{file}: checkpoint version {state.get('version')} is not {CHECKPOINT_VERSION}")
    return state
