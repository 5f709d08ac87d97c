# Stage: image + expression fusion for subtype classification (paper 004). Per patient,
# image patches' encoder features and its prepared expression; image-only, expression-only,
# concatenation, late and cross-attention fusion models on shared 5-fold patient-level
# cross-validation of the training cohorts, then the external cohorts. See docs/fusion.md.

FUSION = config["fusion"]
FUSION_DIR = f"results/statistics/{ENCODER}/fusion"
PLAN.check_fusion()  # before any job: known targets, their columns in an existing table


include: "fusion_classifiers_functions.smk"


rule fusion_classifiers:
    output:
        metrics=f"{FUSION_DIR}/metrics.tsv",
        summary=f"{FUSION_DIR}/summary.tsv",
        predictions=f"{FUSION_DIR}/predictions.tsv",
        confusion=f"{FUSION_DIR}/confusion.tsv",
        folds=f"{FUSION_DIR}/folds.tsv",
        targets=f"{FUSION_DIR}/targets.tsv",
        missing=f"{FUSION_DIR}/missing.tsv",
        attention=f"{FUSION_DIR}/attention.h5",
        metrics_figure=report(f"{FUSION_DIR}/metrics.png", caption="../report/fusion_metrics.rst",
                              category="Image + expression fusion"),
        confusion_figure=report(f"{FUSION_DIR}/confusion.png", caption="../report/fusion_confusion.rst",
                                category="Image + expression fusion"),
        attention_figure=report(f"{FUSION_DIR}/attention.png", caption="../report/fusion_attention.rst",
                                category="Image + expression fusion"),
    input:
        features=expand("results/features/{encoder}/{sample}.h5", encoder=ENCODER, sample=SAMPLE_NAMES),
        expression="results/expression/prepared.h5",
        clinical=config["clinical"] if PLAN.fusion_run else [],
        splits="results/splits/patients.tsv",
    params:
        samples=SAMPLE_NAMES,
        patients=[PLAN.sample_patient[s] for s in SAMPLE_NAMES],
        config=FUSION,
        code_version=script_version("fusion_classifiers.py"),
        **PLAN.clinical_mapping_params,
    log:
        log_path("fusion_classifiers"),
    benchmark:
        benchmark_path("fusion_classifiers")
    conda:
        "../../envs/torch.yaml"
    threads: FUSION["threads"]
    resources:
        mem_mb=lambda wc, input: 3000 + 2 * len(input.features),
        runtime=60,
        **({"gpu": 1} if FUSION["gpu"] else {}),
    script:
        script_path("fusion_classifiers.py")
