"""Snakemake entry: list a collector rule's input files (emo.io.write_manifest)."""
import emo.smk
from emo import io, provenance

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821
    inputs, out = list(snakemake.input), snakemake.output[0]  # noqa: F821
    io.write_manifest(inputs, out)
    provenance.write_sidecar(out, snakemake.params.code_version, {"files": len(inputs)}, inputs)  # noqa: F821
    log.info("listed %d files in %s", len(inputs), out)
