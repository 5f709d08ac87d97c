"""Entry script of rule gene_statistics_ki67 (library: emo.stats.ki67.run_ki67)."""

import emo.smk
from emo.stats.ki67 import run_ki67

snakemake = globals()["snakemake"]  # noqa: F821 (injected by Snakemake)

with emo.smk.rule_logging(snakemake.log[0]):
    i, o = snakemake.input, snakemake.output
    run_ki67(i.scores, i.clinical, snakemake.params.ki67_column, o.table, o.pairs, o.figure,
             snakemake.params.code_version, clinical_mapping=emo.smk.clinical_mapping(snakemake))
