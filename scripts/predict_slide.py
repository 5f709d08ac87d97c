"""Snakemake entry: one slide's predictions (emo.predictions)."""
import emo.smk
from emo import io, predictions, provenance

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821
    p, inp, out = snakemake.params, snakemake.input, snakemake.output  # noqa: F821
    predictions.predict_slide(inp.features, io.read_manifest(inp.models), inp.ridge, out[0], p.tile_genes,
                              provenance.base_attrs(p.code_version, {"tile_genes": p.tile_genes}))
    log.info("wrote %s", out[0])
