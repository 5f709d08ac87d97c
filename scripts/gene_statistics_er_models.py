"""Entry script of rule gene_statistics_er_models (library: emo.stats.er_models.run_er_models)."""

import emo.smk
from emo.stats import settings
from emo.stats.er_models import run_er_models

snakemake = globals()["snakemake"]  # noqa: F821 (injected by Snakemake)

with emo.smk.rule_logging(snakemake.log[0]):
    i, o = snakemake.input, snakemake.output
    cfg, version = settings(snakemake.params.statistics), snakemake.params.code_version
    run_er_models(i.prepared, i.splits, i.predictions, i.clinical, i.selected, o.models, o.summary, cfg, version,
                  clinical_mapping=emo.smk.clinical_mapping(snakemake))
