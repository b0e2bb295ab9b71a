"""Training and prediction of the network baselines with a :class:`~micronbert.baselines.card.Recipe`: one epoch
loop for every network (plain cross-entropy networks, ELRCN's two stages, ICE-GAN's GAN steps), a fixed budget
(the last epoch is the result), nothing chosen on held-out data."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from micronbert.baselines.card import Recipe
from micronbert.metrics import balanced_class_weights

EpochEnd = Callable[[int, float], None]


class Rows(Protocol):
    """What the loops read an input from: its length (samples) and the tensor of a batch of sample positions."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: torch.Tensor | slice) -> torch.Tensor: ...


class ScaledRows:
    """The samples ``positions`` of ``tensor`` (all when None), each batch read as ``(tensor - shift) / scale``
    when it is indexed, so that a training set is never copied whole."""

    def __init__(self, tensor: torch.Tensor, positions: np.ndarray | None = None, shift: float = 0.0,
                 scale: float = 1.0) -> None:
        self.tensor = tensor
        self.positions = None if positions is None else torch.as_tensor(positions, dtype=torch.long)
        self.shift, self.scale = shift, scale

    def __len__(self) -> int:
        return len(self.tensor) if self.positions is None else len(self.positions)

    def __getitem__(self, index: torch.Tensor | slice) -> torch.Tensor:
        rows = self.tensor[index] if self.positions is None else self.tensor[self.positions[index]]
        return rows if (self.shift, self.scale) == (0.0, 1.0) else (rows - self.shift) / self.scale


def make_optimiser(parameters: Sequence[nn.Parameter], recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimiser over ``parameters``, fused into one kernel per step where every parameter is a
    floating-point tensor on a CPU or CUDA device: on a CPU that makes Adam's update 6x faster over millions of
    parameters (OFF-ApexNet 8.2 to 1.4 ms a step), the same update up to rounding."""
    fused = {"fused": True} if can_fuse(parameters) else {}
    if recipe.optimiser == "adam":
        return torch.optim.Adam(parameters, lr=recipe.lr, weight_decay=recipe.weight_decay, **fused)
    if recipe.optimiser == "adamw":
        return torch.optim.AdamW(parameters, lr=recipe.lr, weight_decay=recipe.weight_decay, **fused)
    return torch.optim.SGD(parameters, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                           **fused)


def can_fuse(parameters: Sequence[nn.Parameter]) -> bool:
    """Whether the fused optimiser kernels take ``parameters``: floating point, all on one CPU or CUDA device."""
    devices = {parameter.device for parameter in parameters}
    return (len(devices) == 1 and next(iter(devices)).type in ("cpu", "cuda")
            and all(parameter.is_floating_point() for parameter in parameters))


def epoch_learning_rate(recipe: Recipe, epoch: int) -> float:
    """The recipe's learning rate during ``epoch`` (0-based) before any inverse-time ``decay``."""
    if recipe.schedule == "cosine":
        return recipe.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / recipe.epochs))
    return recipe.lr * recipe.lr_gamma ** sum(1 for step in recipe.lr_steps if step <= epoch)


def has_batchnorm(module: nn.Module) -> bool:
    """Whether ``module`` holds a BatchNorm layer (which cannot train on a batch of one sample)."""
    return any(isinstance(layer, nn.modules.batchnorm._BatchNorm) for layer in module.modules())


