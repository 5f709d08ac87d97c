"""Figures of the clinical classifiers: patient-level ROC curves per label (AUC and DeLong
CI in the legend, one curve per evaluation set; PAM50 one-vs-rest per class on the pooled
held-out set) and patient-level confusion matrices (PAM50 and every binary label)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..io import atomic_path  # noqa: E402
from .metrics import roc_points  # noqa: E402

STYLE = {"figure.dpi": 100, "savefig.dpi": 100, "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8,
         "xtick.labelsize": 7, "ytick.labelsize": 7, "legend.fontsize": 6, "font.family": "DejaVu Sans",
         "axes.spines.top": False, "axes.spines.right": False}
SET_COLOURS = {"validation": "#4C72B0", "test": "#DD8452", "external": "#55A868", "heldout": "#222222"}


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)


def _ci_text(row) -> str:
    if row is None or row["value"] != row["value"]:
        return "AUC n/a"
    ci = (f" ({row['ci_lower']:.2f}-{row['ci_upper']:.2f})" if row["ci_lower"] == row["ci_lower"] else " (CI n/a)")
    return f"AUC {row['value']:.2f}{ci}"


def _no_label(path) -> None:
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(4, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no clinical label could be trained\n(reasons in labels.tsv)", ha="center", va="center")
        _save(fig, path)


def _panels(n: int, width: float, height: float):
    """A grid of at most three columns for ``n`` panels (at least one); unused axes hidden."""
    n = max(1, n)
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return fig, axes


def roc_figure(patients: pd.DataFrame, metrics: pd.DataFrame, labels: list[str], classes: dict, path) -> None:
    """One panel per label: patient-level ROC of each evaluation set (binary) or of each
    class vs the rest on the pooled held-out set (multi-class)."""
    if not labels:
        return _no_label(path)
    with plt.rc_context(STYLE):
        fig, axes = _panels(len(labels), 3.2, 3.0)
        for ax, label in zip(axes.ravel(), labels):
            names = classes[label]
            table = patients[(patients["label"] == label) & (patients["truth"] != "")]
            wide = table.pivot(index="patient", columns="class", values="probability")
            info = table.drop_duplicates("patient").set_index("patient")
            m = metrics[(metrics["label"] == label) & (metrics["level"] == "patient")]
            if len(names) == 2:
                curves = [(s, info["split"] == s if s != "heldout" else info["split"].isin(
                    ["validation", "test", "external"]), names[1]) for s in ("validation", "test", "external", "heldout")]
            else:
                curves = [(c, info["split"].isin(["validation", "test", "external"]), c) for c in names]
            for name, mask, positive in curves:
                chosen = info.index[mask.to_numpy()]
                y = (info.loc[chosen, "truth"] == positive).to_numpy()
                if len(chosen) == 0 or y.all() or not y.any():
                    continue
                fpr, tpr = roc_points(y, wide.loc[chosen, positive].to_numpy())
                key = ("set", name) if len(names) == 2 else ("class", name)
                row = m[(m["set"] == (name if len(names) == 2 else "heldout")) & (m["class"] == positive)
                        & m["metric"].str.startswith("auc")]
                text = _ci_text(row.iloc[0] if len(row) else None)
                ax.step(fpr, tpr, where="post", lw=1.2, color=SET_COLOURS.get(name),
                        label=f"{key[1]} (n={len(chosen)}): {text}")
            ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=0.8)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.01)
            ax.set_xlabel("false-positive rate")
            ax.set_ylabel("true-positive rate")
            title = f"{label}: {names[1]} vs {names[0]}" if len(names) == 2 else f"{label}: one vs rest (held-out)"
            ax.set_title(title)
            ax.legend(loc="lower right", frameon=False)
        fig.tight_layout()
        _save(fig, path)


def confusion_figure(confusion: pd.DataFrame, labels: list[str], classes: dict, path) -> None:
    """Patient-level confusion matrices (rows truth, columns predicted = the most probable
    class) of each label on the pooled held-out set."""
    with plt.rc_context(STYLE):
        fig, axes = _panels(len(labels), 3.0, 2.8)
        for ax, label in zip(axes.ravel(), labels):
            names = classes[label]
            table = confusion[(confusion["label"] == label) & (confusion["set"] == "heldout")]
            matrix = (table.pivot(index="truth", columns="predicted", values="count")
                      .reindex(index=names, columns=names).fillna(0).to_numpy(int))
            ax.imshow(matrix, cmap="Blues")
            for i in range(len(names)):
                for j in range(len(names)):
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                            color="white" if matrix[i, j] > matrix.max() / 2 else "black")
            ax.set_xticks(range(len(names)), names, rotation=30)
            ax.set_yticks(range(len(names)), names)
            ax.set_xlabel("predicted")
            ax.set_ylabel("truth")
            ax.set_title(f"{label} (held-out patients, n={matrix.sum()})")
        fig.tight_layout()
        _save(fig, path)
