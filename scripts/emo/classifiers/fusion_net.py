"""Multi-head cross-attention fusion of expression and image patches (paper 004).

Each expression feature (gene) is a query token, ``value * w_g + b_g`` (a learned vector
per gene scaled by the patient's preprocessed value, plus the gene's own embedding); each
image patch is a key/value token, a linear projection of its (standardised) encoder
features. Multi-head attention lets every gene attend over the patient's patches; the
attended image context is added to the gene token (residual, layer norm), the tokens are
mean-pooled and a linear layer gives the class logits. The attention weights (gene x
patch, averaged over heads) say which patches each expression feature drew on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def _module():
    import torch
    import torch.nn as nn

    class CrossAttentionFusion(nn.Module):
        def __init__(self, n_genes: int, image_dim: int, n_classes: int, dim: int, heads: int, dropout: float):
            super().__init__()
            self.gene_weight = nn.Parameter(torch.randn(n_genes, dim) / math.sqrt(dim))
            self.gene_bias = nn.Parameter(torch.randn(n_genes, dim) / math.sqrt(dim))
            self.patch = nn.Linear(image_dim, dim)
            self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
            self.norm = nn.LayerNorm(dim)
            self.dropout = nn.Dropout(dropout)
            self.out = nn.Linear(dim, n_classes)

        def forward(self, expression, patches, mask):
            queries = expression.unsqueeze(-1) * self.gene_weight + self.gene_bias   # (B, G, d)
            keys = self.dropout(self.patch(patches))                               # (B, K, d)
            context, weights = self.attention(queries, keys, keys, key_padding_mask=~mask, need_weights=True,
                                              average_attn_weights=True)           # weights (B, G, K)
            tokens = self.norm(queries + self.dropout(context))
            return self.out(tokens.mean(dim=1)), weights

    return CrossAttentionFusion


@dataclass(frozen=True)
class AttentionConfig:
    dim: int
    heads: int
    dropout: float
    lr: float
    weight_decay: float
    epochs: int
    balance_classes: bool
    seed: int


@dataclass
class FittedAttention:
    state: dict
    n_genes: int
    image_dim: int
    n_classes: int
    patch_mean: np.ndarray
    patch_sd: np.ndarray
    config: AttentionConfig
    train_loss: list

    def _model(self, device: str):
        model = _module()(self.n_genes, self.image_dim, self.n_classes, self.config.dim, self.config.heads,
                          self.config.dropout)
        model.load_state_dict(self.state)
        return model.to(device).eval()

    def predict(self, expression: np.ndarray, patches: np.ndarray, mask: np.ndarray, device: str = "cpu",
                batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """(N, C) class probabilities and (N, G, K) attention weights (head mean)."""
        import torch

        model = self._model(device)
        n, k = len(expression), patches.shape[1]
        proba = np.zeros((n, self.n_classes))
        weights = np.zeros((n, self.n_genes, k), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, n, batch):
                sl = slice(start, start + batch)
                e, p, m = _tensors(expression[sl], patches[sl], mask[sl], self.patch_mean, self.patch_sd, device)
                logits, w = model(e, p, m)
                proba[sl] = torch.softmax(logits.double(), dim=1).cpu().numpy()
                weights[sl] = w.float().cpu().numpy()
        return proba, weights


def _tensors(expression, patches, mask, mean, sd, device):
    import torch

    p = np.where(mask[..., None], (patches - mean) / sd, 0.0).astype(np.float32)
    return (torch.as_tensor(np.asarray(expression, dtype=np.float32), device=device),
            torch.as_tensor(p, device=device), torch.as_tensor(np.asarray(mask, dtype=bool), device=device))


def fit_attention(expression: np.ndarray, patches: np.ndarray, mask: np.ndarray, y: np.ndarray, n_classes: int,
                  cfg: AttentionConfig, device: str = "cpu") -> FittedAttention:
    """Full-batch Adam on the training patients (``expression`` (N, G) preprocessed,
    ``patches`` (N, K, D) with ``mask`` (N, K) True = a patch), class-weighted
    cross-entropy, ``cfg.epochs`` epochs; patch features standardised with the training
    patches' mean and SD. Deterministic for a seed on one device."""
    import torch
    import torch.nn as nn

    y = np.asarray(y, dtype=np.int64)
    if len(np.unique(y)) < 2:
        raise ValueError(f"cross-attention fusion needs two classes among its training patients, got {sorted(set(y))}")
    flat = patches[mask]
    mean = flat.mean(axis=0)
    sd = flat.std(axis=0) + 1e-6
    torch.manual_seed(cfg.seed)
    model = _module()(expression.shape[1], patches.shape[2], n_classes, cfg.dim, cfg.heads, cfg.dropout).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    weight = len(y) / (n_classes * np.maximum(counts, 1.0)) if cfg.balance_classes else np.ones(n_classes)
    loss_fn = nn.CrossEntropyLoss(weight=torch.as_tensor(weight, dtype=torch.float32, device=device))
    e, p, m = _tensors(expression, patches, mask, mean, sd, device)
    target = torch.as_tensor(y, device=device)
    history = []
    model.train()
    for _ in range(cfg.epochs):
        optimiser.zero_grad()
        logits, _ = model(e, p, m)
        loss = loss_fn(logits, target)
        loss.backward()
        optimiser.step()
        history.append(float(loss.detach()))
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return FittedAttention(state, expression.shape[1], patches.shape[2], n_classes, mean, sd, cfg, history)
