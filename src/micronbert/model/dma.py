"""Diagonal Micro-Attention (METHOD.md §5)."""
from __future__ import annotations

import torch
from torch import nn


class DiagonalMicroAttention(nn.Module):
    """Compares co-located patches of two frames.

    With q = W_q·P_query, k = W_k·P_key, v = W_v·P_swp and scale s = (dim/h)^-1/2, per head
    ``a_i = exp(s·q_i·k_i − logsumexp_j s·q_i·k_j)`` (the diagonal of the row softmax, see
    :func:`softmax_diagonal`) and
    ``DMA_i = W_o·(a_i·v_i)``. The N×N product with V is never formed.

    The scores and their diagonal are computed in float32 even under autocast (q, k and their product; v and the
    output follow the autocast dtype).

    ``query="reference"`` (paper) takes the query from the reference frame and the key from the swapped
    one; ``query="swapped"`` (published code) the other way round. Parameter names (``to_q``, ``to_k``,
    ``to_v``, ``proj``) match the published ``att`` module.
    """

    def __init__(self, dim: int, heads: int = 1, query: str = "reference") -> None:
        super().__init__()
        if query not in ("reference", "swapped"):
            raise ValueError(f"DMA query must be 'reference' or 'swapped', got {query!r}")
        if dim % heads:
            raise ValueError(f"DMA heads={heads} does not divide the width {dim}")
        self.heads = heads
        self.query = query
        self.scale = (dim // heads) ** -0.5
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        return x.reshape(batch, tokens, self.heads, dim // self.heads).transpose(1, 2)

    def forward(self, reference: torch.Tensor, swapped: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch tokens (B, N, dim) of both frames → (features (B, N, dim), diagonal (B, heads, N))."""
        if reference.shape != swapped.shape:
            raise ValueError(f"DMA needs tokens of equal shape, got {tuple(reference.shape)} "
                             f"and {tuple(swapped.shape)}")
        query_in, key_in = (reference, swapped) if self.query == "reference" else (swapped, reference)
        v = self._split(self.to_v(swapped))
        with torch.autocast(swapped.device.type, enabled=False):  # bf16 scores would move the diagonal by percents
            q = self._split(self.to_q(query_in.float())) * self.scale
            k = self._split(self.to_k(key_in.float()))
            diagonal = softmax_diagonal(q @ k.transpose(-2, -1))
        out = (diagonal.unsqueeze(-1).to(v.dtype) * v).transpose(1, 2).reshape(swapped.shape)
        return self.proj(out), diagonal


def softmax_diagonal(scores: torch.Tensor) -> torch.Tensor:
    """Diagonal of the row softmax of square ``scores`` (..., N, N) → (..., N), without normalising the whole
    matrix: exp(s_ii − m_i) / Σ_j exp(s_ij − m_i), m_i the row maximum (= exp(s_ii − logsumexp_j s_ij)).

    Computed in float32 whatever the input dtype (bf16 sums of N terms are too coarse for the change map); the
    shifted exponentials are taken in place and the maximum is detached (a constant shift cancels in the
    ratio, so gradients are exact). On the CPU this is faster than ``torch.logsumexp``.
    """
    scores = scores.float()
    weights = (scores - scores.detach().amax(dim=-1, keepdim=True)).exp_()
    return weights.diagonal(dim1=-2, dim2=-1) / weights.sum(dim=-1)


def change_map(diagonal: torch.Tensor) -> torch.Tensor:
    """The change map shown to users, 1 − a/max(a) per sample, averaged over heads: (B, h, N) → (B, N)."""
    peak = diagonal.amax(dim=-1, keepdim=True).clamp_min(torch.finfo(diagonal.dtype).tiny)
    return (1.0 - diagonal / peak).mean(dim=1)


def relative_change_map(diagonal: torch.Tensor, self_diagonal: torch.Tensor) -> torch.Tensor:
    """How much each patch's DMA self-match drops when the apex takes the place of the onset, relative to the
    onset compared with itself: max(0, 1 − a_i / a_i^self), averaged over heads: (B, h, N) twice → (B, N).

    ``diagonal`` is the DMA diagonal of (apex, onset), ``self_diagonal`` that of (onset, onset) (see
    :meth:`micronbert.model.MicronBERT.relative_change`). The softmax behind a_i divides each patch's self-match by
    how well it matches every other patch, which depends on the face's content far more than on a motion of a
    pixel or two; the ratio cancels that normalisation, so that 0 means "unchanged" for every patch.
    """
    if diagonal.shape != self_diagonal.shape:
        raise ValueError(f"the diagonals differ in shape: {tuple(diagonal.shape)} and {tuple(self_diagonal.shape)}")
    reference = self_diagonal.clamp_min(torch.finfo(self_diagonal.dtype).tiny)
    return (1.0 - diagonal / reference).clamp_min(0.0).mean(dim=1)
