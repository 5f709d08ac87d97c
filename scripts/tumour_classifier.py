"""Snakemake entry: the tumour/normal tile classifier from the annotated slides (emo.tumour_regions)."""
import emo.smk
from emo import io, provenance, tumour_regions
from emo.stores.tiles import read_tile_store_attrs
from emo.stores.tumour_regions import write_classifier_store

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821
    p, inp, out = snakemake.params, snakemake.input, snakemake.output  # noqa: F821
    cfg = tumour_regions.settings(p.settings)
    samples = list(p.samples)
    sizes = {}
    for sample, path in zip(samples, inp.tiles):
        attrs = read_tile_store_attrs(path)
        sizes[sample] = (int(attrs["level0_width"]), int(attrs["level0_height"]))
    fitted = tumour_regions.train(dict(zip(samples, inp.annotations)), dict(zip(samples, inp.features)), sizes, cfg)
    attrs = provenance.base_attrs(p.code_version, dict(p.settings))
    attrs.update(tumour_regions.classifier_attrs(fitted, cfg))
    write_classifier_store(out.model, fitted, attrs)
    io.write_tsv(fitted["slides"], out.table)
    provenance.write_sidecar(out.table, p.code_version, dict(p.settings), list(inp.annotations) + list(inp.features))
    log.info("tumour classifier: %d tumour / %d normal tiles from %d slides; slide-grouped CV AUC %.3f",
             fitted["n_tumour"], fitted["n_normal"], len(samples), fitted["cv_auc"])
