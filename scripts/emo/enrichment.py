"""Pathway enrichment of the validation statistics (paper 001, "Gene set enrichment analysis").

Genes are ranked by their validation statistics (``validation.tsv``) and each gene-set file
(GMT, e.g. Reactome or Hallmark, supplied by the user) is tested with a rank-based test:

- :func:`library_prerank`: GSEA preranked (Subramanian et al. 2005) with gseapy's
  ``prerank`` (gene-set permutations, NES, nominal p, GSEA FDR q-value);
- :func:`reference_prerank`: the same weighted Kolmogorov-Smirnov running sum and
  gene-set permutation null in plain numpy, the cross-check of the library (ES agree
  exactly, NES/p within permutation noise; the rank correlation of the two NES orders is
  written to ``agreement.tsv``);
- :func:`over_representation`: the paper's set-based analysis of the genes *not*
  predicted well (hypergeometric test of each set against all tested genes), BH per file.

FDR is computed per gene-set file (one database = one family of tests), as the paper
reports Reactome and Hallmark separately. Tables: docs/pathway_enrichment.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .errors import ConfigError, InputTableError
from .io import write_tsv
from .provenance import write_sidecar
from .stats.core import bh_adjust

log = logging.getLogger("emo")

RANKINGS = ("adjusted_p", "signed")
# strictly decreasing tie-break added to the ranking metric, so both implementations see one order
TIE_STEP = 1e-9


@dataclass(frozen=True)
class GeneSet:
    name: str
    description: str
    genes: tuple[str, ...]


def read_gmt(path: str | Path) -> list[GeneSet]:
    """Gene sets of a GMT file: ``name<TAB>description<TAB>gene...`` per line (MSigDB format).
    Duplicate genes within a set are dropped; a set name given twice is refused."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config key 'enrichment.gene_sets': {path} does not exist; download the GMT file "
                          "(e.g. MSigDB Hallmark or Reactome) and give its path")
    sets: dict[str, GeneSet] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) < 3:
            raise InputTableError(f"gene-set file {path}, line {number}: expected 'name<TAB>description<TAB>"
                                  f"gene...' (tab-separated), got {len(fields)} field(s)")
        name, description = fields[0], fields[1]
        if name in sets:
            raise InputTableError(f"gene-set file {path}, line {number}: gene set {name!r} is defined twice")
        genes = tuple(dict.fromkeys(g for g in fields[2:] if g))
        sets[name] = GeneSet(name, description, genes)
    if not sets:
        raise InputTableError(f"gene-set file {path} holds no gene sets")
    return list(sets.values())


def write_gmt(sets: Sequence[GeneSet], path: str | Path) -> None:
    from .io import atomic_write_text

    atomic_write_text(path, "".join("\t".join([s.name, s.description, *s.genes]) + "\n" for s in sets))


def gene_ranking(validation: pd.DataFrame, ranking: str) -> pd.Series:
    """Ranking metric per gene, strictly decreasing (best-predicted first).

    ``adjusted_p``: -log10 of the BH-adjusted validation p (the paper's ranking); ties
    (BH gives runs of equal values) are ordered by the raw p, then the gene name.
    ``signed``: sign(Spearman r) * -log10(p): genes predicted in the wrong direction go to
    the bottom. A tie-break of ``TIE_STEP`` per rank makes the order unique, so every
    implementation sees the same list. Genes without a p-value are left out."""
    if ranking not in RANKINGS:
        raise ConfigError(f"config key 'enrichment.ranking': {ranking!r} is not one of {', '.join(RANKINGS)}")
    need = {"gene", "spearman_r", "spearman_p", "padj_bh"}
    missing = sorted(need - set(validation.columns))
    if missing:
        raise InputTableError(f"validation table lacks column(s) {', '.join(missing)}; it is written by rule "
                              "gene_statistics_validation")
    table = validation[list(need)].copy()
    table = table[np.isfinite(table["spearman_p"].astype(float)) & np.isfinite(table["padj_bh"].astype(float))]
    if table["gene"].duplicated().any():
        raise InputTableError(f"validation table: gene(s) {sorted(table['gene'][table['gene'].duplicated()])[:5]} "
                              "appear twice")
    floor = np.finfo(float).tiny
    if ranking == "adjusted_p":
        table["metric"] = -np.log10(np.maximum(table["padj_bh"].to_numpy(float), floor))
        table = table.sort_values(["padj_bh", "spearman_p", "gene"], kind="mergesort")
    else:
        sign = np.sign(table["spearman_r"].to_numpy(float))
        table["metric"] = sign * -np.log10(np.maximum(table["spearman_p"].to_numpy(float), floor))
        table["neg"] = -table["metric"]
        table = table.sort_values(["neg", "gene"], kind="mergesort")
    n = len(table)
    metric = table["metric"].to_numpy(float) + TIE_STEP * np.arange(n, 0, -1)
    return pd.Series(metric, index=table["gene"].to_numpy(), name=ranking)


