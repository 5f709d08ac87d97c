"""Figures of the statistics stage (paper 001, Figs. 1, 2, 5 and Supplementary Fig. S2).

matplotlib with the Agg backend and a fixed style; PNGs are saved without
timestamp or software metadata so identical inputs give identical files.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.cluster import hierarchy  # noqa: E402

from .io import atomic_path  # noqa: E402
from .stats import clustering  # noqa: E402
from .stats.clinical import ordered_groups, status_groups  # noqa: E402
from .stats.inputs import Dataset  # noqa: E402

log = logging.getLogger("emo")

STYLE = {"figure.dpi": 100, "savefig.dpi": 100, "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8,
         "xtick.labelsize": 7, "ytick.labelsize": 7, "legend.fontsize": 7, "font.family": "DejaVu Sans",
         "axes.spines.top": False, "axes.spines.right": False, "svg.hashsalt": "emo",
         "image.cmap": "RdBu_r"}
MEASURED_COLOUR, PREDICTED_COLOUR = "#4C72B0", "#DD8452"
SUBTYPE_COLOURS = {"LumA": "#1f78b4", "LumB": "#a6cee3", "Her2": "#e31a1c", "Basal": "#33a02c",
                   "Normal": "#b2b2b2"}


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)


def _empty(path: str | Path, message: str) -> None:
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(4, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
        _save(fig, path)


def validation_histograms(validation: pd.DataFrame, path: str | Path, min_r2_shown: float = -0.1) -> None:
    """Fig. 1B-D: distributions of R²_pred, Spearman r and its p-value (validation)."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(10, 3))
        r2 = validation["r2_pred"].dropna()
        hidden = int((r2 < min_r2_shown).sum())
        axes[0].hist(r2[r2 >= min_r2_shown], bins=50, color=MEASURED_COLOUR)
        axes[0].set(xlabel="R²_pred (validation)", ylabel="genes",
                    title=f"R²_pred ({hidden} genes < {min_r2_shown:g} not shown)")
        axes[1].hist(validation["spearman_r"].dropna(), bins=50, color=MEASURED_COLOUR)
        axes[1].set(xlabel="Spearman r (validation)", title=f"{len(validation)} genes, "
                    f"{int(validation['selected'].sum())} selected")
        axes[2].hist(validation["spearman_p"].dropna(), bins=50, range=(0, 1), color=MEASURED_COLOUR)
        axes[2].set(xlabel="Spearman p (validation)")
        fig.subplots_adjust(left=0.07, right=0.98, bottom=0.16, top=0.9, wspace=0.3)
        _save(fig, path)


def top_genes(validation: pd.DataFrame, internal: pd.DataFrame, n: int) -> list[str]:
    """The n best genes by internal-test Spearman p (paper Fig. 2D), else by validation p."""
    table = internal if len(internal) else validation[validation["selected"]]
    if not len(table):
        table = validation
    order = table.sort_values(["spearman_p", "gene"], kind="mergesort")
    return list(order["gene"].head(n))


def spearman_label(measured: pd.Series, predicted: pd.Series) -> tuple[float, float, int]:
    """Spearman rho, its p value and n over the patients with both values (the panel's
    statistics; the validation table's own come from emo.stats.core on the same data)."""
    from scipy.stats import spearmanr

    both = pd.concat([measured, predicted], axis=1).dropna()
    if len(both) < 3:
        return float("nan"), float("nan"), len(both)
    result = spearmanr(both.iloc[:, 0], both.iloc[:, 1])
    return float(result.statistic), float(result.pvalue), len(both)


def top_scatter(data: Dataset, genes: list[str], split: str, path: str | Path) -> None:
    """Fig. 2D/E: predicted vs measured for the top genes; external cohorts coloured."""
    sets = [(cohort, patients) for s, cohort, patients in data.subsets() if s == split]
    if not sets or not genes:
        _empty(path, f"no {split} patients or no genes to show")
        return
    ncol = 5
    nrow = int(np.ceil(len(genes) / ncol))
    colours = plt.get_cmap("tab10")
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrow, ncol, figsize=(2.2 * ncol, 2.2 * nrow), squeeze=False)
        for ax, gene in zip(axes.flat, genes):
            for i, (cohort, patients) in enumerate(sets):
                ax.scatter(data.measured.loc[patients, gene], data.predicted.loc[patients, gene], s=4,
                           alpha=0.6, color=colours(i % 10), label=cohort, rasterized=False)
            if all(data.measured.loc[patients, gene].isna().all() for _, patients in sets):
                ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
                ax.set_title(gene)
            else:
                pooled = [p for _, patients in sets for p in patients]
                rho, p_value, n = spearman_label(data.measured.loc[pooled, gene], data.predicted.loc[pooled, gene])
                ax.set_title(f"{gene}\nρ = {rho:.2f}, p = {p_value:.1e}, n = {n}")
        for ax in list(axes.flat)[len(genes):]:
            ax.axis("off")
        for ax in axes[:, 0]:
            ax.set_ylabel("predicted")
        for ax in axes[-1, :]:
            ax.set_xlabel("measured (RNA-seq)")
        for ax in axes.flat:
            ax.locator_params(nbins=3)
        if split == "external":
            axes.flat[0].legend(loc="best", markerscale=2)
        fig.suptitle(f"Top {len(genes)} genes, {split} set")
        # Fixed margins: tight_layout over 25 panels costs seconds per figure.
        fig.subplots_adjust(left=0.06, right=0.98, bottom=0.5 / nrow / 2.0 + 0.04, top=1 - 0.5 / (2.0 * nrow) - 0.02,
                            wspace=0.35, hspace=0.75)
        _save(fig, path)


