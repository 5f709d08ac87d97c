# Stage: tile_stores. Tissue mask, physical-size tile grid, per-tile QC and (optionally)
# the slide's Macenko stain fit, one HDF5 store per slide (docs/tiling.md):
#   results/tiles/{sample}.h5      contract: docs/data_contracts.md ("Tile store")

from emo.errors import ConfigError  # noqa: E402
from emo.tiling import tiling_params  # noqa: E402

TILING = tiling_params(config.get("tiling"))
STAIN = {"method": "none", "reference": "resources/macenko_reference.json"}
STAIN.update(config.get("stain_normalisation") or {})
if STAIN["method"] == "macenko" and not Path(STAIN["reference"]).is_file():
    raise ConfigError(
        f"stain_normalisation.reference: {STAIN['reference']} does not exist (relative paths resolve "
        "against the working directory); copy resources/macenko_reference.json there or give an absolute path"
    )


# Final outputs of this stage, collected by `all` (lambdas: Snakemake's linter asks
# rule files not to mix rules and function definitions).
tile_stores_targets = lambda: expand("results/tiles/{sample}.h5", sample=SAMPLE_NAMES)  # noqa: E731

# The slide (sample-sheet path) and, for Macenko, the reference stain file.
_tile_slide_inputs = lambda wildcards: dict(  # noqa: E731
    slide=slide_path(wildcards),
    **({"stain_reference": STAIN["reference"]} if STAIN["method"] == "macenko" else {}),
)


rule tile_slide:
    input:
        unpack(_tile_slide_inputs),
    output:
        store="results/tiles/{sample}.h5",
    log:
        log_path("tile_slide", "sample"),
    benchmark:
        benchmark_path("tile_slide", "sample")
    wildcard_constraints:
        sample="[A-Za-z0-9][A-Za-z0-9._-]*",
    conda:
        "../../envs/slides.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        tiling=TILING,
        stain=STAIN,
        mpp=lambda wildcards: sample_mpp(wildcards.sample),
        code_version=code_version("slides", "tissue", "tiling", "stain", "tile_store", "provenance", "io", "smk"),
    script:
        # literal path: common.smk's helper `script()` shadows Snakemake's internal
        # `script` function that the `script:` directive calls at job run time
        "../../scripts/tile_slide.py"