def filter_sets(sets: Sequence[GeneSet], genes: Sequence[str], min_size: int, max_size: int
                ) -> tuple[list[GeneSet], list[tuple[str, int]]]:
    """Sets restricted to the ranked genes, kept if min_size <= size <= max_size;
    returns (kept, [(name, size) of the dropped])."""
    universe = set(genes)
    kept, dropped = [], []
    for s in sets:
        matched = tuple(g for g in s.genes if g in universe)
        if min_size <= len(matched) <= max_size:
            kept.append(GeneSet(s.name, s.description, matched))
        else:
            dropped.append((s.name, len(matched)))
    return kept, dropped


# ----------------------------------------------------------------------------- reference (numpy)

def running_sum(metric: np.ndarray, in_set: np.ndarray, weight: float = 1.0) -> tuple[float, np.ndarray]:
    """Weighted KS running sum of Subramanian et al. (2005) over a ranked list (decreasing
    metric): a hit adds |r|^p / N_R, a miss subtracts 1 / (N - N_H). Returns (ES, RES), ES
    the signed maximum deviation from zero."""
    in_set = np.asarray(in_set, bool)
    w = np.abs(np.asarray(metric, float)) ** weight
    n, k = len(in_set), int(in_set.sum())
    hit = np.where(in_set, w, 0.0)
    hit = hit / hit.sum()
    miss = np.where(in_set, 0.0, 1.0 / (n - k))
    res = np.cumsum(hit - miss)
    top, bottom = res.max(), res.min()
    return float(top if abs(top) > abs(bottom) else bottom), res


def _es_from_positions(w_sorted_hits: np.ndarray, positions: np.ndarray, n: int) -> np.ndarray:
    """ES of many gene sets of one size given their sorted hit positions (rows) and the
    hits' weights (rows, same order): the peak is at a hit, the trough just before one."""
    k = positions.shape[1]
    cum = np.cumsum(w_sorted_hits, axis=1)
    cum = cum / cum[:, -1:]
    misses_before = positions - np.arange(k)[None, :]       # misses ranked before each hit
    at_hit = cum - misses_before / (n - k)
    before_hit = cum - w_sorted_hits / w_sorted_hits.sum(axis=1, keepdims=True) - misses_before / (n - k)
    top = np.maximum(at_hit.max(axis=1), 0.0)
    bottom = np.minimum(before_hit.min(axis=1), 0.0)
    return np.where(np.abs(top) > np.abs(bottom), top, bottom)


