# Stage: feature_stores. Frozen-encoder features of every accepted tile, one HDF5 store
# per slide and encoder: results/features/{encoder}/{sample}.h5 (docs/features.md).

from emo.encoders import ENCODERS, configured_weights, encoder_names, get_spec, resolve_weights  # noqa: E402

FEATURES = config["features"]
get_spec(ENCODER)  # unknown features.encoder fails when the DAG is built

# Library modules the extraction imports (tiling and its helpers read the tiles).
_FEATURE_MODULES = [m for m in ("encoders", "features", "io", "provenance", "smk", "errors", "tiling",
                                "tile_store", "slides", "stain")
                    if (SCRIPTS_DIR / "emo" / f"{m}.py").is_file()]


def feature_store_path(encoder, sample):
    return f"results/features/{encoder}/{sample}.h5"


def feature_stores_targets():
    return [feature_store_path(ENCODER, s) for s in SAMPLE_NAMES]


def feature_weights(wildcards):
    """The weights file of the encoder as an input (DAG-time check: a missing file raises
    ConfigError naming features.weights). Bundled weights live in the job's Python
    environment and are resolved there."""
    configured = configured_weights(wildcards.encoder, FEATURES)
    if configured is None and ENCODERS[wildcards.encoder].bundled:
        return []
    return [str(resolve_weights(wildcards.encoder, configured))]


def feature_mem_mb(wildcards):
    if FEATURES.get("mem_mb"):
        return int(FEATURES["mem_mb"])
    spec = ENCODERS[wildcards.encoder]
    batch_mb = FEATURES["batch_size"] * spec.input_px**2 * 3 * 4 * 8 // 2**20  # activations, prefetch
    return spec.mem_mb + batch_mb + 500 * FEATURES["num_workers"]


def feature_threads():
    return int(FEATURES.get("threads") or FEATURES["num_workers"] + 1)


rule extract_features:
    input:
        tiles="results/tiles/{sample}.h5",
        slide=slide_path,
        weights=feature_weights,
    output:
        features="results/features/{encoder}/{sample}.h5",
    wildcard_constraints:
        encoder="|".join(encoder_names()),
        sample=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    log:
        log_path("extract_features", "encoder", "sample"),
    benchmark:
        benchmark_path("extract_features", "encoder", "sample")
    conda:
        "../../envs/torch.yaml"
    threads: feature_threads()
    resources:
        mem_mb=feature_mem_mb,
        runtime=FEATURES.get("runtime", 120),
        gpu=0 if FEATURES["device"] == "cpu" else 1,
    params:
        code_version=code_version(*_FEATURE_MODULES),
        weights=lambda wildcards: (feature_weights(wildcards) or [""])[0],
        batch_size=FEATURES["batch_size"],
        num_workers=FEATURES["num_workers"],
        device=FEATURES["device"],
        precision=FEATURES.get("precision", "auto"),
        stain_method=config["stain_normalisation"]["method"],
        mpp=lambda wildcards: sample_mpp(wildcards.sample),
    script:
        script("extract_features.py")
