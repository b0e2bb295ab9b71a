"""Expected change per patch and the surprise map (a micronbert extension, not in the paper; METHOD.md §11).

A change detector cannot tell a face's micro-motion from a background that moves: both are local changes, and
the background's are larger (docs/FINDINGS.md §8). What separates them is what a patch usually does. A patch
of a drifting object or a blinking screen changes between any two frames; a patch of a still face changes by
sensor noise alone, except during an expression. :class:`VolatilityHead` learns that without labels: from the
tokens of one frame it predicts, for each patch, the log of the mean squared change of that patch between the
pre-training pair (I_t, I_{t+δ}), trained by the Gaussian likelihood of the change. The *surprise map* weights
the relative change map of the DMA by the predicted precision (the inverse of the volatility, the expected
change), so that a change counts where the patch is expected to be still.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MIN_ENERGY = 1e-6  # floor of a patch's mean squared change (normalised units), below any sensor noise
INITIAL_ENERGY = 1e-2  # the head starts by expecting a change of std 0.1 (normalised units; ~6 grey levels)


class VolatilityHead(nn.Module):
    """LayerNorm and a linear layer on each patch token → log of the patch's expected mean squared change."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.fc = nn.Linear(dim, 1)

    def reset_output(self) -> None:
        """Small weights and the bias at log(:data:`INITIAL_ENERGY`) (call after any generic initialisation)."""
        nn.init.trunc_normal_(self.fc.weight, std=0.02)
        nn.init.constant_(self.fc.bias, math.log(INITIAL_ENERGY))

    def forward(self, patch_tokens: torch.Tensor) -> torch.Tensor:
        """Patch tokens (B, N, dim) → volatility, the log expected change (B, N)."""
        return self.fc(self.norm(patch_tokens)).squeeze(-1)


def patch_change_energy(frame_a: torch.Tensor, frame_b: torch.Tensor, patch: int) -> torch.Tensor:
    """Mean squared difference of two image batches (B, C, H, W) per ``patch``×``patch`` patch → (B, N),
    patches in row-major order (as :meth:`MicronBERT.patchify`)."""
    squared = (frame_a.float() - frame_b.float()).pow(2).mean(dim=1, keepdim=True)
    return F.avg_pool2d(squared, patch).flatten(1)


def volatility_loss(log_expected: torch.Tensor, energy: torch.Tensor) -> torch.Tensor:
    """Gaussian negative log-likelihood of the observed change ``energy`` (B, N) under the predicted variance
    exp(``log_expected``), shifted to be 0 at its minimum: the mean of x − log x − 1 with x = energy / expected
    (≥ 0, and 0 exactly when the prediction equals the observation)."""
    log_ratio = energy.detach().float().clamp_min(MIN_ENERGY).log() - log_expected.float()
    return (log_ratio.exp() - log_ratio - 1.0).mean()


def stability_weights(log_expected: torch.Tensor) -> torch.Tensor:
    """Predicted precision of each patch, N · softmax_i(−volatility): (B, N) → (B, N), mean 1 per sample."""
    return log_expected.shape[-1] * (-log_expected.float()).softmax(dim=-1)


def surprise_map(relative_change: torch.Tensor, log_expected: torch.Tensor) -> torch.Tensor:
    """The relative change map (B, N) weighted by :func:`stability_weights`: change where none is expected."""
    if relative_change.shape != log_expected.shape:
        raise ValueError(f"the maps differ in shape: {tuple(relative_change.shape)} and {tuple(log_expected.shape)}")
    return relative_change * stability_weights(log_expected)