def reference_prerank(ranked: pd.Series, sets: Sequence[GeneSet], permutations: int, seed: int,
                      weight: float = 1.0, block: int = 100) -> pd.DataFrame:
    """GSEA preranked in numpy: ES by the weighted running sum; null ES of random gene sets
    of the same size (the first k genes of each of ``permutations`` random permutations of
    the list, shared by all sets); NES = ES / mean of the same-signed null ES; nominal p =
    share of same-signed null ES at least as extreme."""
    metric = ranked.to_numpy(float)
    n = len(metric)
    w = np.abs(metric) ** weight
    index = {g: i for i, g in enumerate(ranked.index)}
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(n) for _ in range(permutations)]) if permutations else np.empty((0, n), int)
    null_by_size: dict[int, np.ndarray] = {}
    rows = []
    for s in sets:
        k = len(s.genes)
        if k not in null_by_size:
            parts = []
            for start in range(0, permutations, block):
                pos = np.sort(perms[start:start + block, :k], axis=1)
                parts.append(_es_from_positions(w[pos], pos, n))
            null_by_size[k] = np.concatenate(parts) if parts else np.empty(0)
        pos = np.sort(np.array([index[g] for g in s.genes]))[None, :]
        es = float(_es_from_positions(w[pos], pos, n)[0])
        null = null_by_size[k]
        same = null[null >= 0] if es >= 0 else null[null < 0]
        if len(same) and np.mean(np.abs(same)) > 0:
            nes = es / np.mean(np.abs(same))
            p = float(np.mean(same >= es) if es >= 0 else np.mean(same <= es))
        else:
            nes, p = np.nan, np.nan
        rows.append({"gene_set": s.name, "size": k, "es": es, "nes": nes, "pval": p})
    out = pd.DataFrame(rows, columns=["gene_set", "size", "es", "nes", "pval"])
    out["padj_bh"] = bh_adjust(out["pval"].to_numpy(float)) if len(out) else []
    return out


# ----------------------------------------------------------------------------- library (gseapy)

def library_prerank(ranked: pd.Series, sets: Sequence[GeneSet], permutations: int, seed: int,
                    weight: float = 1.0) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """GSEA preranked with gseapy (``prerank``, gene-set permutations, one thread). Returns
    the table (gene_set, size, es, nes, pval, fdr, fwer, leading_edge) in the sets' order and
    each set's running enrichment score over the ranked list."""
    import gseapy

    if not sets:
        return pd.DataFrame(columns=["gene_set", "size", "es", "nes", "pval", "fdr", "fwer", "leading_edge"]), {}
    result = gseapy.prerank(rnk=ranked, gene_sets={s.name: list(s.genes) for s in sets},
                            permutation_num=permutations, weight=weight, min_size=1, max_size=len(ranked),
                            seed=seed, threads=1, outdir=None, no_plot=True, verbose=False)
    rows, curves = [], {}
    for s in sets:
        r = result.results[s.name]
        rows.append({"gene_set": s.name, "size": len(s.genes), "es": float(r["es"]), "nes": float(r["nes"]),
                     "pval": float(r["pval"]), "fdr": float(r["fdr"]), "fwer": float(r["fwerp"]),
                     "leading_edge": str(r["lead_genes"])})
        curves[s.name] = np.asarray(r["RES"], float)
    return pd.DataFrame(rows), curves


def agreement(library: pd.DataFrame, reference: pd.DataFrame) -> dict:
    """Rank agreement of the two implementations over the sets of one file: Spearman
    correlation of their NES, the largest ES difference (ES is deterministic)."""
    both = library.merge(reference, on="gene_set", suffixes=("", "_reference"))
    finite = both[np.isfinite(both["nes"]) & np.isfinite(both["nes_reference"])]
    if len(finite) >= 3:
        rho, p = stats.spearmanr(finite["nes"], finite["nes_reference"])
    else:
        rho, p = np.nan, np.nan
    return {"n_sets": int(len(both)), "spearman_nes": float(rho), "spearman_p": float(p),
            "max_abs_es_difference": float(np.max(np.abs(both["es"] - both["es_reference"]))) if len(both) else np.nan,
            "max_abs_pval_difference": float(np.nanmax(np.abs(both["pval"] - both["pval_reference"])))
            if len(both) else np.nan}


# ----------------------------------------------------------------------------- over-representation

