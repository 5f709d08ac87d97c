"""One comparison of every enabled model (EMO gene models, the ridge baselines, the
slide models) on the same validation / test / external patients (docs/models.md):
validation statistics over the genes all models share, replication of each model's own
selected genes in the test sets, per-gene Spearman side by side, training cost."""

from __future__ import annotations

import logging
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

log = logging.getLogger("emo")

MODEL_COMPARISON_COLUMNS = [
    "model", "n_genes", "validation_n_bh_below_0.05", "validation_median_spearman", "validation_mean_spearman",
    "n_selected", "test_n_tested", "test_n_validated", "test_replication_rate", "test_median_spearman",
    "external_n_tested", "external_n_validated", "external_replication_rate", "external_median_spearman"]
COST_COLUMNS = ["model", "cpu_seconds", "wall_seconds", "jobs", "source"]


def _rate(validated: int, tested: int) -> float:
    return validated / tested if tested else float("nan")


def _median(values) -> float:
    values = pd.Series(values, dtype=float).dropna()
    return float(values.median()) if len(values) else float("nan")


def comparison_table(tables: Mapping[str, Mapping[str, pd.DataFrame]]) -> pd.DataFrame:
    """``tables``: model -> {validation, test, external} tables (emo.stats.validation
    columns), rows in the given order. Validation counts are over the genes every model
    has; test/external rows are each model's own selected genes (Bonferroni within
    each set, as the heads' testing), so the replication rate is validated / tested."""
    shared = sorted(set.intersection(*(set(t["validation"]["gene"]) for t in tables.values())))
    rows = []
    for model, t in tables.items():
        val = t["validation"].set_index("gene").loc[shared]
        test, ext = t["test"], t["external"]
        rows.append({
            "model": model, "n_genes": len(shared),
            "validation_n_bh_below_0.05": int((val["padj_bh"] < 0.05).sum()),
            "validation_median_spearman": _median(val["spearman_r"]),
            "validation_mean_spearman": float(val["spearman_r"].mean()),
            "n_selected": int(t["validation"]["selected"].astype(bool).sum()),
            "test_n_tested": len(test), "test_n_validated": int(test["validated"].astype(bool).sum()),
            "test_replication_rate": _rate(int(test["validated"].astype(bool).sum()), len(test)),
            "test_median_spearman": _median(test["spearman_r"]),
            "external_n_tested": len(ext), "external_n_validated": int(ext["validated"].astype(bool).sum()),
            "external_replication_rate": _rate(int(ext["validated"].astype(bool).sum()), len(ext)),
            "external_median_spearman": _median(ext["spearman_r"]),
        })
    return pd.DataFrame(rows, columns=MODEL_COMPARISON_COLUMNS)


