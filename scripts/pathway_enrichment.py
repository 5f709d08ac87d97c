"""Entry script of rule pathway_enrichment (library: emo.enrichment.run_enrichment)."""

import emo.smk
from emo.enrichment import run_enrichment

snakemake = globals()["snakemake"]  # noqa: F821 (injected by Snakemake)

with emo.smk.rule_logging(snakemake.log[0]):
    i, o = snakemake.input, snakemake.output
    run_enrichment(i.validation, list(i.gene_sets), snakemake.params.enrichment,
                   {k: o[k] for k in ("gsea", "ora", "agreement", "curves", "figure")}, snakemake.params.code_version)
