"""Entry script of rule gene_statistics_testing (library: emo.stats.validation.run_testing)."""

import emo.smk
from emo.stats import settings
from emo.stats.validation import run_testing

snakemake = globals()["snakemake"]  # noqa: F821 (injected by Snakemake)

with emo.smk.rule_logging(snakemake.log[0]):
    i, o = snakemake.input, snakemake.output
    cfg, version = settings(snakemake.params.statistics), snakemake.params.code_version
    run_testing(i.prepared, i.splits, i.predictions, i.selected, o.test, o.external, cfg, version)