def per_gene_spearman(validations: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """gene + one validation Spearman column per model, over the shared genes."""
    shared = sorted(set.intersection(*(set(t["gene"]) for t in validations.values())))
    table = pd.DataFrame({"gene": shared})
    for model, t in validations.items():
        table[model] = t.set_index("gene").loc[shared, "spearman_r"].to_numpy()
    return table


def benchmark_cost(paths: Sequence[str]) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, files missing) summed over Snakemake benchmark files
    (columns cpu_time, s; the last row = the last run). A missing file makes the sums NaN."""
    from pathlib import Path

    cpu = wall = 0.0
    missing = 0
    for path in paths:
        if not Path(path).is_file():
            missing += 1
            continue
        b = pd.read_csv(path, sep="\t")
        cpu += float(b["cpu_time"].iloc[-1]) if "cpu_time" in b else float("nan")
        wall += float(b["s"].iloc[-1])
    if missing:
        cpu = wall = float("nan")
    return cpu, wall, missing


def cost_table(costs: Mapping[str, tuple[str, Sequence[str]]]) -> pd.DataFrame:
    """``costs``: model -> (kind, paths); kind ``benchmark`` (Snakemake benchmark files of
    the model's training jobs) or ``measured`` (a slide model's training_cost.tsv, its
    whole-job row, fold -1)."""
    rows = []
    for model, (kind, paths) in costs.items():
        if kind == "benchmark":
            cpu, wall, missing = benchmark_cost(paths)
            source = "benchmark: " + ", ".join(sorted({str(p).split("/")[-2] for p in paths}))
            if missing:
                source += f" ({missing} of {len(paths)} files missing)"
        else:
            frames = [pd.read_csv(p, sep="\t") for p in paths]
            whole = pd.concat([f[f["fold"] == -1] for f in frames])
            cpu, wall = float(whole["cpu_seconds"].sum()), float(whole["wall_seconds"].sum())
            source = "measured in slide_model_train"
        rows.append({"model": model, "cpu_seconds": cpu, "wall_seconds": wall, "jobs": len(paths), "source": source})
    return pd.DataFrame(rows, columns=COST_COLUMNS)


def spearman_figure(per_gene: pd.DataFrame, reference: str, out_path) -> None:
    """Per-gene validation Spearman of each model (y) against ``reference`` (x)."""
    from ..figures import STYLE, plt

    others = [c for c in per_gene.columns if c not in ("gene", reference)]
    n = max(1, len(others))
    with plt.rc_context(STYLE):
        _spearman_panels(per_gene, reference, others, n, out_path)


def _spearman_panels(per_gene, reference, others, n, out_path) -> None:
    from ..figures import _save, plt

    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.6), squeeze=False)
    for ax, model in zip(axes[0], others):
        x, y = per_gene[reference].to_numpy(float), per_gene[model].to_numpy(float)
        ax.scatter(x, y, s=8, alpha=0.6, lw=0)
        ax.plot([-1, 1], [-1, 1], color="grey", lw=0.8, ls="--")
        ax.set_xlim(-1, 1)
        ax.set_ylim(-1, 1)
        ax.set_xlabel(f"{reference}: validation Spearman r")
        ax.set_ylabel(f"{model}: validation Spearman r")
        above = int(np.sum(y > x))
        ax.set_title(f"{model} vs {reference}\n{above}/{len(x)} genes above the diagonal", fontsize=9)
    fig.tight_layout()
    _save(fig, out_path)


STATISTICS_COLUMNS = ["model", "set", "cohort", "gene", "n", "spearman_r", "spearman_p", "padj", "padj_method",
                      "r2_pred", "passed"]


def model_statistics(prepared, splits, predictions, cfg: Mapping) -> dict[str, pd.DataFrame]:
    """The heads' statistics on one model's patient table (emo.stats.validation): the
    validation table (BH, selection), then the internal and external tests of the genes
    it selects (Bonferroni). Returns {validation, test, external}."""
    from .inputs import load_dataset
    from .validation import EXTERNAL_COLUMNS, TEST_COLUMNS, selected_genes, testing_tables, validation_table

    data = load_dataset(prepared, splits, predictions)
    validation = validation_table(data, cfg["selection"]["min_r2"], cfg["selection"]["max_padj"])
    genes = list(selected_genes(validation)["gene"])
    if genes:
        test, external = testing_tables(data, genes, cfg["test_alpha"])
    else:
        test, external = pd.DataFrame(columns=TEST_COLUMNS), pd.DataFrame(columns=EXTERNAL_COLUMNS)
    return {"validation": validation, "test": test, "external": external}


def long_statistics(model: str, tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One model's validation/test/external tables in one long table (STATISTICS_COLUMNS)."""
    parts = []
    for name, padj, passed in (("validation", "padj_bh", "selected"), ("test", "padj_bonferroni", "validated"),
                               ("external", "padj_bonferroni", "validated")):
        t = tables[name]
        if not len(t):
            continue
        parts.append(pd.DataFrame({
            "model": model, "set": name, "cohort": t["cohort"] if "cohort" in t else "", "gene": t["gene"],
            "n": t["n"], "spearman_r": t["spearman_r"], "spearman_p": t["spearman_p"], "padj": t[padj],
            "padj_method": padj.removeprefix("padj_"), "r2_pred": t["r2_pred"] if "r2_pred" in t else np.nan,
            "passed": t[passed].astype(bool)}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=STATISTICS_COLUMNS)


def run_comparison(inputs: Mapping[str, str], models: Sequence[str], computed: Sequence[str],
                   cost_sources: Mapping[str, tuple[str, Sequence[str]]], cfg: Mapping, out: Mapping[str, str],
                   version: str) -> None:
    """Rule model_comparison. ``inputs`` keys: prepared, splits; emo_validation / _test /
    _external (the statistics stage's tables of the heads); <model>_patients for the
    ``computed`` models, whose statistics are computed here; ``cost_sources``: model ->
    (kind, files) for :func:`cost_table`."""
    from ..io import write_tsv
    from ..provenance import write_sidecar

    read = lambda key: pd.read_csv(inputs[key], sep="\t")  # noqa: E731
    tables, computed_rows = {}, []
    for model in models:
        if model in computed:
            tables[model] = model_statistics(inputs["prepared"], inputs["splits"], inputs[f"{model}_patients"], cfg)
            computed_rows.append(long_statistics(model, tables[model]))
        else:
            tables[model] = {k: read(f"{model}_{k}") for k in ("validation", "test", "external")}
    costs = {m: (cost_sources[m][0], list(cost_sources[m][1])) for m in models}
    table = comparison_table(tables)
    per_gene = per_gene_spearman({m: t["validation"] for m, t in tables.items()})
    statistics = (pd.concat(computed_rows, ignore_index=True) if computed_rows
                  else pd.DataFrame(columns=STATISTICS_COLUMNS))
    params = {"models": list(models), "computed": list(computed), **dict(cfg)}
    sources = sorted(inputs.values())
    for frame, key in ((table, "table"), (per_gene, "per_gene"), (statistics, "statistics"),
                       (cost_table(costs), "cost")):
        write_tsv(frame, out[key])
        write_sidecar(out[key], version, params, sources)
    spearman_figure(per_gene, models[0], out["figure"])
    for row in table.to_dict("records"):
        log.info("%s: %d/%d genes BH < 0.05 on validation, median Spearman %.3f, %d selected, %d/%d replicated "
                 "in the test set", row["model"], row["validation_n_bh_below_0.05"], row["n_genes"],
                 row["validation_median_spearman"], row["n_selected"], row["test_n_validated"], row["test_n_tested"])
