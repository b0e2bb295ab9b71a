"""Patch of Interest (METHOD.md §6): the saliency that weights patches by their agreement with the contextual
token (CT). The objective that makes the CT describe the face is in :mod:`micronbert.model.agreement`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def poi_saliency(patch_tokens: torch.Tensor, context_token: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """S_i = N · softmax_i(⟨LN(p_i), LN(ct)⟩ / √dim): (B, N, dim), (B, dim) → (B, N), mean 1 per sample."""
    dim = patch_tokens.shape[-1]
    patches = F.layer_norm(patch_tokens, (dim,), eps=eps)
    context = F.layer_norm(context_token, (dim,), eps=eps)
    scores = torch.einsum("bnd,bd->bn", patches, context) / dim**0.5
    return patch_tokens.shape[1] * scores.softmax(dim=-1)
