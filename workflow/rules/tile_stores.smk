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

# The Macenko reference stain file is an input when stain normalisation is on.
_STAIN_INPUT = {"stain_reference": STAIN["reference"]} if STAIN["method"] == "macenko" else {}
_TILE_PARAMS = dict(
    tiling=TILING,
    stain=STAIN,
    code_version=script_version("tile_slide.py"),
)
_TILE_RESOURCES_PER_SLIDE = {"mem_mb": 4000, "runtime": 60}


if not SLIDE_BATCHES:

    rule tile_slide:
        input:
            slide=slide_path,
            **_STAIN_INPUT,
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
            **_TILE_RESOURCES_PER_SLIDE,
        params:
            samples=lambda wildcards: [wildcards.sample],
            mpp=lambda wildcards: sample_mpps([wildcards.sample]),
            **_TILE_PARAMS,
        script:
            # literal path: common.smk's helper `script()` shadows Snakemake's internal
            # `script` function that the `script:` directive calls at job run time
            "../../scripts/tile_slide.py"


# config slide_batches: the same job for several slides at once (one rule per batch).
for _batch, _samples in SLIDE_BATCHES.items():

    rule:
        name:
            f"tile_slide_{_batch}"
        input:
            slide=slide_paths(_samples),
            **_STAIN_INPUT,
        output:
            store=[f"results/tiles/{s}.h5" for s in _samples],
        log:
            f"logs/tile_slide/{_batch}.log",
        benchmark:
            f"benchmarks/tile_slide/{_batch}.tsv"
        conda:
            "../../envs/slides.yaml"
        threads: 1
        resources:
            mem_mb=_TILE_RESOURCES_PER_SLIDE["mem_mb"],
            runtime=_TILE_RESOURCES_PER_SLIDE["runtime"] * len(_samples),
        params:
            samples=_samples,
            mpp=sample_mpps(_samples),
            **_TILE_PARAMS,
        script:
            "../../scripts/tile_slide.py"
