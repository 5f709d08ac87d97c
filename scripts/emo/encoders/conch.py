"""CONCH's image tower (open_clip layout): ViT-B/16 trunk plus attentional pooler."""

from __future__ import annotations

import torch
from torch import nn

from .vit import VisionTransformer


class _AttentionalPooler(nn.Module):
    """open_clip's ``AttentionalPooler`` (learned queries cross-attending to the tokens)."""

    def __init__(self, d_model: int, context_dim: int, n_head: int, n_queries: int):
        super().__init__()
        self.query = nn.Parameter(torch.randn(n_queries, d_model))
        self.attn = nn.MultiheadAttention(d_model, n_head, kdim=context_dim, vdim=context_dim)
        self.ln_q = nn.LayerNorm(d_model)
        self.ln_k = nn.LayerNorm(context_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ln_k(x).permute(1, 0, 2)  # NLD -> LND
        q = self.ln_q(self.query).unsqueeze(1).repeat(1, x.shape[1], 1)
        out = self.attn(q, x, x, need_weights=False)[0]
        return out.permute(1, 0, 2)


class ConchVisual(nn.Module):
    """CONCH's image tower (``model.visual`` of ``conch_ViT-B-16``): a ViT-B/16 trunk at
    448 px, attentional pooling to one 512-d query and its LayerNorm. ``forward`` is
    CONCH's ``encode_image(x, proj_contrast=False, normalize=False)``: the embedding the
    CONCH authors use for linear probes and MIL (before the contrastive projection)."""

    def __init__(self):
        super().__init__()
        self.trunk = VisionTransformer(img_size=448, patch_size=16, dim=768, depth=12, num_heads=12)
        self.attn_pool_contrast = _AttentionalPooler(d_model=512, context_dim=768, n_head=8, n_queries=1)
        self.ln_contrast = nn.LayerNorm(512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.trunk.forward_features(x)
        return self.ln_contrast(self.attn_pool_contrast(tokens)[:, 0])


def _adapt_conch(state: dict) -> dict:
    if any(k.startswith("visual.") for k in state):
        state = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
    keep = ("trunk.", "attn_pool_contrast.", "ln_contrast.")
    return {k: v for k, v in state.items() if k.startswith(keep)}
