# Stage: predictions. Per-slide predictions of every modelled gene (slide mean of tile
# predictions; tile-level values for config predictions.tile_genes) and patient means.
#   results/predictions/{encoder}/slides/{sample}.h5
#   results/predictions/{encoder}/patients.tsv, patients_ridge.tsv
# A new slide adds one predict_slide job (or reruns its batch, config slide_batches)
# and reruns only the aggregate.

PREDICTIONS = config["predictions"]


# (a lambda: `snakemake --lint` flags `def` beside rules)
predictions_targets = lambda: [  # noqa: E731
    f"results/predictions/{ENCODER}/patients.tsv",
    f"results/predictions/{ENCODER}/patients_ridge.tsv",
]


_PREDICT_INPUT = dict(
    models="results/models/{encoder}/chunks_manifest.tsv",
    ridge="results/models/{encoder}/ridge.h5",
)
_PREDICT_PARAMS = dict(
    tile_genes=PREDICTIONS["tile_genes"],
    code_version=script_version("predict_slide.py"),
)


if not SLIDE_BATCHES:

    rule predict_slide:
        input:
            features="results/features/{encoder}/{sample}.h5",
            **_PREDICT_INPUT,
        output:
            predictions="results/predictions/{encoder}/slides/{sample}.h5",
        wildcard_constraints:
            sample=r"[A-Za-z0-9][A-Za-z0-9._-]*",
        log:
            log_path("predict_slide", "encoder", "sample"),
        benchmark:
            benchmark_path("predict_slide", "encoder", "sample")
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=PREDICTIONS["mem_mb"],
            runtime=30,
        params:
            samples=lambda wildcards: [wildcards.sample],
            **_PREDICT_PARAMS,
        script:
            script_path("predict_slide.py")


# config slide_batches: the same job for several slides at once (one rule per batch).
for _batch, _samples in SLIDE_BATCHES.items():

    rule:
        name:
            f"predict_slide_{_batch}"
        input:
            features=[f"results/features/{{encoder}}/{s}.h5" for s in _samples],
            **_PREDICT_INPUT,
        output:
            predictions=[f"results/predictions/{{encoder}}/slides/{s}.h5" for s in _samples],
        log:
            f"logs/predict_slide/{{encoder}}_{_batch}.log",
        benchmark:
            f"benchmarks/predict_slide/{{encoder}}_{_batch}.tsv"
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=PREDICTIONS["mem_mb"],
            runtime=30 * len(_samples),
        params:
            samples=_samples,
            **_PREDICT_PARAMS,
        script:
            script_path("predict_slide.py")


rule patient_predictions:
    input:
        slides=expand("results/predictions/{{encoder}}/slides/{sample}.h5", sample=SAMPLE_NAMES),
    output:
        nn="results/predictions/{encoder}/patients.tsv",
        ridge="results/predictions/{encoder}/patients_ridge.tsv",
    log:
        log_path("patient_predictions", "encoder"),
    benchmark:
        benchmark_path("patient_predictions", "encoder")
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        samples=SAMPLE_NAMES,
        sample_patient=SAMPLE_PATIENT,
        code_version=script_version("patient_predictions.py"),
    script:
        script_path("patient_predictions.py")