def run_epochs(optimisers: Sequence[torch.optim.Optimizer], count: int, step: Callable[[torch.Tensor], torch.Tensor],
               recipe: Recipe, seed: int, smallest_batch: int = 1, epoch_end: EpochEnd | None = None) -> list[float]:
    """``recipe.epochs`` passes over ``count`` samples in batches shuffled by a generator seeded with ``seed``;
    ``step(batch positions)`` makes one update and returns its (detached, device) loss. The learning rate of
    every optimiser follows the recipe's schedule and decay. Batches smaller than ``smallest_batch`` are left out.
    Returns the mean loss of each epoch; ``epoch_end(epoch, loss)`` is called after each one.
    """
    generator = torch.Generator().manual_seed(seed)
    updates, losses = 0, []
    for epoch in range(recipe.epochs):
        rate = epoch_learning_rate(recipe, epoch)
        total: torch.Tensor | float = 0.0
        seen = 0
        for batch in torch.randperm(count, generator=generator).split(recipe.batch_size):
            if len(batch) < smallest_batch:
                continue
            for optimiser in optimisers:
                for group in optimiser.param_groups:
                    group["lr"] = rate / (1.0 + recipe.decay * updates)
            loss = step(batch)
            updates += 1
            total, seen = total + loss.double() * len(batch), seen + len(batch)
        losses.append(float(total) / max(seen, 1))  # the epoch's one read back to the host
        if epoch_end is not None:
            epoch_end(epoch, losses[-1])
    return losses


def class_weights_for(labels: np.ndarray, num_classes: int, recipe: Recipe,
                      device: torch.device | str) -> torch.Tensor | None:
    """Balanced class weights of ``labels`` for the cross-entropy, or None when the recipe is not class-weighted."""
    if not recipe.class_weighted:
        return None
    return torch.tensor(balanced_class_weights(labels, num_classes), dtype=torch.float32, device=device)


def check_inputs(inputs: Sequence[Rows], labels: np.ndarray) -> None:
    """Raise ValueError unless every input holds one entry per label."""
    if not inputs or any(len(tensor) != len(labels) for tensor in inputs):
        raise ValueError(f"every input needs one entry per label ({len(labels)}), got "
                         f"{[len(tensor) for tensor in inputs]}")


def train_network(network: nn.Module, inputs: Sequence[Rows], labels: np.ndarray, recipe: Recipe,
                  num_classes: int, seed: int, device: torch.device | str = "cpu",
                  epoch_end: EpochEnd | None = None) -> list[float]:
    """Train ``network`` on ``device`` with ``inputs`` (one tensor, or :class:`Rows`, per input of the network,
    first dimension the samples, moved to the device batch by batch) for ``recipe.epochs`` epochs of shuffled
    batches with the cross-entropy; returns the mean training loss of each epoch.

    Batches of one sample are left out when the network holds BatchNorm (it needs two). ``epoch_end(epoch,
    loss)`` is called after each epoch (progress, or the separately reported per-epoch test scores of
    ``--select-on-test``); the network is back in training mode afterwards.
    """
    check_inputs(inputs, labels)
    network.to(device)
    optimiser = make_optimiser(list(network.parameters()), recipe)
    targets = torch.as_tensor(labels).to(device)
    weights = class_weights_for(labels, num_classes, recipe, device)

    def step(batch: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(network(*(tensor[batch].to(device, non_blocking=True) for tensor in inputs)),
                               targets[batch.to(device)], weight=weights)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        return loss.detach()

    network.train()
    losses = run_epochs([optimiser], len(labels), step, recipe, seed, 2 if has_batchnorm(network) else 1,
                        back_to_training(network, epoch_end))
    network.eval()
    return losses


def back_to_training(network: nn.Module, epoch_end: EpochEnd | None) -> EpochEnd | None:
    """``epoch_end`` followed by putting ``network`` back in training mode (a prediction sets evaluation mode)."""
    if epoch_end is None:
        return None

    def call(epoch: int, loss: float) -> None:
        epoch_end(epoch, loss)
        network.train()

    return call


@torch.no_grad()
def predict_network(network: nn.Module, inputs: Sequence[Rows], batch_size: int = 256) -> np.ndarray:
    """Class probabilities (n, classes) of ``network`` in evaluation mode."""
    network.eval()
    device = next(network.parameters()).device
    count = len(inputs[0])
    chunks = [torch.softmax(network(*(tensor[start:start + batch_size].to(device) for tensor in inputs)),
                            dim=1).float().cpu() for start in range(0, count, batch_size)]
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, 0))
