"""What the pipeline recovered of a demo cohort's planted truth, per gene type and per
driving compartment, for the gene models and both ridge baselines (used by the small
demo's CI check and the full demo's acceptance test)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

MODELS = {"emo": "validation.tsv", "ridge": "ridge/validation.tsv", "colour_texture": "colour_texture/validation.tsv"}


PLANTED_TYPES = ("morphology", "tumour_cell", "weak")


def effect_stratum(gene_type: str, r2) -> str:
    """Planted genes by oracle R²: strong (>= 0.5), moderate (0.25-0.5), weak (< 0.25);
    other genes by their type (null, clinical, near_constant)."""
    if gene_type not in PLANTED_TYPES:
        return gene_type
    r2 = float(r2)
    return "strong" if r2 >= 0.5 else "moderate" if r2 >= 0.25 else "weak"


def planted_and_validated(workdir: Path, demo_out: str, encoder: str) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """(truth per gene: type, oracle r2, main driver; {model: validation table}) over the
    genes every model validated."""
    truth = json.loads((workdir / demo_out / "truth.json").read_text())
    genes = pd.DataFrame(truth["genes"]).T
    genes["driver"] = [max(d, key=lambda k: abs(d[k])) if isinstance(d, dict) and d else "" for d in genes["drivers"]]
    genes["stratum"] = [effect_stratum(t, r2) for t, r2 in zip(genes["type"], genes["r2"])]
    stats = workdir / "results/statistics" / encoder
    tables = {model: pd.read_csv(stats / name, sep="\t").set_index("gene") for model, name in MODELS.items()}
    shared = sorted(set(genes.index).intersection(*(set(t.index) for t in tables.values())))
    return genes.loc[shared], {m: t.loc[shared] for m, t in tables.items()}


def slide_model_tables(workdir: Path, encoder: str, genes: pd.Index) -> dict[str, pd.DataFrame]:
    """{slide model: validation table (gene index; padj_bh, spearman_r, r2_pred, n)} from
    the comparison's long statistics table, over ``genes`` (empty without slide models)."""
    path = workdir / "results/statistics" / encoder / "models" / "statistics.tsv"
    if not path.is_file():
        return {}
    stats = pd.read_csv(path, sep="\t")
    stats = stats[(stats["set"] == "validation") & ~stats["model"].isin(list(MODELS))]
    return {model: t.set_index("gene").rename(columns={"padj": "padj_bh"}).loc[genes]
            for model, t in stats.groupby("model", sort=False)}


def recovery_by(genes: pd.DataFrame, table: pd.DataFrame, column: str = "type") -> pd.DataFrame:
    """Per value of ``column``: n, sensitivity (BH < 0.05), mean Spearman, mean R², oracle R²."""
    joined = genes[[column, "r2"]].join(table[["padj_bh", "spearman_r", "r2_pred"]])
    joined["significant"] = joined["padj_bh"] < 0.05
    return joined.groupby(column).agg(n=("significant", "size"), sensitivity=("significant", "mean"),
                                      mean_spearman=("spearman_r", "mean"), mean_r2=("r2_pred", "mean"),
                                      oracle_r2=("r2", lambda r: pd.to_numeric(r, errors="coerce").mean()))


def report_lines(summaries: dict[str, pd.DataFrame]) -> list[str]:
    lines = []
    for model, summary in summaries.items():
        lines.append(f"{model}:")
        lines += [f"  {str(kind):13s} n={int(row.n):3d} sensitivity {row.sensitivity:.2f}  mean rho "
                  f"{row.mean_spearman:+.2f}  mean R2 {row.mean_r2:+.2f}  (oracle R2 {row.oracle_r2:.2f})"
                  for kind, row in summary.iterrows()]
    return lines
