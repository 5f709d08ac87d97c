"""Snakemake entry: render one demo slide (SVS) and its planted truth (npz)."""

import emo.smk
from emo.demo.slides import make_slide

with emo.smk.rule_logging(snakemake.log[0]):  # noqa: F821
    make_slide(snakemake.params.demo, snakemake.wildcards.sample,  # noqa: F821
               snakemake.output.slide, snakemake.output.truth)  # noqa: F821
