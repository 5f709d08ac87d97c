# Stage: feature_stores. Frozen-encoder features of every accepted tile, one HDF5 store
# per slide and encoder: results/features/{encoder}/{sample}.h5 (docs/features.md), from
# the tile store of the encoder's geometry (PLAN.tile_store; docs/features.md, "Scale").

from emo.encoders import encoder_names  # noqa: E402

FEATURES = config["features"]


# Final outputs of this stage, collected by `all` (lambdas: Snakemake's linter asks
# rule files not to mix rules and function definitions).
feature_stores_targets = lambda: [f"results/features/{ENCODER}/{s}.h5" for s in SAMPLE_NAMES]  # noqa: E731
_feature_weights = lambda wildcards: PLAN.feature_weights(wildcards.encoder)  # noqa: E731
_feature_geometry = lambda wildcards: PLAN.feature_geometry(wildcards.encoder)  # noqa: E731


# One rule body: one wildcard rule, or one rule per slide batch (config slide_batches),
# so torch and the encoder weights load once per batch.
for _rule, _samples in per_slide_units("extract_features"):

    rule:
        name:
            _rule
        input:
            tiles=unit_tile_stores(_samples),
            slide=unit_slides(_samples),
            weights=_feature_weights,
        output:
            features=unit_paths("results/features/{{encoder}}/{sample}.h5", _samples),
        wildcard_constraints:
            encoder="|".join(encoder_names()),
        log:
            unit_log("extract_features", _samples, "encoder"),
        benchmark:
            unit_benchmark("extract_features", _samples, "encoder")
        conda:
            "../../envs/torch.yaml"
        threads: PLAN.feature_threads
        resources:
            mem_mb=lambda wildcards: PLAN.feature_mem_mb(wildcards.encoder),
            runtime=unit_runtime(FEATURES["runtime"], _samples),
            gpu=0 if FEATURES["device"] == "cpu" else 1,
        params:
            samples=unit_samples(_samples),
            mpp=unit_mpps(_samples),
            weights=lambda wildcards: (_feature_weights(wildcards) or [""])[0],
            batch_size=FEATURES["batch_size"],
            num_workers=FEATURES["num_workers"],
            device=FEATURES["device"],
            precision=FEATURES["precision"],
            stain_method=config["stain_normalisation"]["method"],
            geometry=_feature_geometry,
            scale_tolerance=FEATURES["scale_tolerance"],
            code_version=script_version("extract_features.py"),
        script:
            script_path("extract_features.py")
