"""Snakemake entry: list a collector rule's input files (emo.io.write_manifest)."""
import emo.smk
from emo import io

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821
    io.write_manifest(snakemake.input, snakemake.output[0])  # noqa: F821
    log.info("listed %d files in %s", len(snakemake.input), snakemake.output[0])  # noqa: F821
