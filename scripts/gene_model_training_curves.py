"""Snakemake entry: training-curves figure and per-gene summary of the gene models
(emo.training_curves)."""
import emo.smk
from emo import io, provenance, training_curves

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821
    inp, out, p = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
    states = training_curves.load_chunk_states(list(inp))
    summary = training_curves.plot_training_curves(states, out.figure)
    io.write_tsv(summary, out.summary)
    provenance.write_sidecar(out.summary, p.code_version, {}, list(inp))
    log.info("gene models: %s", training_curves.describe(summary))
