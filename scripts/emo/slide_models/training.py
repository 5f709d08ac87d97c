"""Training loop shared by the slide models: Adam on the mean squared error of the
slide-level predictions, early stopping on the mean per-gene Pearson correlation of the
held-out fold (as the HE2RNA authors' code), best epoch's weights kept. On CUDA the
forward pass runs under bfloat16 autocast (where supported) and batches are copied from
pinned memory; on CPU everything is float32 and deterministic for a given seed and
thread count."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from .bags import pad_bags

log = logging.getLogger("emo")


@dataclass
class FitResult:
    state: dict                       # best epoch's state_dict (CPU tensors)
    best_epoch: int                   # 1-based; 0 = the initial weights were best
    epochs_run: int
    best_score: float                 # mean Pearson r of the held-out fold at best_epoch
    history: list[dict] = field(default_factory=list)


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        from ..errors import ConfigError

        raise ConfigError("slide_models.device is 'cuda' but torch sees no CUDA device in this job; "
                          "set slide_models.device: auto (or cpu), or run the job on a GPU node (slide_models.gpu)")
    return device


def _autocast(device: str):
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    import contextlib

    return contextlib.nullcontext()


def _to_device(bags: Sequence[np.ndarray], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, mask = pad_bags(list(bags))
    x, mask = torch.from_numpy(x), torch.from_numpy(mask)
    if device.startswith("cuda"):
        x, mask = x.pin_memory(), mask.pin_memory()
    return x.to(device, non_blocking=True), mask.to(device, non_blocking=True)


def mean_pearson(y: np.ndarray, p: np.ndarray) -> float:
    """Mean over genes of Pearson r between columns (constant columns count 0)."""
    yc, pc = y - y.mean(0), p - p.mean(0)
    denom = np.sqrt((yc ** 2).sum(0) * (pc ** 2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (yc * pc).sum(0) / denom
    return float(np.nan_to_num(r, nan=0.0).mean())


def predict(model: torch.nn.Module, bags: Sequence[np.ndarray], device: str, batch_size: int) -> np.ndarray:
    """Slide-level predictions (n, G) in eval mode (HE2RNA: mean over its set of k)."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(bags), batch_size):
            x, mask = _to_device(bags[start:start + batch_size], device)
            with _autocast(device):
                out.append(model(x, mask).float().cpu().numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 0))


def fit(model: torch.nn.Module, train_bags: Sequence[np.ndarray], train_y: np.ndarray,
        val_bags: Sequence[np.ndarray], val_y: np.ndarray, *, lr: float, weight_decay: float, batch_size: int,
        max_epochs: int, patience: int, ks: Sequence[int] | None, seed: int, device: str) -> FitResult:
    """Train ``model`` (already seeded and built) on the training bags; ``ks``: HE2RNA's
    set of k (one drawn per step), None for a model without top-k."""
    rng = np.random.default_rng(seed)
    model.to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = torch.nn.MSELoss()
    y_train = torch.as_tensor(np.asarray(train_y, dtype=np.float32))
    best_score = mean_pearson(val_y, predict(model, val_bags, device, batch_size))
    best = FitResult(state=copy.deepcopy({k: v.cpu() for k, v in model.state_dict().items()}), best_epoch=0,
                     epochs_run=0, best_score=best_score)
    since_best = 0
    for epoch in range(1, max_epochs + 1):
        model.train()
        order = rng.permutation(len(train_bags))
        losses = []
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            x, mask = _to_device([train_bags[i] for i in idx], device)
            target = y_train[idx].to(device, non_blocking=True)
            k = int(rng.choice(ks)) if ks else None
            with _autocast(device):
                pred = model(x, mask, k)
            loss = loss_fn(pred.float(), target)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
        val_pred = predict(model, val_bags, device, batch_size)
        score = mean_pearson(val_y, val_pred)
        val_loss = float(np.mean((val_pred - val_y) ** 2))
        best.history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val_loss,
                             "val_mean_pearson": score})
        best.epochs_run = epoch
        since_best += 1
        if score > best.best_score:
            best.best_score, best.best_epoch, since_best = score, epoch, 0
            best.state = copy.deepcopy({k: v.cpu() for k, v in model.state_dict().items()})
        if since_best >= patience:
            break
    model.load_state_dict(best.state)
    return best
