"""Several processes under torchrun: joining the process group, choosing each process's device, checking that
replicas agree, and leaving the group cleanly."""
from __future__ import annotations

import datetime
import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from micronbert.train.device import pick_device


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str, timeout_minutes: float = 60.0) -> DistributedContext:
    """Join the process group torchrun describes in the environment (``WORLD_SIZE`` > 1), else a single
    process. NCCL on GPUs, gloo on CPUs; collective operations (the barrier while rank 0 prepares the data among
    them) wait up to ``timeout_minutes``."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistributedContext()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo",
                                timeout=datetime.timedelta(minutes=timeout_minutes))
    return DistributedContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(kind: str, context: DistributedContext) -> torch.device:
    """This process's device: :func:`~micronbert.train.device.pick_device`, the GPU of its local rank."""
    device = pick_device(kind, context.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def replica_difference(model: torch.nn.Module) -> float:
    """Largest absolute difference between any process's parameters and rank 0's (0.0 alone)."""
    if not dist.is_initialized():
        return 0.0
    flat = torch.cat([t.detach().float().flatten() for t in model.state_dict().values() if t.is_floating_point()])
    reference = flat.clone()
    dist.broadcast(reference, src=0)
    difference = (flat - reference).abs().max()
    dist.all_reduce(difference, op=dist.ReduceOp.MAX)
    return float(difference)


def leave_process_group() -> None:
    """Destroy the process group once nothing holds it any more (DDP's reducer may sit in a reference cycle):
    a gloo group left to the interpreter's exit, or torn down while a peer still talks to it, can abort."""
    gc.collect()
    dist.destroy_process_group()
