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

from emo.expression import chunk_ids, input_gene_list, reference_cohort  # noqa: E402

EXPRESSION = config["expression"]
REFERENCE_COHORT = reference_cohort(config["cohorts"])
# SPLITS_CFG, COHORT_ROLES, SPLITS_SEED, PATIENT_SPLITS: common.smk (slide batches use them)
SAMPLE_PATIENT = {s: SAMPLES.loc[s, "patient"] for s in SAMPLE_NAMES}
# Cohorts with at least one patient in the sample sheet (others are not read).
USED_COHORTS = sorted(set(PATIENT_SPLITS["cohort"]))
TRAINING_STORE_PATIENTS = PATIENT_SPLITS[
    PATIENT_SPLITS["cohort"].map(COHORT_ROLES).eq("training")
    & PATIENT_SPLITS["split"].isin(["train", "tune", "validation"])
]


TRAINING_STORE_COHORTS = sorted(set(TRAINING_STORE_PATIENTS["cohort"]))
EXPRESSION_PATHS = {name: c["expression"] for name, c in config["cohorts"].items()}
# (functions as lambdas: `snakemake --lint` flags `def` beside rules)
samples_with_split = lambda *splits: samples_in_splits(SAMPLES, PATIENT_SPLITS, splits)  # noqa: E731
split_records = lambda table: table[["patient", "cohort", "split"]].to_dict("records")  # noqa: E731
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
                "split": SAMPLES.loc[s, "split"]} for s in SAMPLE_NAMES],
        roles=COHORT_ROLES,
        seed=SPLITS_SEED,
        proportions=SPLITS_CFG.get("proportions"),
        code_version=script_version("patient_splits.py"),
    script:
        script_path("patient_splits.py")


rule training_expression:
    input:
        matrices=[EXPRESSION_PATHS[c] for c in TRAINING_STORE_COHORTS],
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
        cohorts=TRAINING_STORE_COHORTS,
        patients=split_records(TRAINING_STORE_PATIENTS),
        reference=REFERENCE_COHORT,
        input_kind=EXPRESSION["input"],
        min_variance=EXPRESSION["min_variance"],
        gene_chunk_size=EXPRESSION["gene_chunk_size"],
        code_version=script_version("training_expression.py"),
    script:
        script_path("training_expression.py")


rule prepare_expression:
    input:
        training="results/expression/training.h5",
        matrices=[EXPRESSION_PATHS[c] for c in USED_COHORTS],
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
        cohorts=USED_COHORTS,
        roles=COHORT_ROLES,
        patients=split_records(PATIENT_SPLITS),
        input_kind=EXPRESSION["input"],
        code_version=script_version("prepare_expression.py"),
    script:
        script_path("prepare_expression.py")
