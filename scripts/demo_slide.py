"""Snakemake entry: render demo slides (SVS) and their planted truth (npz): one, or a
batch with config slide_batches."""

import emo.smk
from emo.demo.slides import make_slide

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    slides = emo.smk.job_slides(sm, inputs=(), outputs=("slide", "truth"))
    for n, slide in enumerate(slides, 1):
        make_slide(sm.params.demo, slide["sample"], slide["slide"], slide["truth"])
        log.info("[%d/%d] rendered %s", n, len(slides), slide["slide"])
