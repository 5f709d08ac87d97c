"""Training curves of the per-gene heads: per-epoch train and tune losses of every
chunk, the best-epoch distribution and a per-gene summary (docs/gene_models.md).

Losses are in units of each gene's training variance (targets are standardised), so a
tune loss of 1 is what predicting the training mean would score; a best epoch of 1 or
2 for most genes means the heads stopped before learning anything.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .figures import STYLE, _save

log = logging.getLogger("emo")

SUMMARY_COLUMNS = ["chunk", "gene", "best_epoch", "epochs_run", "best_tune_loss", "stopped_early"]


def curve_summary(states: Mapping[str, Mapping]) -> pd.DataFrame:
    """One row per gene of every chunk state (``chunk -> state``)."""
    rows = []
    for chunk, state in sorted(states.items()):
        for i, gene in enumerate(state["genes"]):
            rows.append((chunk, gene, int(state["best_epoch"][i]), int(state["epochs_run"][i]),
                         float(state["best_tune_loss"][i]), bool(state["stopped_early"][i])))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _quantile_curves(curves: np.ndarray) -> np.ndarray:
    """(3, epochs) 25th, 50th and 75th percentile over genes still training at each epoch."""
    out = np.full((3, curves.shape[1]), np.nan)
    for epoch in range(curves.shape[1]):
        column = curves[:, epoch]
        column = column[np.isfinite(column)]
        if column.size:
            out[:, epoch] = np.percentile(column, [25, 50, 75])
    return out


def describe(summary: pd.DataFrame) -> str:
    """One line for the log: how far the heads trained."""
    if summary.empty:
        return "no genes were trained"
    best = summary["best_epoch"]
    return (f"{len(summary)} genes: best epoch median {best.median():g} (IQR {best.quantile(0.25):g}-"
            f"{best.quantile(0.75):g}, max {best.max()}), {100 * (best <= 2).mean():.1f}% at epoch <= 2; "
            f"best tune loss median {summary['best_tune_loss'].median():.3f} (1 = training-mean predictor)")


def plot_training_curves(states: Mapping[str, Mapping], path: str | Path, max_chunks_drawn: int = 12) -> pd.DataFrame:
    """Figure: (A) median train and tune loss per epoch over all genes with their IQR,
    with the median tune curve of up to ``max_chunks_drawn`` chunks as thin lines;
    (B) histogram of best epochs; (C) histogram of best tune losses. Returns the
    per-gene summary."""
    import matplotlib.pyplot as plt

    summary = curve_summary(states)
    chunks = sorted(states)
    width = max([np.asarray(states[c]["tune_curve"]).shape[1] for c in chunks if len(states[c]["genes"])] or [0])

    def stacked(key: str) -> np.ndarray:
        blocks = []
        for chunk in chunks:
            curve = np.asarray(states[chunk][key], dtype=np.float64)
            if curve.size:
                padded = np.full((curve.shape[0], width), np.nan)
                padded[:, :curve.shape[1]] = curve
                blocks.append(padded)
        return np.concatenate(blocks) if blocks else np.zeros((0, width))

    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
        epochs = np.arange(1, width + 1)
        if width:
            for key, colour, label in (("train_curve", "#4C72B0", "train"), ("tune_curve", "#DD8452", "tune")):
                q = _quantile_curves(stacked(key))
                axes[0].plot(epochs, q[1], color=colour, label=f"{label} (median over genes)")
                axes[0].fill_between(epochs, q[0], q[2], color=colour, alpha=0.2, linewidth=0)
            for chunk in chunks[:max_chunks_drawn]:
                curve = np.asarray(states[chunk]["tune_curve"], dtype=np.float64)
                if curve.size:
                    axes[0].plot(np.arange(1, curve.shape[1] + 1), _quantile_curves(curve)[1], color="#DD8452",
                                 linewidth=0.4, alpha=0.5)
            axes[0].axhline(1.0, color="grey", linestyle=":", linewidth=0.8)
            axes[0].legend(frameon=False)
        axes[0].set(xlabel="epoch", ylabel="loss (standardised; 1 = training mean)",
                    title=f"losses per epoch ({len(chunks)} chunks; thin: chunk medians)")
        if len(summary):
            axes[1].hist(summary["best_epoch"], bins=min(50, max(5, int(summary["best_epoch"].max()))),
                         color="#4C72B0")
            axes[2].hist(summary["best_tune_loss"], bins=50, color="#4C72B0")
            axes[2].axvline(1.0, color="grey", linestyle=":", linewidth=0.8)
        axes[1].set(xlabel="best epoch", ylabel="genes", title=f"best epochs ({len(summary)} genes)")
        axes[2].set(xlabel="best tune loss", ylabel="genes", title="tune loss at the best epoch")
        fig.tight_layout()
        _save(fig, path)
    return summary


def load_chunk_states(paths: Sequence[str | Path]) -> dict[str, dict]:
    """``chunk_{k}.pt`` files -> {k: state} (curves and stopping fields only are used)."""
    from .gene_models import load_state

    states = {}
    for path in paths:
        state = load_state(path)
        chunk = Path(path).stem.removeprefix("chunk_")
        states[chunk] = {key: state[key] for key in ("genes", "best_epoch", "epochs_run", "best_tune_loss",
                                                     "stopped_early", "train_curve", "tune_curve")}
    return states
