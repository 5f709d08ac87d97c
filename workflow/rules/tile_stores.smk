# Stage: tile_stores. Tissue mask, physical-size tile grid, per-tile QC and (optionally)
# the slide's Macenko stain fit, one HDF5 store per slide (docs/tiling.md):
#   results/tiles/{sample}.h5      contract: docs/data_contracts.md ("Tile store")

STAIN = config["stain_normalisation"]


# Final outputs of this stage, collected by `all` (lambdas: Snakemake's linter asks
# rule files not to mix rules and function definitions).
tile_stores_targets = lambda: expand("results/tiles/{sample}.h5", sample=SAMPLE_NAMES)  # noqa: E731

# The Macenko reference stain file is an input when stain normalisation is on.
_STAIN_INPUT = {"stain_reference": STAIN["reference"]} if STAIN["method"] == "macenko" else {}


# One rule body; per_slide_units gives one wildcard rule, or one rule per slide batch
# (config slide_batches), so Python and the libraries load once per batch.
for _rule, _samples in per_slide_units("tile_slide"):

    rule:
        name:
            _rule
        input:
            slide=unit_slides(_samples),
            **_STAIN_INPUT,
        output:
            store=unit_paths("results/tiles/{sample}.h5", _samples),
        log:
            unit_log("tile_slide", _samples),
        benchmark:
            unit_benchmark("tile_slide", _samples)
        conda:
            "../../envs/slides.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=unit_runtime(60, _samples),
        params:
            samples=unit_samples(_samples),
            mpp=unit_mpps(_samples),
            tiling=config["tiling"],
            stain=STAIN,
            code_version=script_version("tile_slide.py"),
        script:
            script_path("tile_slide.py")
