"""The two slide models as torch modules. Both take a padded batch of bags ``x``
(B, N, D) with a mask (B, N) of real tiles and return slide-level predictions (B, G)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def topk_mean(scores: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """Per slide and gene, the mean of the ``k`` highest tile scores among the slide's
    real tiles (all of them when it has fewer than ``k``). scores (B, G, N), mask (B, N)."""
    n = scores.shape[2]
    kk = min(int(k), n)
    masked = scores.masked_fill(~mask[:, None, :], float("-inf"))
    top = torch.topk(masked, kk, dim=2, largest=True, sorted=True).values
    n_valid = mask.sum(1).clamp(max=kk)                                   # (B,)
    keep = torch.arange(kk, device=scores.device)[None, :] < n_valid[:, None]   # (B, kk)
    top = top.masked_fill(~keep[:, None, :], 0.0)
    return top.sum(2) / keep.sum(1).clamp(min=1)[:, None].to(top.dtype)


class HE2RNA(nn.Module):
    """Paper 003: a multilayer perceptron applied to every tile (1D convolutions of kernel
    size 1), ReLU and dropout between layers, one output per gene and tile; slide
    prediction = mean of the top-k tile scores (k drawn from ``ks`` per training step,
    the mean over all ``ks`` at inference)."""

    def __init__(self, input_dim: int, n_genes: int, layers: Sequence[int], ks: Sequence[int], dropout: float,
                 bias_init=None):
        super().__init__()
        dims = [input_dim, *layers, n_genes]
        self.convs = nn.ModuleList(nn.Conv1d(dims[i], dims[i + 1], kernel_size=1) for i in range(len(dims) - 1))
        self.dropout = nn.Dropout(dropout)
        self.ks = [int(k) for k in ks]
        if bias_init is not None:
            with torch.no_grad():
                self.convs[-1].bias.copy_(torch.as_tensor(bias_init, dtype=torch.float32))

    def tile_scores(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, G, N): the score of every gene on every tile."""
        h = x.transpose(1, 2)
        for conv in self.convs[:-1]:
            h = self.dropout(torch.relu(conv(h)))
        return self.convs[-1](h)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, k: int | None = None) -> torch.Tensor:
        scores = self.tile_scores(x)
        if k is not None:
            return topk_mean(scores, mask, k)
        return torch.stack([topk_mean(scores, mask, kk) for kk in self.ks]).mean(0)


class GatedAttentionMIL(nn.Module):
    """Gated attention pooling (Ilse et al. 2018) with a multi-output regression head:
    h = ReLU(W x) per tile, a = softmax_tiles(w' (tanh(V h) * sigmoid(U h))),
    slide embedding z = sum_tiles a h, prediction = linear(z) over all genes."""

    def __init__(self, input_dim: int, n_genes: int, hidden: int, attention_dim: int, dropout: float,
                 bias_init=None):
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(input_dim, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.attention_v = nn.Linear(hidden, attention_dim)
        self.attention_u = nn.Linear(hidden, attention_dim)
        self.attention_w = nn.Linear(attention_dim, 1)
        self.head = nn.Linear(hidden, n_genes)
        if bias_init is not None:
            with torch.no_grad():
                self.head.bias.copy_(torch.as_tensor(bias_init, dtype=torch.float32))

    def attention(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(attention weights (B, N), summing to 1 over each slide's real tiles; tile embeddings (B, N, H))."""
        h = self.embed(x)
        logits = self.attention_w(torch.tanh(self.attention_v(h)) * torch.sigmoid(self.attention_u(h))).squeeze(-1)
        logits = logits.float().masked_fill(~mask, float("-inf"))
        return torch.softmax(logits, dim=1), h

    def forward(self, x: torch.Tensor, mask: torch.Tensor, k: int | None = None) -> torch.Tensor:
        weights, h = self.attention(x, mask)
        z = torch.bmm(weights[:, None, :].to(h.dtype), h).squeeze(1)
        return self.head(z)