def over_representation(query: Sequence[str], universe: Sequence[str], sets: Sequence[GeneSet]) -> pd.DataFrame:
    """Hypergeometric over-representation of ``query`` genes in each set, both restricted
    to ``universe``: p = P(X >= overlap), X ~ Hypergeom(M=|universe|, n=|set|, N=|query|);
    BH over the sets."""
    universe_set = set(universe)
    q = sorted(set(query) & universe_set)
    qs = set(q)
    m_total, n_query = len(universe_set), len(q)
    rows = []
    for s in sets:
        members = [g for g in s.genes if g in universe_set]
        hits = sorted(g for g in members if g in qs)
        k, n_set = len(hits), len(members)
        p = float(stats.hypergeom.sf(k - 1, m_total, n_set, n_query)) if n_set else np.nan
        rows.append({"gene_set": s.name, "size": n_set, "n_query": n_query, "overlap": k,
                     "expected": n_set * n_query / m_total if m_total else np.nan, "pval": p,
                     "genes": ";".join(hits)})
    out = pd.DataFrame(rows, columns=["gene_set", "size", "n_query", "overlap", "expected", "pval", "genes"])
    out["padj_bh"] = bh_adjust(out["pval"].to_numpy(float)) if len(out) else []
    return out


# ----------------------------------------------------------------------------- stage

GSEA_COLUMNS = ["source", "gene_set", "description", "size", "es", "nes", "pval", "fdr", "padj_bh", "fwer",
                "direction", "significant", "leading_edge", "es_reference", "nes_reference", "pval_reference",
                "padj_bh_reference"]
ORA_COLUMNS = ["source", "gene_set", "description", "size", "n_query", "overlap", "expected", "pval", "padj_bh",
               "significant", "genes"]


def significant(table: pd.DataFrame, cfg: Mapping) -> pd.Series:
    """FDR q below ``enrichment.fdr``; with the ``adjusted_p`` ranking also NES > 0. Under
    that ranking every metric is >= 0 and the top holds the well-predicted genes, so a set
    with NES < 0 is *depleted* of them: when many genes are predicted well, any set of
    unpredictable genes is pushed down and reaches a small q that way (a competitive test).
    The question asked (the paper's) is which pathways the well-predicted genes are
    enriched in; depleted sets stay in the table (``direction``) but are not called. With
    ``signed`` both directions are called (NES < 0: predicted with the wrong sign)."""
    called = table["fdr"] < float(cfg["fdr"])
    if cfg["ranking"] == "adjusted_p":
        called &= table["nes"] > 0
    return called


