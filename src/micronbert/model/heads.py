"""Recognition head (METHOD.md §8) and the pooling of per-patch features it reads."""
from __future__ import annotations

import torch
from torch import nn


def pool_patches(features: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """(B, N, dim) features, optional (B, N) weights of mean 1 → their (weighted) mean over patches (B, dim)."""
    if weights is None:
        return features.mean(dim=1)
    return (features * weights.unsqueeze(-1)).mean(dim=1)


class RecognitionHead(nn.Module):
    """LN → dropout → Linear(classes) on the head input of :meth:`MicronBERT.head_input` (B, in_features)."""

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.1, eps: float = 1e-6) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"a recognition head needs at least one class, got {num_classes}")
        self.norm = nn.LayerNorm(in_features, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, num_classes)
        nn.init.trunc_normal_(self.fc.weight, std=0.02)
        nn.init.zeros_(self.fc.bias)

    def forward(self, head_input: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.norm(head_input)))
