"""Snakemake entry script of rule tile_slide (one slide, or a batch with config
slide_batches): check the slide, tile it with QC, fit the Macenko stain matrix if asked,
write results/tiles/{sample}.h5 (library: emo.tiling)."""

import emo.smk
from emo import slides, stain, tiling
from emo.stores.tiles import write_tile_store

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821 (injected by Snakemake)
    sm = snakemake  # noqa: F821
    reference = None
    if sm.params.stain["method"] == "macenko":
        reference = stain.load_reference(sm.input.stain_reference)
    batch = emo.smk.job_slides(sm, inputs=("slide",), outputs=("store",))
    with emo.smk.isolated_batch(sm, batch, inputs=("slide",), outputs=("store",), log=log) as jobs:
        for n, job in enumerate(jobs, 1):
            info = slides.check_slide(job["sample"], job["slide"], sm.params.mpp[job["sample"]])
            result = tiling.tile_slide(info, sm.params.tiling, reference, sm.params.stain.get("reference", ""))
            store = tiling.build_store(result, sm.params.code_version, slides.slide_sha256(job["slide"]))
            write_tile_store(job["store"], store)
            log.info("[%d/%d] wrote %s (%d accepted of %d candidates)", n, len(jobs), job["store"], len(result.coords),
                     len(result.candidates["coords"]))