def proliferation_figure(scores: pd.DataFrame, table: pd.DataFrame, path: str | Path) -> None:
    """Fig. 5B-H: P.Score by PAM50 subtype (measured, predicted) and predicted vs
    measured scatter, one row per evaluation set."""
    keys = list(dict.fromkeys(zip(scores["split"], np.where(scores["split"] == "external", scores["cohort"], "all"))))
    if not keys:
        _empty(path, "no proliferation scores")
        return
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(keys), 3, figsize=(10, 2.8 * len(keys)), squeeze=False)
        for row, (split, cohort) in zip(axes, keys):
            part = scores[(scores["split"] == split) & ((scores["cohort"] == cohort) if split == "external" else True)]
            subtypes = ordered_groups(part["pam50"].dropna())
            for ax, column, label in ((row[0], "pscore_measured", "measured"), (row[1], "pscore_predicted", "predicted")):
                values = [part.loc[part["pam50"] == s, column].dropna().to_numpy() for s in subtypes]
                if subtypes:
                    ax.boxplot(values, tick_labels=subtypes)
                ax.set(title=f"{split} {cohort if cohort != 'all' else ''}: P.Score {label}", ylabel="P.Score")
            stat = table[(table["split"] == split) & (table["cohort"] == cohort) & (table["group"] == "all")]
            r = stat["spearman_r"].iloc[0] if len(stat) else np.nan
            colours = [SUBTYPE_COLOURS.get(s, "#555555") if isinstance(s, str) else "#555555" for s in part["pam50"]]
            row[2].scatter(part["pscore_measured"], part["pscore_predicted"], s=5, c=colours)
            row[2].set(xlabel="P.Score measured", ylabel="P.Score predicted",
                       title=f"Spearman r = {r:.2f}, n = {len(part)}")
        fig.subplots_adjust(left=0.07, right=0.98, bottom=0.35 / len(keys), top=1 - 0.25 / len(keys), wspace=0.3, hspace=0.45)
        _save(fig, path)


def marker_violins(data: Dataset, markers: dict[str, str], clinical: pd.DataFrame, scores: pd.DataFrame,
                   path: str | Path, split: str = "validation") -> None:
    """Fig. 1E-L: marker genes by clinical status, measured (left) and predicted (right)."""
    genes = [g for g in markers if g in data.genes]
    sets = [p for s, _, p in data.subsets() if s == split]
    if not genes or not sets:
        _empty(path, f"no marker genes modelled or no {split} patients")
        return
    patients = sets[0]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(genes), 2, figsize=(6, 2.2 * len(genes)), squeeze=False)
        for row, gene in zip(axes, genes):
            groups = status_groups(markers[gene], patients, clinical, scores)
            labels = ordered_groups(groups.dropna())
            for ax, (source, frame) in zip(row, (("measured", data.measured), ("predicted", data.predicted))):
                values = frame.loc[patients, gene]
                samples = [values[(groups == g).fillna(False).to_numpy()].dropna().to_numpy() for g in labels]
                shown = [(l, v) for l, v in zip(labels, samples) if len(v) > 1]
                if shown:
                    parts = ax.violinplot([v for _, v in shown], showmedians=True)
                    for body in parts["bodies"]:
                        body.set_facecolor(MEASURED_COLOUR if source == "measured" else PREDICTED_COLOUR)
                    ax.set_xticks(range(1, len(shown) + 1), [f"{l}\n(n={len(v)})" for l, v in shown])
                ax.set(title=f"{gene} {source} by {markers[gene]} ({split})", ylabel="expression")
        fig.subplots_adjust(left=0.12, right=0.98, bottom=0.35 / len(genes), top=1 - 0.2 / len(genes), wspace=0.35, hspace=0.65)
        _save(fig, path)


