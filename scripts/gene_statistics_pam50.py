"""Entry script of rule gene_statistics_pam50 (library: emo.stats.clustering.run_pam50)."""

import emo.smk
from emo.stats import settings
from emo.stats.clustering import run_pam50

snakemake = globals()["snakemake"]  # noqa: F821 (injected by Snakemake)

with emo.smk.rule_logging(snakemake.log[0]):
    i, o = snakemake.input, snakemake.output
    cfg, version = settings(snakemake.params.statistics), snakemake.params.code_version
    run_pam50(i.prepared, i.splits, i.predictions, i.clinical, o.clusters, o.ari, cfg, version,
              clinical_mapping=emo.smk.clinical_mapping(snakemake))
