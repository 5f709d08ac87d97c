"""Snakemake entry: tumour probability of every tile of every slide, per-slide tumour area
and each patient's slide with the largest tumour area (emo.tumour_regions)."""
import json

import emo.smk
from emo import io, provenance, tumour_regions
from emo.stores.tumour_regions import read_classifier_store, write_tumour_tiles

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821
    p, inp, out = snakemake.params, snakemake.input, snakemake.output  # noqa: F821
    model = read_classifier_store(inp.model)
    slides = tumour_regions.apply(model, dict(zip(p.samples, inp.features)), model.composition)
    attrs = {**provenance.base_attrs(p.code_version, {"threshold": p.threshold}), "threshold": float(p.threshold)}
    if model.composition is not None:
        attrs["composition_classes"] = json.dumps(model.composition["classes"])
    write_tumour_tiles(out.tiles, slides, attrs)
    if "composition" in dict(out.items()):  # tumour_regions.composition
        composition = tumour_regions.composition_table(slides, dict(p.sample_patient), model.composition["classes"])
        io.write_tsv(composition, out.composition)
        provenance.write_sidecar(out.composition, p.code_version, {"classes": model.composition["classes"]},
                                 [inp.model] + list(inp.features))
        log.info("composition: median entropy %.2f", composition["composition_entropy"].median())
    table = tumour_regions.slide_table(slides, dict(p.sample_patient), float(p.threshold))
    io.write_tsv(table, out.slides)
    provenance.write_sidecar(out.slides, p.code_version, {"threshold": p.threshold}, [inp.model] + list(inp.features))
    log.info("%d slides: median tumour fraction %.2f, %d patients", len(table), table["tumour_fraction"].median(),
             table["patient"].nunique())
