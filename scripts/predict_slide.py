"""Snakemake entry: the predictions of one slide, or of a batch of slides (config
slide_batches) (emo.predictions)."""
import emo.smk
from emo import io, predictions, provenance, ridge, tumour_regions

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    p = sm.params
    models = io.read_manifest(sm.input.models)
    attrs = provenance.base_attrs(p.code_version, {"tile_genes": p.tile_genes})
    baselines = {name: sm.input[name] for name in ridge.BASELINE_INPUTS}
    tumour = tumour_regions.job_selection(sm)  # (classifier, threshold) with gene_models.tile_selection: tumour
    if tumour is not None:
        attrs["tile_selection"] = "tumour"
    batch = emo.smk.job_slides(sm, inputs=("features",), outputs=("predictions",))
    with emo.smk.isolated_batch(sm, batch, inputs=("features",), outputs=("predictions",), log=log) as slides:
        for n, slide in enumerate(slides, 1):
            predictions.predict_slide(slide["features"], models, baselines, slide["predictions"], p.tile_genes,
                                      attrs, tumour)
            log.info("[%d/%d] wrote %s", n, len(slides), slide["predictions"])
