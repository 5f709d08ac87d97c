"""The pipeline's classifier on frozen features: a softmax head (logistic or one hidden
layer) fitted on per-tile or per-patient feature matrices, with early stopping on a
held-out set scored at the group (patient) level.

One code path for binary and multi-class labels: ``y`` holds class indices 0..C-1 and
:meth:`FittedClassifier.predict_proba` returns (N, C) probabilities (binary: column 1 is
the positive class's score). Group-level scores are the mean of the rows' probabilities
(:func:`group_mean`; the patient score of Ektefaie et al. 2021).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class ClassifierConfig:
    """Head and training settings (a config section completed from the schema; no defaults here)."""

    hidden: int            # 0 = logistic (softmax) regression
    dropout: float
    lr: float
    weight_decay: float
    batch_size: int
    max_epochs: int
    patience: int          # epochs without a better tune loss before stopping
    balance_classes: bool  # weight the loss by inverse class frequency of the training rows
    seed: int

    @classmethod
    def from_config(cls, cfg: dict) -> "ClassifierConfig":
        missing = [k for k in cls.__dataclass_fields__ if k not in cfg]
        if missing:
            raise KeyError(f"classifier settings lack {missing} (the config must be completed from the schema)")
        return cls(**{k: cfg[k] for k in cls.__dataclass_fields__})


def build_head(dim: int, n_classes: int, hidden: int, dropout: float):
    import torch.nn as nn

    if hidden <= 0:
        return nn.Linear(dim, n_classes)
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes))


@dataclass
class FittedClassifier:
    state: dict
    n_classes: int
    dim: int
    mean: np.ndarray
    std: np.ndarray
    config: ClassifierConfig
    best_epoch: int
    epochs_run: int
    best_tune_loss: float
    history: list = field(default_factory=list)

    def predict_proba(self, x: np.ndarray, device: str = "cpu", batch: int = 65536) -> np.ndarray:
        """(N, C) class probabilities of the rows of ``x``."""
        import torch

        x = np.asarray(x, dtype=np.float32)
        out = np.zeros((len(x), self.n_classes), dtype=np.float64)
        if len(x) == 0:
            return out
        model = build_head(self.dim, self.n_classes, self.config.hidden, self.config.dropout)
        model.load_state_dict(self.state)
        model.to(device).eval()
        with torch.no_grad():
            for start in range(0, len(x), batch):
                chunk = torch.as_tensor((x[start:start + batch] - self.mean) / self.std, device=device)
                out[start:start + batch] = torch.softmax(model(chunk).double(), dim=1).cpu().numpy()
        return out

    def to_dict(self) -> dict:
        """Plain data for torch.save."""
        return {"state": self.state, "n_classes": self.n_classes, "dim": self.dim, "mean": self.mean,
                "std": self.std, "config": asdict(self.config), "best_epoch": self.best_epoch,
                "epochs_run": self.epochs_run, "best_tune_loss": self.best_tune_loss, "history": self.history}


def group_mean(values: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique groups, per-group mean of the rows of ``values``)."""
    values = np.asarray(values, dtype=np.float64)
    groups = np.asarray(groups).astype(str)
    names, inverse = np.unique(groups, return_inverse=True)
    sums = np.zeros((len(names),) + values.shape[1:])
    np.add.at(sums, inverse, values)
    counts = np.bincount(inverse, minlength=len(names)).astype(np.float64)
    return names, sums / counts.reshape((-1,) + (1,) * (values.ndim - 1))


def _group_log_loss(proba: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
    names, mean = group_mean(proba, groups)
    _, labels = group_mean(np.asarray(y, dtype=np.float64), groups)
    labels = labels.astype(np.int64)
    return float(-np.mean(np.log(np.clip(mean[np.arange(len(names)), labels], 1e-12, None))))


def fit(x: np.ndarray, y: np.ndarray, n_classes: int, cfg: ClassifierConfig,
        tune: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None, device: str = "cpu") -> FittedClassifier:
    """Fit the head on rows ``x`` (N, D) with class indices ``y`` (N,).

    ``tune`` = (x, y, groups): after each epoch the mean cross-entropy of the groups'
    mean probabilities (a patient's score is the mean of its tiles') is computed; the
    weights of the best epoch are kept and training stops after ``patience`` epochs
    without improvement. Without ``tune`` the last epoch's weights are kept.
    Deterministic for a given seed on one device.
    """
    import torch
    import torch.nn as nn

    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    if len(x) == 0 or len(np.unique(y)) < 2:
        raise ValueError(f"fit needs rows of at least two classes, got {len(x)} rows of classes {sorted(set(y))}")
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    mean = x.mean(axis=0)
    std = x.std(axis=0) + 1e-6
    xt = torch.as_tensor((x - mean) / std)
    yt = torch.as_tensor(y)
    model = build_head(x.shape[1], n_classes, cfg.hidden, cfg.dropout).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    weight = (len(y) / (n_classes * np.maximum(counts, 1.0))) if cfg.balance_classes else np.ones(n_classes)
    loss_fn = nn.CrossEntropyLoss(weight=torch.as_tensor(weight, dtype=torch.float32, device=device))

    def snapshot():
        return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}

    result = FittedClassifier(state={}, n_classes=n_classes, dim=x.shape[1], mean=mean, std=std, config=cfg,
                              best_epoch=0, epochs_run=0, best_tune_loss=math.nan)
    best_loss, since, best_state = math.inf, 0, None
    for epoch in range(1, cfg.max_epochs + 1):
        model.train()
        permutation = torch.randperm(len(yt), generator=generator)
        total = 0.0
        for start in range(0, len(yt), cfg.batch_size):
            idx = permutation[start:start + cfg.batch_size]
            optimiser.zero_grad()
            loss = loss_fn(model(xt[idx].to(device)), yt[idx].to(device))
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
        result.epochs_run = epoch
        row = {"epoch": epoch, "train_loss": total / len(yt), "tune_loss": math.nan}
        if tune is not None and len(tune[0]):
            result.state = snapshot()
            tune_loss = _group_log_loss(result.predict_proba(tune[0], device), tune[1], tune[2])
            row["tune_loss"] = tune_loss
            if tune_loss < best_loss - 1e-9:
                best_loss, since = tune_loss, 0
                best_state, result.best_epoch = result.state, epoch
            else:
                since += 1
        result.history.append(row)
        if tune is not None and len(tune[0]) and since >= cfg.patience:
            break
    if tune is not None and len(tune[0]) and best_state is not None:
        result.state, result.best_tune_loss = best_state, best_loss
    else:  # no tune rows (or no finite tune loss): the last epoch's weights
        result.state, result.best_epoch = snapshot(), result.epochs_run
    return result
