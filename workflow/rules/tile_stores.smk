# Stage: tile_stores. Tissue mask, physical-size tile grid, per-tile QC and (optionally)
# the slide's Macenko stain fit, one HDF5 store per slide and tile geometry (docs/tiling.md):
#   results/tiles/{sample}.h5             the tiling config's geometry (rule tile_slide)
#   results/tiles/{geometry}/{sample}.h5  an encoder's other geometry, e.g. 112um_224px
#                                         (rule geometry_tile_slide; docs/features.md, "Scale")
# contract: docs/data_contracts.md ("Tile store")

import re as _tiles_re

STAIN = config["stain_normalisation"]


# Final outputs of this stage, collected by `all` (lambdas: Snakemake's linter asks
# rule files not to mix rules and function definitions): the stores features.encoder uses.
TILE_QC = config["tile_qc"]
_QC_MAPS = [f"results/tiles/qc/map_{i:02d}.png" for i in range(1, min(TILE_QC["maps"], len(SAMPLE_NAMES)) + 1)]
tile_stores_targets = lambda: [PLAN.tile_store(ENCODER, s) for s in SAMPLE_NAMES] + [  # noqa: E731
    "results/tiles/qc/summary.tsv"]
_geometry_tiling = lambda wildcards: PLAN.tiling_params(wildcards.geometry)  # noqa: E731

# The Macenko reference stain file is an input when stain normalisation is on.
_STAIN_INPUT = {"stain_reference": STAIN["reference"]} if STAIN["method"] == "macenko" else {}


wildcard_constraints:
    geometry="|".join(_tiles_re.escape(g) for g in PLAN.extra_geometries) or "NO_GEOMETRY",


# One rule body for both stores; per_slide_units gives one wildcard rule, or one rule per
# slide batch (config slide_batches), so Python and the libraries load once per batch.
for _stage, _store, _tiling in (
    ("tile_slide", "results/tiles/{sample}.h5", PLAN.tiling_params()),
    ("geometry_tile_slide", "results/tiles/{{geometry}}/{sample}.h5", _geometry_tiling),
):
    _wildcards = ("geometry",) if _stage == "geometry_tile_slide" else ()
    for _rule, _samples in per_slide_units(_stage):

        rule:
            name:
                _rule
            input:
                slide=unit_slides(_samples),
                **_STAIN_INPUT,
            output:
                store=unit_paths(_store, _samples),
            log:
                unit_log(_stage, _samples, *_wildcards),
            benchmark:
                unit_benchmark(_stage, _samples, *_wildcards)
            conda:
                "../../envs/slides.yaml"
            threads: 1
            resources:
                mem_mb=4000,
                runtime=unit_runtime(60, _samples),
            params:
                samples=unit_samples(_samples),
                mpp=unit_mpps(_samples),
                tiling=_tiling,
                stain=STAIN,
                code_version=script_version("tile_slide.py"),
            script:
                script_path("tile_slide.py")


# Report: every slide's QC counts and the maps of the most rejected slides (docs/tiling.md).
rule tile_qc_maps:
    input:
        tiles=[PLAN.tile_store(ENCODER, s) for s in SAMPLE_NAMES],
        slides=[PLAN.slide(s) for s in SAMPLE_NAMES],
    output:
        summary="results/tiles/qc/summary.tsv",
        maps=[report(path, caption="../report/tile_qc_maps.rst", category="Tiling QC") for path in _QC_MAPS],
    params:
        samples=SAMPLE_NAMES,
        tile_qc=TILE_QC,
        code_version=script_version("tile_qc_maps.py"),
    log:
        log_path("tile_qc_maps"),
    benchmark:
        benchmark_path("tile_qc_maps")
    conda:
        "../../envs/slides.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        script_path("tile_qc_maps.py")