def pam50_heatmaps(data: Dataset, genes: list[str], clusters: pd.DataFrame, method: str, path: str | Path,
                   subtypes: pd.Series | None = None) -> None:
    """Supplementary Fig. S2: PAM50 z-scores, patients and genes ordered by clustering
    of the measured data; the predicted heatmap uses the same order. Gene labels legible
    (6 pt, one row each), a colour bar per row, and the patients' PAM50 subtype (clinical
    table) as a strip above each heatmap."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    clustered = set(zip(clusters["split"], clusters["cohort"]))
    sets = [(s, c, p) for s, c, p in data.subsets() if (s, c) in clustered]
    if not sets:
        _empty(path, "no PAM50 clustering available")
        return
    subtype_names = list(SUBTYPE_COLOURS)
    strip_cmap = ListedColormap([SUBTYPE_COLOURS[n] for n in subtype_names] + ["#ffffff"])
    row_height = max(3.2, 0.11 * len(genes) + 1.4)
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(11, row_height * len(sets)))
        outer = fig.add_gridspec(len(sets), 1, hspace=0.25)
        for index, (split, cohort, patients) in enumerate(sets):
            grid = outer[index].subgridspec(2, 3, height_ratios=[0.06, 1], width_ratios=[1, 1, 0.03], hspace=0.05,
                                            wspace=0.2)
            usable = [g for g in genes if data.measured.loc[patients, g].notna().all()
                      and data.measured.loc[patients, g].std() > 0 and data.predicted.loc[patients, g].std() > 0]
            zm = clustering.zscore(data.measured.loc[patients, usable])
            zp = clustering.zscore(data.predicted.loc[patients, usable])
            usable = [g for g in usable if g in zm.columns and g in zp.columns]
            zm, zp = zm[usable], zp[usable]
            patient_order = hierarchy.leaves_list(clustering.linkage_matrix(zm.to_numpy(), method))
            gene_order = hierarchy.leaves_list(clustering.linkage_matrix(zm.to_numpy().T, method))
            ordered = [zm.index[i] for i in patient_order]
            if subtypes is not None:
                calls = subtypes.reindex(ordered)
                codes = [subtype_names.index(c) if c in subtype_names else len(subtype_names) for c in calls]
            for column, (z, label) in enumerate(((zm, "measured"), (zp, "predicted"))):
                strip = fig.add_subplot(grid[0, column])
                ax = fig.add_subplot(grid[1, column])
                strip.set_axis_off()
                if subtypes is not None:
                    strip.imshow(np.array([codes]), aspect="auto", cmap=strip_cmap, vmin=0, vmax=len(subtype_names),
                                 interpolation="nearest")
                strip.set_title(f"PAM50 {label}, {split} {cohort if cohort != 'all' else ''} (n={len(patients)})")
                matrix = z.to_numpy()[np.ix_(patient_order, gene_order)].T
                image = ax.imshow(np.clip(matrix, -3, 3), aspect="auto", vmin=-3, vmax=3, interpolation="nearest")
                ax.set_yticks(range(len(usable)), [usable[i] for i in gene_order], fontsize=6)
                ax.set_xticks([])
                ax.set_xlabel("patients (ordered by measured clustering)")
            colour_bar = fig.add_subplot(grid[1, 2])
            fig.colorbar(image, cax=colour_bar, label="z-score (clipped at ±3)")
        if subtypes is not None:
            fig.legend(handles=[Patch(color=c, label=n) for n, c in SUBTYPE_COLOURS.items()], title="PAM50 (clinical)",
                       loc="upper right", ncol=len(SUBTYPE_COLOURS), fontsize=7, frameon=False)
        fig.subplots_adjust(left=0.08, right=0.95, bottom=0.25 / len(sets) / row_height * 3.2,
                            top=1 - 0.35 / len(sets) / row_height * 3.2)
        _save(fig, path)


def run_figures(inputs: dict, outputs: dict, cfg: dict, clinical_mapping: dict | None = None) -> None:
    """Rule gene_statistics_figures. ``inputs``/``outputs``: Snakemake named files;
    clinical figures are drawn only when their tables are inputs (read with config key
    clinical_mapping ``clinical_mapping``)."""
    from .stats.inputs import load_clinical, load_dataset

    validation = pd.read_csv(inputs["validation"], sep="\t")
    internal = pd.read_csv(inputs["test"], sep="\t")
    validation_histograms(validation, outputs["histograms"], cfg["figures"]["min_r2_shown"])
    top = top_genes(validation, internal, int(cfg["figures"]["top_n"]))
    markers = dict(cfg["markers"])
    pam50_genes = list(cfg["pam50"]["genes"])
    wanted = list(dict.fromkeys(top + list(markers) + pam50_genes))
    data = load_dataset(inputs["prepared"], inputs["splits"], inputs["predictions"], genes=wanted)
    for split in ("validation", "test", "external"):
        top_scatter(data, [g for g in top if g in data.genes], split, outputs[f"top_{split}"])
    if "proliferation_figure" in outputs:
        clinical = load_clinical(inputs["clinical"], mapping=clinical_mapping)
        scores = pd.read_csv(inputs["proliferation_scores"], sep="\t", dtype={"patient": str})
        table = pd.read_csv(inputs["proliferation"], sep="\t")
        proliferation_figure(scores, table, outputs["proliferation_figure"])
        marker_violins(data, {g: c for g, c in markers.items() if c == "proliferation" or c in clinical.columns},
                       clinical, scores, outputs["markers_figure"])
        clusters = pd.read_csv(inputs["pam50_clusters"], sep="\t", dtype={"patient": str})
        subtypes = clinical["pam50"] if "pam50" in clinical.columns else None
        pam50_heatmaps(data, [g for g in pam50_genes if g in data.genes], clusters, cfg["pam50"]["linkage"],
                       outputs["pam50_figure"], subtypes)
