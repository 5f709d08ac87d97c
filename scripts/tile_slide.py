"""Snakemake entry script of rule tile_slide: check the slide, tile it with QC, fit the
Macenko stain matrix if asked, write results/tiles/{sample}.h5 (library: emo.tiling)."""

import emo.smk
from emo import slides, stain, tile_store, tiling

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821 (injected by Snakemake)
    sm = snakemake  # noqa: F821
    sample = sm.wildcards.sample
    info = slides.check_slide(sample, sm.input.slide, sm.params.mpp)
    reference = None
    if sm.params.stain["method"] == "macenko":
        reference = stain.load_reference(sm.input.stain_reference)
    result = tiling.tile_slide(info, sm.params.tiling, reference, sm.params.stain.get("reference", ""))
    store = tiling.build_store(result, sm.params.code_version, slides.slide_sha256(sm.input.slide))
    tile_store.write_tile_store(sm.output.store, store)
    log.info("wrote %s (%d accepted of %d candidates)", sm.output.store, len(result.coords),
             len(result.candidates["coords"]))
