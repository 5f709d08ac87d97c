"""The classifier head (MLP or logistic on frozen tile features), its training loop
(one round, weights kept at the best slide-level validation AUC) and prediction."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .metrics import delong_auc


@dataclass
class HeadConfig:
    """Trait classifier head (config ``heterogeneity.classifier``); defaults come from the
    config schema through :meth:`from_config`."""

    hidden: int
    dropout: float
    lr: float
    weight_decay: float
    batch_size: int
    max_epochs: int
    evals_per_epoch: int
    lr_patience: int
    patience: int
    max_tiles_per_slide: int
    balance_classes: bool

    @classmethod
    def from_config(cls, cfg: dict | None) -> "HeadConfig":
        from ..settings import section

        values = section("heterogeneity", {"classifier": dict(cfg or {})})["classifier"]
        return cls(**{k: values[k] for k in cls.__dataclass_fields__})


def build_head(dim: int, hidden: int, dropout: float):
    import torch.nn as nn

    if hidden <= 0:
        return nn.Linear(dim, 1)
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))


@dataclass
class RoundResult:
    state: dict
    mean: np.ndarray
    std: np.ndarray
    validation_auc: float
    validation_loss: float
    best_step: int
    steps_run: int
    history: list = field(default_factory=list)


def _slide_scores(model, slides_x: list, mean, std, device) -> np.ndarray:
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for x in slides_x:
            logits = model(torch.as_tensor((x - mean) / std, device=device)).squeeze(1)
            out.append(float((logits > 0).float().mean()) if len(x) else math.nan)
    return np.asarray(out)


def train_round(train_x: np.ndarray, train_y: np.ndarray, val_slides: list[np.ndarray], val_labels: np.ndarray,
                cfg: HeadConfig, seed: int, device: str = "cpu") -> RoundResult:
    """Train one head; keep the weights with the best slide-level validation AUC.

    Validation happens ``evals_per_epoch`` times per epoch (paper: every 1/16 epoch);
    the learning rate drops tenfold after ``lr_patience`` evaluations without
    improvement and training stops after ``patience``. Ties in AUC (common with few
    validation slides) go to the lower tile-level validation loss; when the validation
    set lacks a class (AUC undefined) the loss alone selects the weights.
    """
    import torch
    import torch.nn as nn

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    mean = train_x.mean(axis=0).astype(np.float32)
    std = (train_x.std(axis=0) + 1e-6).astype(np.float32)
    x = torch.as_tensor((train_x - mean) / std)
    y = torch.as_tensor(train_y.astype(np.float32))
    val_x = torch.as_tensor(np.concatenate([(v - mean) / std for v in val_slides]) if val_slides
                            else np.zeros((0, train_x.shape[1]), np.float32), device=device)
    val_tile_y = torch.as_tensor(np.concatenate([np.full(len(v), l, np.float32)
                                                 for v, l in zip(val_slides, val_labels)])
                                 if val_slides else np.zeros(0, np.float32), device=device)
    use_auc = len(set(np.asarray(val_labels).tolist())) == 2
    model = build_head(x.shape[1], cfg.hidden, cfg.dropout).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_pos = float(y.sum())
    pos_weight = torch.tensor((len(y) - n_pos) / max(n_pos, 1.0) if cfg.balance_classes else 1.0, device=device)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    steps_per_epoch = max(1, math.ceil(len(y) / cfg.batch_size))
    eval_every = max(1, steps_per_epoch // max(1, cfg.evals_per_epoch))
    best = ((-math.inf, -math.inf), None, 0, math.nan, math.nan)  # metric, state, step, auc, loss
    since_best = since_lr = 0
    history = []
    step = 0
    for _epoch in range(cfg.max_epochs):
        permutation = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), cfg.batch_size):
            model.train()
            idx = permutation[start:start + cfg.batch_size]
            optimiser.zero_grad()
            loss = loss_fn(model(x[idx].to(device)).squeeze(1), y[idx].to(device))
            loss.backward()
            optimiser.step()
            step += 1
            if step % eval_every:
                continue
            model.eval()
            with torch.no_grad():
                val_loss = float(nn.functional.binary_cross_entropy_with_logits(
                    model(val_x).squeeze(1), val_tile_y)) if len(val_tile_y) else math.nan
            auc = (delong_auc(val_labels, _slide_scores(model, val_slides, mean, std, device))[0]
                   if use_auc else math.nan)
            # Higher is better: slide AUC first, ties (frequent on small validation sets)
            # broken by the lower tile-level validation loss.
            metric = (auc if use_auc else 0.0, -val_loss if val_loss == val_loss else 0.0)
            history.append({"step": step, "train_loss": loss.item(), "validation_loss": val_loss,
                            "validation_auc": auc})
            if metric > best[0] or best[1] is None:
                best = (metric, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                        step, auc, val_loss)
                since_best = since_lr = 0
            else:
                since_best += 1
                since_lr += 1
                if since_lr >= cfg.lr_patience:
                    for group in optimiser.param_groups:
                        group["lr"] *= 0.1
                    since_lr = 0
                if since_best >= cfg.patience:
                    break
        else:
            continue
        break
    if best[1] is None:  # fewer steps than one evaluation interval
        best = (math.nan, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, step,
                math.nan, math.nan)
    return RoundResult(state=best[1], mean=mean, std=std, validation_auc=best[3], validation_loss=best[4],
                       best_step=best[2], steps_run=step, history=history)


def predict_probabilities(results: Sequence[RoundResult], features: np.ndarray, cfg: HeadConfig,
                          device: str = "cpu") -> np.ndarray:
    """(N, rounds) tile probabilities of every round's model."""
    import torch

    out = np.zeros((len(features), len(results)), dtype=np.float32)
    if len(features) == 0:
        return out
    for r, result in enumerate(results):
        model = build_head(features.shape[1], cfg.hidden, cfg.dropout)
        model.load_state_dict(result.state)
        model.to(device).eval()
        with torch.no_grad():
            logits = model(torch.as_tensor((features - result.mean) / result.std, device=device)).squeeze(1)
        out[:, r] = torch.sigmoid(logits).cpu().numpy()
    return out
