"""Entry script of rule gene_statistics_model_comparison (library: emo.stats.validation.run_model_comparison)."""

import emo.smk
from emo.stats import settings
from emo.stats.validation import run_model_comparison

snakemake = globals()["snakemake"]  # noqa: F821 (injected by Snakemake)

with emo.smk.rule_logging(snakemake.log[0]):
    i, o = snakemake.input, snakemake.output
    cfg, version = settings(snakemake.params.statistics), snakemake.params.code_version
    run_model_comparison(dict(i.items()), o.table, cfg, version)  # rows in input order: emo, baselines
