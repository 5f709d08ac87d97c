# Stage: predictions. Per-slide predictions of every modelled gene (slide mean of tile
# predictions; tile-level values for config predictions.tile_genes) and patient means.
#   results/predictions/{encoder}/slides/{sample}.h5
#   results/predictions/{encoder}/patients.tsv, patients_ridge.tsv, patients_colour_texture.tsv
# A new slide adds one predict_slide job (or reruns its batch, config slide_batches)
# and reruns only the aggregate.

PREDICTIONS = config["predictions"]


# (a lambda: `snakemake --lint` flags `def` beside rules)
predictions_targets = lambda: [  # noqa: E731
    f"results/predictions/{ENCODER}/patients.tsv",
    f"results/predictions/{ENCODER}/patients_ridge.tsv",
    f"results/predictions/{ENCODER}/patients_colour_texture.tsv",
]


# One rule body: one wildcard rule, or one rule per slide batch (config slide_batches).
for _rule, _samples in per_slide_units("predict_slide"):

    rule:
        name:
            _rule
        input:
            features=unit_paths("results/features/{{encoder}}/{sample}.h5", _samples),
            models="results/models/{encoder}/chunks_manifest.tsv",
            ridge="results/models/{encoder}/ridge.h5",
            colour_texture="results/models/{encoder}/colour_texture_ridge.h5",
            **TUMOUR_MODEL_INPUT,
        output:
            predictions=unit_paths("results/predictions/{{encoder}}/slides/{sample}.h5", _samples),
        log:
            unit_log("predict_slide", _samples, "encoder"),
        benchmark:
            unit_benchmark("predict_slide", _samples, "encoder")
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=PREDICTIONS["mem_mb"],
            runtime=unit_runtime(30, _samples),
        params:
            samples=unit_samples(_samples),
            tile_genes=PREDICTIONS["tile_genes"],
            **TUMOUR_MODEL_PARAMS,
            code_version=script_version("predict_slide.py"),
        script:
            script_path("predict_slide.py")


rule patient_predictions:
    input:
        slides=expand("results/predictions/{{encoder}}/slides/{sample}.h5", sample=SAMPLE_NAMES),
        # predictions.patient_slides: largest_tumour -> each patient's slide with the largest tumour area
        **({"tumour_slides": "results/tumour_regions/{encoder}/slides.tsv"} if PLAN.tumour_patient_slides else {}),
    output:
        nn="results/predictions/{encoder}/patients.tsv",
        ridge="results/predictions/{encoder}/patients_ridge.tsv",
        colour_texture="results/predictions/{encoder}/patients_colour_texture.tsv",
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
        sample_patient=PLAN.sample_patient,
        **({"patient_slides": PREDICTIONS["patient_slides"]} if PLAN.tumour_patient_slides else {}),
        code_version=script_version("patient_predictions.py"),
    script:
        script_path("patient_predictions.py")
