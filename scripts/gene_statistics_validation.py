"""Entry script of rules gene_statistics_validation and gene_statistics_validation_ridge (library: emo.stats.validation.run_validation)."""

import emo.smk
from emo.stats import settings
from emo.stats.validation import run_validation

snakemake = globals()["snakemake"]  # noqa: F821 (injected by Snakemake)

with emo.smk.rule_logging(snakemake.log[0]):
    i, o = snakemake.input, snakemake.output
    cfg, version = settings(snakemake.params.statistics), snakemake.params.code_version
    run_validation(i.prepared, i.splits, i.predictions, o.validation, o.selected, cfg, version)
