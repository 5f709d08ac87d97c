# Stage: expression. Patient splits and RNA-seq preparation (docs/gene_models.md).
#   results/splits/patients.tsv       patient, cohort, split, split_source, n_slides
#   results/expression/training.h5    train/tune/validation patients of training cohorts
#                                     (everything training needs; offsets, variance filter)
#   results/expression/genes.tsv      gene, variance, kept, chunk
#   results/expression/prepared.h5    every patient of the sample sheet, normalised
#
# Splits are computed when the DAG is built (they are a pure function of the sheet and
# the config), so the training rules depend only on train/tune samples: adding test or
# external slides never retrains a model.

EXPRESSION = config["expression"]

# (functions as lambdas: `snakemake --lint` flags `def` beside rules)
expression_targets = lambda: [  # noqa: E731
    "results/splits/patients.tsv",
    "results/expression/genes.tsv",
    "results/expression/prepared.h5",
]


rule patient_splits:
    output:
        "results/splits/patients.tsv",
    log:
        log_path("patient_splits"),
    benchmark:
        benchmark_path("patient_splits")
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        sheet=[{"patient": SAMPLES.loc[s, "patient"], "cohort": SAMPLES.loc[s, "cohort"],
                "split": SAMPLES.loc[s, "split"], "site": SAMPLES.loc[s, "site"]} for s in SAMPLE_NAMES],
        roles=PLAN.cohort_roles,
        seed=PLAN.splits_seed,
        proportions=config["splits"]["proportions"],
        by=config["splits"]["by"],
        site_source=config["splits"]["site_source"],
        code_version=script_version("patient_splits.py"),
    script:
        script_path("patient_splits.py")


rule training_expression:
    input:
        matrices=[PLAN.expression_paths[c] for c in PLAN.training_store_cohorts],
    output:
        store="results/expression/training.h5",
        genes="results/expression/genes.tsv",
    log:
        log_path("training_expression"),
    benchmark:
        benchmark_path("training_expression")
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input: 2000 + int(6 * input.size_mb),
        runtime=30,
    params:
        cohorts=PLAN.training_store_cohorts,
        patients=split_records(PLAN.training_store_patients),
        reference=PLAN.reference_cohort,
        input_kind=EXPRESSION["input"],
        min_variance=EXPRESSION["min_variance"],
        gene_chunk_size=EXPRESSION["gene_chunk_size"],
        code_version=script_version("training_expression.py"),
    script:
        script_path("training_expression.py")


rule prepare_expression:
    input:
        training="results/expression/training.h5",
        matrices=[PLAN.expression_paths[c] for c in PLAN.used_cohorts],
    output:
        "results/expression/prepared.h5",
    log:
        log_path("prepare_expression"),
    benchmark:
        benchmark_path("prepare_expression")
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input: 2000 + int(6 * input.size_mb),
        runtime=30,
    params:
        cohorts=PLAN.used_cohorts,
        roles=PLAN.cohort_roles,
        patients=split_records(PLAN.patient_splits),
        input_kind=EXPRESSION["input"],
        code_version=script_version("prepare_expression.py"),
    script:
        script_path("prepare_expression.py")
