"""Training and prediction of the network baselines with a :class:`~micronbert.baselines.card.Recipe`: one loop
for every network, a fixed budget (the last epoch is the result), nothing chosen on held-out data."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from micronbert.baselines.card import Recipe
from micronbert.metrics import balanced_class_weights


def make_optimiser(parameters: Sequence[nn.Parameter], recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimiser over ``parameters``."""
    if recipe.optimiser == "adam":
        return torch.optim.Adam(parameters, lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimiser == "adamw":
        return torch.optim.AdamW(parameters, lr=recipe.lr, weight_decay=recipe.weight_decay)
    return torch.optim.SGD(parameters, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)


def train_network(network: nn.Module, inputs: Sequence[torch.Tensor], labels: np.ndarray, recipe: Recipe,
                  num_classes: int, seed: int, device: torch.device | str = "cpu",
                  epoch_end: Callable[[int, float], None] | None = None) -> list[float]:
    """Train ``network`` on ``device`` with ``inputs`` (one tensor per input of the network, first dimension the
    samples, moved to the device batch by batch) for ``recipe.epochs`` epochs of shuffled batches; returns the mean
    training loss of each epoch.

    Batches of one sample are left out (BatchNorm needs two). ``epoch_end(epoch, loss)`` is called after each
    epoch (progress, or the separately reported per-epoch test scores of ``--select-on-test``).
    """
    if not inputs or any(len(tensor) != len(labels) for tensor in inputs):
        raise ValueError(f"every input needs one entry per label ({len(labels)}), got "
                         f"{[len(tensor) for tensor in inputs]}")
    generator = torch.Generator().manual_seed(seed)
    network.to(device)
    optimiser = make_optimiser(list(network.parameters()), recipe)
    targets = torch.as_tensor(labels).to(device)
    weights = (torch.tensor(balanced_class_weights(labels, num_classes), dtype=torch.float32, device=device)
               if recipe.class_weighted else None)
    network.train()
    losses = []
    for epoch in range(recipe.epochs):
        if epoch in recipe.lr_steps:
            for group in optimiser.param_groups:
                group["lr"] *= recipe.lr_gamma
        total, seen = torch.zeros((), dtype=torch.float64, device=device), 0
        for batch in torch.randperm(len(labels), generator=generator).split(recipe.batch_size):
            if len(batch) < 2:
                continue
            loss = F.cross_entropy(network(*(tensor[batch].to(device, non_blocking=True) for tensor in inputs)),
                                   targets[batch.to(device)], weight=weights)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total, seen = total + loss.detach().double() * len(batch), seen + len(batch)
        losses.append(float(total) / max(seen, 1))  # the epoch's one read back to the host
        if epoch_end is not None:
            epoch_end(epoch, losses[-1])
            network.train()
    network.eval()
    return losses


@torch.no_grad()
def predict_network(network: nn.Module, inputs: Sequence[torch.Tensor], batch_size: int = 256) -> np.ndarray:
    """Class probabilities (n, classes) of ``network`` in evaluation mode."""
    network.eval()
    device = next(network.parameters()).device
    count = len(inputs[0])
    chunks = [torch.softmax(network(*(tensor[start:start + batch_size].to(device) for tensor in inputs)),
                            dim=1).float().cpu() for start in range(0, count, batch_size)]
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, 0))
