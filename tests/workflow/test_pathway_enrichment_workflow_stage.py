"""Runs rules pathway_enrichment and gene_statistics_ki67 alone (Snakemake, local, partial
Snakefile) on synthetic upstream outputs: a 400-gene validation table with planted
well-predicted genes, a GMT of planted and null sets, proliferation scores and a clinical
table with a Ki67 column. Checks the planted sets are found and the null sets not, the two
enrichment implementations agree, the Ki67 table and the jobs' CPU time; a
configured Ki67 column the clinical table lacks is refused before any job."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from emo import enrichment as en
from emo.stats.core import bh_adjust
from workflow_runner import snakemake, stage_snakefile

REPO = Path(__file__).resolve().parents[2]
ENCODER = "efficientnet_lite0"
N_GENES = 400


def build_inputs(wd: Path) -> None:
    rng = np.random.default_rng(8)
    genes = [f"GENE{i:04d}" for i in range(N_GENES)]
    planted = {"TUMOUR": genes[0:60:3], "STROMA": genes[1:40:3]}
    r = rng.normal(0, 0.1, N_GENES)
    for members in planted.values():
        r[[genes.index(g) for g in members]] = rng.uniform(0.35, 0.85, len(members))
    n = 50
    p = 2 * stats.t.sf(np.abs(r * np.sqrt((n - 2) / (1 - r ** 2))), n - 2)
    padj = bh_adjust(p)
    stats_dir = wd / "results" / "statistics" / ENCODER
    stats_dir.mkdir(parents=True)
    pd.DataFrame({"gene": genes, "n": n, "spearman_r": r, "spearman_p": p, "padj_bh": padj, "r2_pred": r ** 2 - 0.05,
                  "selected": (padj < 0.001) & (r ** 2 - 0.05 > 0.2)}).to_csv(stats_dir / "validation.tsv", sep="\t",
                                                                            index=False)
    planted_genes = {g for m in planted.values() for g in m}
    null_pool = [g for g in genes if g not in planted_genes]
    drawn = rng.choice(null_pool, 45, replace=False)
    sets = [en.GeneSet(f"PLANTED_{k}", "planted", tuple(m)) for k, m in planted.items()]
    sets += [en.GeneSet(f"NULL_{i}", "null", tuple(drawn[15 * i:15 * (i + 1)])) for i in range(3)]
    en.write_gmt(sets, wd / "sets.gmt")
    patients = [f"P{i:03d}" for i in range(40)]
    truth = rng.normal(0, 1, 40)
    pd.DataFrame({"patient": patients, "split": ["validation"] * 20 + ["test"] * 20, "cohort": "TCGA",
                  "pam50": rng.choice(["LumA", "LumB", "Basal"], 40), "pscore_measured": truth + rng.normal(0, .3, 40),
                  "pscore_predicted": truth + rng.normal(0, .6, 40)}).to_csv(stats_dir / "proliferation_scores.tsv",
                                                                             sep="\t", index=False)
    pd.DataFrame({"patient": patients, "er": "positive", "pam50": "LumA",
                  "ki67": (100 / (1 + np.exp(-truth))).round(1)}).to_csv(wd / "clinical.tsv", sep="\t", index=False)
    sheet = pd.DataFrame({"sample": [f"{p}-A" for p in patients], "patient": patients, "cohort": "TCGA",
                          "slide": [f"slides/{p}-A.svs" for p in patients]})
    (wd / "slides").mkdir()
    for slide in sheet["slide"]:
        (wd / slide).touch()            # the sheet's slides must exist; these rules do not read them
    sheet.to_csv(wd / "samples.tsv", sep="\t", index=False)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.update({"samples": "samples.tsv", "clinical": "clinical.tsv",
                   "cohorts": {"TCGA": {"expression": "unused.tsv", "role": "training", "reference": True}},
                   "demo": {"enabled": False}, "maps": {"genes": []}})
    config["enrichment"].update({"gene_sets": ["sets.gmt"], "permutations": 1000})
    (wd / "config.yaml").write_text(yaml.safe_dump(config))
    stage_snakefile(wd, "pathway_enrichment.smk", "gene_statistics_ki67.smk",
                    targets="pathway_enrichment_targets() + gene_statistics_ki67_targets()")


def run_stage(wd: Path, *extra):
    return snakemake(wd, "--configfile", str(wd / "config.yaml"), "--cores", "2", "--quiet", "progress", *extra,
                     snakefile=wd / "Snakefile", timeout=600, check=False)


@pytest.mark.slow
def test_enrichment_and_ki67_rules_run(tmp_path):
    build_inputs(tmp_path)
    result = run_stage(tmp_path)
    assert result.returncode == 0, result.stderr[-6000:]
    out = tmp_path / "results" / "enrichment" / ENCODER
    gsea = pd.read_csv(out / "gsea.tsv", sep="\t").set_index("gene_set")
    print("\n" + gsea[["nes", "fdr", "nes_reference", "pval_reference", "significant"]].to_string())
    assert gsea.loc[["PLANTED_TUMOUR", "PLANTED_STROMA"], "significant"].all()
    assert not gsea.loc[["NULL_0", "NULL_1", "NULL_2"], "significant"].any()
    agreement = pd.read_csv(out / "agreement.tsv", sep="\t")
    print(agreement.to_string())
    assert agreement["max_abs_es_difference"].iloc[0] < 1e-6 and agreement["spearman_nes"].iloc[0] > 0.8
    ki67 = pd.read_csv(tmp_path / "results" / "statistics" / ENCODER / "ki67" / "ki67_proliferation.tsv", sep="\t")
    assert set(ki67["split"]) == {"validation", "test"} and (ki67["spearman_r"] > 0.3).all()
    for name in ("gsea", "ora", "agreement"):
        assert (out / f"{name}.tsv.json").exists()
    cpu = {b.parent.name: float(pd.read_csv(b, sep="\t")["cpu_time"].sum())
           for b in (tmp_path / "benchmarks").rglob("*.tsv")}
    print(f"CPU seconds per job: {cpu}")
    # (byte-identical reruns: tests/unit/test_pathway_enrichment.py, without Snakemake)

    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    config["statistics"]["ki67_column"] = "ki67_ihc"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    refused = run_stage(tmp_path, "-n")
    assert refused.returncode != 0
    assert "statistics.ki67_column" in refused.stderr + refused.stdout and "ki67_ihc" in refused.stderr + refused.stdout
