"""Snakemake entry: expression, clinical and spatial tables and truth.json of the demo cohort."""

import emo.smk
from emo.demo.tables import write_tables

with emo.smk.rule_logging(snakemake.log[0]):  # noqa: F821
    write_tables(snakemake.params.demo, snakemake.input.truth, snakemake.params.out_dir,  # noqa: F821
                 snakemake.params.code_version)  # noqa: F821
