# Stage: clinical classifiers (Ektefaie et al. 2021). Tile classifiers of the clinical
# labels (histology, ER, PR, HER2, PAM50, TP53) on frozen tile features, trained on the
# train patients (tune for early stopping), evaluated on validation / test / external
# patients. See docs/classifiers.md.

CLF = config["clinical_classifiers"]
CLF_DIR = f"results/clinical_classifiers/{ENCODER}"
PLAN.check_clinical_classifiers()  # before any job: known labels, their columns in an existing table


include: "clinical_classifiers_functions.smk"


rule clinical_classifiers:
    output:
        metrics=f"{CLF_DIR}/metrics.tsv",
        patients=f"{CLF_DIR}/patients.tsv",
        confusion=f"{CLF_DIR}/confusion.tsv",
        status=f"{CLF_DIR}/labels.tsv",
        comparison=f"{CLF_DIR}/comparison.tsv",
        models=f"{CLF_DIR}/models.pt",
        roc=report(f"{CLF_DIR}/roc.png", caption="../report/clinical_classifiers_roc.rst",
                   category="Clinical classifiers"),
        confusion_figure=report(f"{CLF_DIR}/confusion.png", caption="../report/clinical_classifiers_confusion.rst",
                                category="Clinical classifiers"),
    input:
        features=expand("results/features/{encoder}/{sample}.h5", encoder=ENCODER, sample=SAMPLE_NAMES),
        clinical=config["clinical"] if PLAN.clinical_classifiers_run else [],
        splits="results/splits/patients.tsv",
    params:
        samples=SAMPLE_NAMES,
        patients=[PLAN.sample_patient[s] for s in SAMPLE_NAMES],
        config=CLF,
        device=CLF["device"],
        code_version=script_version("clinical_classifiers.py"),
        **PLAN.clinical_mapping_params,
    log:
        log_path("clinical_classifiers"),
    benchmark:
        benchmark_path("clinical_classifiers")
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=lambda wc, input: 3000 + 2 * len(input.features),
        runtime=60,
        **({"gpu": 1} if CLF["gpu"] else {}),
    script:
        script_path("clinical_classifiers.py")
