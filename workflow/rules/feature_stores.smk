# Stage: feature_stores. Frozen-encoder features of every accepted tile, one HDF5 store
# per slide and encoder: results/features/{encoder}/{sample}.h5 (docs/features.md).

from emo.encoders import ENCODERS, configured_weights, encoder_names, get_spec, resolve_weights  # noqa: E402

FEATURES = config["features"]
get_spec(ENCODER)  # unknown features.encoder fails when the DAG is built



# Final outputs of this stage, collected by `all` (lambdas: Snakemake's linter asks
# rule files not to mix rules and function definitions).
feature_stores_targets = lambda: [f"results/features/{ENCODER}/{s}.h5" for s in SAMPLE_NAMES]  # noqa: E731

# The encoder's weights file as an input: a missing file raises ConfigError (naming
# features.weights) when the DAG is built. Bundled weights live in the job's Python
# environment and are resolved there.
_feature_weights = lambda wildcards: (  # noqa: E731
    []
    if configured_weights(wildcards.encoder, FEATURES) is None and ENCODERS[wildcards.encoder].bundled
    else [str(resolve_weights(wildcards.encoder, configured_weights(wildcards.encoder, FEATURES)))]
)

# Memory: the encoder's estimate + batches in flight (uint8 and float copies) + workers.
_feature_mem_mb = lambda wildcards: int(  # noqa: E731
    FEATURES.get("mem_mb")
    or ENCODERS[wildcards.encoder].mem_mb
    + FEATURES["batch_size"] * ENCODERS[wildcards.encoder].input_px ** 2 * 3 * 4 * 8 // 2**20
    + 500 * FEATURES["num_workers"]
)


_FEATURE_PARAMS = dict(
    code_version=script_version("extract_features.py"),
    weights=lambda wildcards: (_feature_weights(wildcards) or [""])[0],
    batch_size=FEATURES["batch_size"],
    num_workers=FEATURES["num_workers"],
    device=FEATURES["device"],
    precision=FEATURES.get("precision", "auto"),
    stain_method=(config.get("stain_normalisation") or {}).get("method", "none"),
)
_FEATURE_THREADS = int(FEATURES.get("threads") or FEATURES["num_workers"] + 1)
_FEATURE_GPU = 0 if FEATURES["device"] == "cpu" else 1


if not SLIDE_BATCHES:

    rule extract_features:
        input:
            tiles="results/tiles/{sample}.h5",
            slide=slide_path,
            weights=_feature_weights,
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
        threads: _FEATURE_THREADS
        resources:
            mem_mb=_feature_mem_mb,
            runtime=FEATURES.get("runtime", 120),
            gpu=_FEATURE_GPU,
        params:
            samples=lambda wildcards: [wildcards.sample],
            mpp=lambda wildcards: sample_mpps([wildcards.sample]),
            **_FEATURE_PARAMS,
        script:
            script_path("extract_features.py")


# config slide_batches: the same job for several slides at once (one rule per batch), so
# Python, torch and the encoder weights load once per batch instead of once per slide.
for _batch, _samples in SLIDE_BATCHES.items():

    rule:
        name:
            f"extract_features_{_batch}"
        input:
            tiles=[f"results/tiles/{s}.h5" for s in _samples],
            slide=slide_paths(_samples),
            weights=_feature_weights,
        output:
            features=[f"results/features/{{encoder}}/{s}.h5" for s in _samples],
        wildcard_constraints:
            encoder="|".join(encoder_names()),
        log:
            f"logs/extract_features/{{encoder}}_{_batch}.log",
        benchmark:
            f"benchmarks/extract_features/{{encoder}}_{_batch}.tsv"
        conda:
            "../../envs/torch.yaml"
        threads: _FEATURE_THREADS
        resources:
            mem_mb=_feature_mem_mb,
            runtime=FEATURES.get("runtime", 120) * len(_samples),
            gpu=_FEATURE_GPU,
        params:
            samples=_samples,
            mpp=sample_mpps(_samples),
            **_FEATURE_PARAMS,
        script:
            script_path("extract_features.py")
