"""Entry script of rule gene_statistics_proliferation (library: emo.stats.clinical.run_proliferation)."""

import emo.smk
from emo.stats import settings
from emo.stats.clinical import run_proliferation

snakemake = globals()["snakemake"]  # noqa: F821 (injected by Snakemake)

with emo.smk.rule_logging(snakemake.log[0]):
    i, o = snakemake.input, snakemake.output
    cfg, version = settings(snakemake.params.statistics), snakemake.params.code_version
    run_proliferation(i.prepared, i.splits, i.predictions, i.clinical, i.validation, o.scores, o.table, o.genes,
                      cfg, version, clinical_mapping=emo.smk.clinical_mapping(snakemake))
