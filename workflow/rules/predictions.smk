# Stage: predictions. Per-slide predictions of every modelled gene (slide mean of tile
# predictions; tile-level values for config predictions.tile_genes) and patient means.
#   results/predictions/{encoder}/slides/{sample}.h5
#   results/predictions/{encoder}/patients.tsv, patients_ridge.tsv
# A new slide adds one predict_slide job and reruns only the aggregate.

PREDICTIONS = config["predictions"]


# (a lambda: `snakemake --lint` flags `def` beside rules)
predictions_targets = lambda: [  # noqa: E731
    f"results/predictions/{ENCODER}/patients.tsv",
    f"results/predictions/{ENCODER}/patients_ridge.tsv",
]


rule predict_slide:
    input:
        features="results/features/{encoder}/{sample}.h5",
        models="results/models/{encoder}/chunks_manifest.tsv",
        ridge="results/models/{encoder}/ridge.h5",
    output:
        "results/predictions/{encoder}/slides/{sample}.h5",
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
        tile_genes=PREDICTIONS["tile_genes"],
        code_version=code_version("predictions", "ridge", "io", "provenance", "smk", "errors"),
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
        code_version=code_version("predictions", "ridge", "io", "provenance", "smk", "errors"),
    script:
        script_path("patient_predictions.py")
