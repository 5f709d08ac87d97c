# Stage: gene_models. One model per gene on frozen tile features, trained a chunk of
# genes per job (docs/gene_models.md), and a ridge baseline on slide-mean features.
#   results/models/{encoder}/chunk_{chunk}.pt / .tsv
#   results/models/{encoder}/ridge.h5 / ridge.tsv
#   results/models/{encoder}/training_curves.png / training_summary.tsv
# Inputs are the training store and the feature stores of train + tune slides only.

GENE_MODELS = config["gene_models"]


# (functions as lambdas: `snakemake --lint` flags `def` beside rules)
gene_model_targets_for = lambda encoder: [f"results/models/{encoder}/chunk_{k}.pt" for k in PLAN.gene_chunks]  # noqa: E731
gene_model_arrays_for = lambda encoder: [f"results/models/{encoder}/chunk_{k}.npz" for k in PLAN.gene_chunks]  # noqa: E731
gene_models_targets = lambda: gene_model_targets_for(ENCODER) + [  # noqa: E731
    f"results/models/{ENCODER}/ridge.h5", f"results/models/{ENCODER}/training_curves.png"]
# gpu=1 only when the config asks for it (portable resource; profiles map it)
GENE_MODEL_GPU = {"gpu": 1} if GENE_MODELS["gpu"] else {}
# gene_models.tile_selection: tumour -> the tumour classifier is an input of training and
# prediction (they apply it to each slide's features), and its threshold a param; with
# `all` neither appears, so those jobs are as before (docs/tumour_regions.md).
TUMOUR_MODEL_INPUT = ({"tumour_model": "results/tumour_regions/{encoder}/classifier.h5"}
                      if PLAN.tumour_selection else {})
TUMOUR_MODEL_PARAMS = ({"tumour_threshold": config["tumour_regions"]["threshold"]}
                       if PLAN.tumour_selection else {})


# Collector rules: every chunk needs every training feature store and every slide
# needs every chunk; routing both through one manifest keeps the DAG's edges linear in
# slides + chunks (1,000 slides x 71 chunks would otherwise be 71,000 edges).
rule training_feature_manifest:
    input:
        expand("results/features/{{encoder}}/{sample}.h5", sample=PLAN.model_samples),
    output:
        "results/features/{encoder}/training_manifest.tsv",
    log:
        log_path("training_feature_manifest", "encoder"),
    benchmark:
        benchmark_path("training_feature_manifest", "encoder")
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        code_version=script_version("file_manifest.py"),
    script:
        script_path("file_manifest.py")


rule gene_model_manifest:
    input:
        lambda wc: gene_model_arrays_for(wc.encoder),
    output:
        "results/models/{encoder}/chunks_manifest.tsv",
    log:
        log_path("gene_model_manifest", "encoder"),
    benchmark:
        benchmark_path("gene_model_manifest", "encoder")
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        code_version=script_version("file_manifest.py"),
    script:
        script_path("file_manifest.py")


rule train_gene_chunk:
    input:
        expression="results/expression/training.h5",
        genes="results/expression/genes.tsv",
        features="results/features/{encoder}/training_manifest.tsv",
        **TUMOUR_MODEL_INPUT,
    output:
        model="results/models/{encoder}/chunk_{chunk}.pt",
        table="results/models/{encoder}/chunk_{chunk}.tsv",
        arrays="results/models/{encoder}/chunk_{chunk}.npz",
    wildcard_constraints:
        chunk=r"\d{4}",
    log:
        log_path("train_gene_chunk", "encoder", "chunk"),
    benchmark:
        benchmark_path("train_gene_chunk", "encoder", "chunk")
    conda:
        "../../envs/torch.yaml"
    threads: GENE_MODELS["threads"]
    resources:
        mem_mb=PLAN.gene_chunk_mem_mb,
        runtime=GENE_MODELS["runtime"],
        **GENE_MODEL_GPU,
    params:
        train_samples=PLAN.train_samples,
        tune_samples=PLAN.tune_samples,
        sample_patient={s: PLAN.sample_patient[s] for s in PLAN.train_samples + PLAN.tune_samples},
        settings=GENE_MODELS,
        **TUMOUR_MODEL_PARAMS,
        code_version=script_version("train_gene_chunk.py"),
    script:
        script_path("train_gene_chunk.py")


rule train_ridge:
    input:
        expression="results/expression/training.h5",
        train=expand("results/features/{{encoder}}/{sample}.h5", sample=PLAN.model_samples),
    output:
        # keys: the baselines of emo.ridge.BASELINE_INPUTS
        ridge="results/models/{encoder}/ridge.h5",
        ridge_table="results/models/{encoder}/ridge.tsv",
        colour_texture="results/models/{encoder}/colour_texture_ridge.h5",
        colour_texture_table="results/models/{encoder}/colour_texture_ridge.tsv",
    log:
        log_path("train_ridge", "encoder"),
    benchmark:
        benchmark_path("train_ridge", "encoder")
    conda:
        "../../envs/stats.yaml"
    threads: GENE_MODELS["threads"]
    resources:
        mem_mb=PLAN.ridge_mem_mb,
        runtime=GENE_MODELS["runtime"],
    params:
        samples=PLAN.model_samples,
        sample_patient={s: PLAN.sample_patient[s] for s in PLAN.model_samples},
        alphas=GENE_MODELS["ridge_alphas"],
        folds=GENE_MODELS["ridge_folds"],
        code_version=script_version("train_ridge.py"),
    script:
        script_path("train_ridge.py")


rule gene_model_training_curves:
    input:
        lambda wc: gene_model_targets_for(wc.encoder),
    output:
        figure=report("results/models/{encoder}/training_curves.png", caption="../report/training_curves.rst",
                      category="Gene models", labels={"figure": "training curves", "encoder": "{encoder}"}),
        summary="results/models/{encoder}/training_summary.tsv",
    log:
        log_path("gene_model_training_curves", "encoder"),
    benchmark:
        benchmark_path("gene_model_training_curves", "encoder")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        code_version=script_version("gene_model_training_curves.py"),
    script:
        script_path("gene_model_training_curves.py")
