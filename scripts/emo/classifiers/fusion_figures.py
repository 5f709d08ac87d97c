"""Figures of the fusion stage: F1 / PR-AUC of every model and target with CIs, the
cross-validation confusion matrices (targets x models) and the cross-attention weights
(expression features x image patches) of a few patients."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .figures import STYLE, _panels, _save, plt

MODEL_COLOURS = {"image": "#DD8452", "expression": "#4C72B0", "concatenation": "#55A868", "late": "#8172B3",
                 "cross_attention": "#C44E52"}


def _empty(path, text: str) -> None:
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(4, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, text, ha="center", va="center")
        _save(fig, path)


def metrics_figure(metrics: pd.DataFrame, path) -> None:
    """One panel per metric (F1, PR-AUC, ROC-AUC): per target, a bar per model (cross-
    validation, out of fold) with its CI."""
    m = metrics[metrics["set"] == "cv"]
    if m.empty:
        return _empty(path, "no fusion target could be trained\n(reasons in targets.tsv)")
    targets = list(dict.fromkeys(m["target"]))
    models = list(dict.fromkeys(m["model"]))
    width = 0.8 / len(models)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(max(6.0, 1.1 * len(targets) * 3), 2.8), squeeze=False)
        for ax, metric, title in zip(axes[0], ("f1", "pr_auc", "roc_auc"), ("F1", "PR-AUC", "ROC-AUC")):
            for j, model in enumerate(models):
                rows = m[m["model"] == model].set_index("target").reindex(targets)
                x = np.arange(len(targets)) + (j - (len(models) - 1) / 2) * width
                value = rows[metric].to_numpy(float)
                err = np.vstack([value - rows[f"{metric}_ci_lower"].to_numpy(float),
                                 rows[f"{metric}_ci_upper"].to_numpy(float) - value])
                ax.bar(x, value, width, color=MODEL_COLOURS.get(model), label=model)
                ax.errorbar(x, value, yerr=np.nan_to_num(np.clip(err, 0, None)), fmt="none", ecolor="black",
                            elinewidth=0.6, capsize=1.5)
            ax.set_xticks(range(len(targets)), targets, rotation=30, ha="right")
            ax.set_ylim(0, 1.05)
            ax.set_title(f"{title} (cross-validation)")
        handles, names = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, names, loc="lower center", frameon=False, ncol=len(models))
        fig.tight_layout(rect=(0, 0.08, 1, 1))
        _save(fig, path)


def confusion_figure(confusion: pd.DataFrame, path) -> None:
    """Cross-validation confusion matrices: one row of panels per target, one panel per model."""
    c = confusion[confusion["set"] == "cv"]
    if c.empty:
        return _empty(path, "no fusion target could be trained\n(reasons in targets.tsv)")
    targets = list(dict.fromkeys(c["target"]))
    models = list(dict.fromkeys(c["model"]))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(targets), len(models), figsize=(2.1 * len(models), 2.0 * len(targets)),
                                 squeeze=False)
        for i, target in enumerate(targets):
            for j, model in enumerate(models):
                ax = axes[i][j]
                table = c[(c["target"] == target) & (c["model"] == model)]
                names = list(dict.fromkeys(table["truth"]))
                matrix = (table.pivot(index="truth", columns="predicted", values="count")
                          .reindex(index=names, columns=names).fillna(0).to_numpy(int))
                ax.imshow(matrix, cmap="Blues")
                for a in range(len(names)):
                    for b in range(len(names)):
                        ax.text(b, a, str(matrix[a, b]), ha="center", va="center", fontsize=6,
                                color="white" if matrix[a, b] > matrix.max() / 2 else "black")
                short = [n.replace("not ", "¬") for n in names]
                ax.set_xticks(range(len(names)), short, rotation=30, fontsize=6)
                ax.set_yticks(range(len(names)), short, fontsize=6)
                ax.set_title(f"{target}: {model}", fontsize=7)
        fig.tight_layout()
        _save(fig, path)


def pick_patients(predictions: pd.DataFrame, target: str, n: int) -> list[str]:
    """Half the most confidently correct positives, half negatives (cv, cross-attention)."""
    p = predictions[(predictions["target"] == target) & (predictions["model"] == "cross_attention")
                    & (predictions["set"] == "cv") & (predictions["class"] == predictions["truth"])]
    classes = list(dict.fromkeys(predictions.loc[predictions["target"] == target, "class"]))
    positive = classes[-1]
    pos = p[p["truth"] == positive].sort_values(["probability", "patient"], ascending=[False, True])
    neg = p[p["truth"] != positive].sort_values(["probability", "patient"], ascending=[False, True])
    n_pos = (n + 1) // 2
    return list(pos["patient"].head(n_pos)) + list(neg["patient"].head(n - min(n_pos, len(pos))))


def attention_figure(store, predictions: pd.DataFrame, target: str | None, n_patients: int, n_features: int,
                     path) -> None:
    """Per chosen patient a heatmap of the expression features with the most peaked
    attention (rows) over the patient's image patches (columns, its slide and level-0 x, y)."""
    if not store.targets:
        return _empty(path, "no cross-attention model was trained")
    if target not in store.targets:  # null (or a target not trained): the first trained one
        order = list(dict.fromkeys(predictions["target"]))
        target = next((name for name in order if name in store.targets), sorted(store.targets)[0])
    t = store.targets[target]
    chosen = pick_patients(predictions, target, n_patients) or list(t.patients[:n_patients])
    index = {p: i for i, p in enumerate(t.patients)}
    with plt.rc_context(STYLE):
        fig, axes = _panels(len(chosen), 4.2, 3.2)
        for ax, patient in zip(axes.ravel(), chosen):
            i = index[patient]
            patches = np.nonzero(t.samples[i] != "")[0]
            w = np.asarray(t.weights[i], dtype=np.float64)[:, patches]
            peak = w.max(axis=1)
            rows = np.argsort(-peak, kind="stable")[:n_features]
            image = ax.imshow(w[rows], aspect="auto", cmap="magma", vmin=0)
            ax.set_yticks(range(len(rows)), [store.genes[r] for r in rows], fontsize=6)
            ax.set_xticks(range(len(patches)), [f"{t.samples[i][k]} {t.coords[i][k][0]},{t.coords[i][k][1]}"
                                                 for k in patches], rotation=90, fontsize=4)
            truth = predictions[(predictions["target"] == target) & (predictions["patient"] == patient)]["truth"]
            ax.set_title(f"{target}: {patient} ({truth.iloc[0] if len(truth) else '?'})")
            ax.set_xlabel("image patch (slide, level-0 x,y)")
            fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="attention")
        fig.tight_layout()
        _save(fig, path)
