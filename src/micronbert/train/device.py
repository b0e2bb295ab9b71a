"""Where a run computes: the device a configuration names, and the precision it runs in there."""
from __future__ import annotations

import contextlib

import torch

DEVICES = ("auto", "cpu", "cuda", "mps")


def pick_device(kind: str = "auto", index: int = 0) -> torch.device:
    """The device called ``kind``: ``auto`` is the GPU when there is one (CUDA, then Apple's MPS), else the CPU;
    asking for an absent accelerator raises ``ValueError``."""
    if kind not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {kind!r}")
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device cuda was asked for but no CUDA GPU is available")
        return torch.device("cuda", index)
    if kind == "mps":
        if not _mps_available():
            raise ValueError("device mps was asked for but Apple's MPS is not available")
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def uses_bf16(device: torch.device, bf16: bool) -> bool:
    """Whether a run asked for ``bf16`` computes in bfloat16 on ``device``: only on a CUDA GPU (on the CPU bf16 is
    slow and would change the results)."""
    return bf16 and device.type == "cuda"


def autocast_for(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast where :func:`uses_bf16`, float32 otherwise."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=uses_bf16(device, bf16))