def source_name(path: str | Path) -> str:
    name = Path(path).name
    for suffix in (".gmt", ".txt"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def run_enrichment(validation_path: str | Path, gmt_paths: Sequence[str | Path], cfg: Mapping,
                   outputs: Mapping[str, str | Path], code_version: str) -> dict[str, pd.DataFrame]:
    """The stage: ranking, GSEA (library and reference) and over-representation per
    gene-set file; writes ``gsea``, ``ora``, ``agreement`` (TSV + sidecars), ``curves``
    (running sums of each file's ``top_n`` sets, TSV) and the ``figure``."""
    from . import enrichment_figures

    validation = pd.read_csv(validation_path, sep="\t")
    ranked = gene_ranking(validation, cfg["ranking"])
    if len(ranked) < 2:
        raise InputTableError(f"{validation_path}: fewer than 2 genes with a validation p-value; nothing to rank")
    sources = [source_name(p) for p in gmt_paths]
    if len(set(sources)) != len(sources):
        raise ConfigError(f"config key 'enrichment.gene_sets': file names {sources} repeat; the file name "
                          "(without .gmt) names the database in the tables, so give each file its own name")
    gsea_parts, ora_parts, agree_rows, curve_rows = [], [], [], []
    order = list(ranked.index)
    ora_cfg = cfg["over_representation"]
    selected = validation.set_index("gene")["selected"].astype(bool) if "selected" in validation else None
    for path, source in zip(gmt_paths, sources):
        all_sets = read_gmt(path)
        sets, dropped = filter_sets(all_sets, order, int(cfg["min_size"]), int(cfg["max_size"]))
        log.info("%s: %d gene sets, %d within sizes [%d, %d] on %d ranked genes", source, len(all_sets), len(sets),
                 cfg["min_size"], cfg["max_size"], len(order))
        if dropped:
            log.info("%s: left out (size outside the limits): %s", source,
                     ", ".join(f"{n} ({k})" for n, k in dropped[:20]) + (" ..." if len(dropped) > 20 else ""))
        descriptions = {s.name: s.description for s in sets}
        lib, curves = library_prerank(ranked, sets, int(cfg["permutations"]), int(cfg["seed"]), float(cfg["weight"]))
        ref = reference_prerank(ranked, sets, int(cfg["permutations"]), int(cfg["seed"]), float(cfg["weight"]))
        table = lib.merge(ref.drop(columns="size").rename(columns=lambda c: c if c == "gene_set" else f"{c}_reference"),
                          on="gene_set", how="left")
        table["padj_bh"] = bh_adjust(table["pval"].to_numpy(float)) if len(table) else []
        table["direction"] = np.where(table["nes"] >= 0, "enriched", "depleted")
        table["significant"] = significant(table, cfg)
        table.insert(0, "source", source)
        table["description"] = table["gene_set"].map(descriptions)
        table = table.sort_values(["fdr", "pval", "nes", "gene_set"], ascending=[True, True, False, True],
                                  kind="mergesort")
        gsea_parts.append(table[GSEA_COLUMNS])
        agree = agreement(lib, ref.rename(columns={c: f"{c}_reference" for c in ("es", "nes", "pval")}))
        agree_rows.append({"source": source, **agree})
        log.info("%s: %d of %d sets with FDR < %g; NES rank agreement gseapy vs numpy reference: Spearman %.3f",
                 source, int(table["significant"].sum()), len(table), cfg["fdr"], agree["spearman_nes"])
        members = {s.name: s.genes for s in sets}
        for name in table["gene_set"].head(int(cfg["top_n"])):   # curves of the reported sets only
            res = curves[name]
            curve_rows.append(pd.DataFrame({"source": source, "gene_set": name, "rank": np.arange(1, len(res) + 1),
                                            "running_es": res, "hit": np.isin(order, members[name])}))
        if ora_cfg["enabled"]:
            if selected is None:
                raise InputTableError(f"{validation_path} lacks column 'selected', needed by "
                                      "enrichment.over_representation")
            chosen = selected.reindex(order).fillna(False).astype(bool)
            query = [g for g in order if (not chosen[g]) == (ora_cfg["genes"] == "not_selected")]
            ora = over_representation(query, order, sets)
            ora["significant"] = ora["padj_bh"] < float(cfg["fdr"])
            ora.insert(0, "source", source)
            ora["description"] = ora["gene_set"].map(descriptions)
            ora_parts.append(ora.sort_values(["padj_bh", "pval", "gene_set"], kind="mergesort")[ORA_COLUMNS])
    gsea = pd.concat(gsea_parts, ignore_index=True) if gsea_parts else pd.DataFrame(columns=GSEA_COLUMNS)
    ora = pd.concat(ora_parts, ignore_index=True) if ora_parts else pd.DataFrame(columns=ORA_COLUMNS)
    agree = pd.DataFrame(agree_rows)
    curves = (pd.concat(curve_rows, ignore_index=True) if curve_rows
              else pd.DataFrame(columns=["source", "gene_set", "rank", "running_es", "hit"]))
    params = dict(cfg)
    inputs = [str(validation_path), *map(str, gmt_paths)]
    for key, frame in (("gsea", gsea), ("ora", ora), ("agreement", agree)):
        write_tsv(frame, outputs[key], float_format="%.6g")
        write_sidecar(outputs[key], code_version, params, inputs)
    write_tsv(curves, outputs["curves"], float_format="%.6g")
    write_sidecar(outputs["curves"], code_version, params, inputs)   # every table carries its provenance
    enrichment_figures.enrichment_figure(gsea, curves, ranked, int(cfg["top_n"]), cfg["ranking"], outputs["figure"])
    return {"gsea": gsea, "ora": ora, "agreement": agree, "curves": curves}
