# Stage: cnn_finetune (optional, cnn_finetune.enabled). One Inception V3 per gene,
# fine-tuned end to end on tile pixels as EMO (docs/cnn_finetune.md): one GPU job per
# gene, resumable after preemption from results/cnn_finetune/{gene}/state/.
#   results/cnn_finetune/{gene}/model.pt, training.tsv, kept.tsv, epochs/, predictions.h5
#   results/cnn_finetune/predictions/slides/{sample}.h5, patients.tsv (the heads' layouts)
#   results/cnn_finetune/training_summary.tsv, training_curves.png (report)
# Inputs: the training store and the tile stores (pixels read from the slides).

CNN_FINETUNE = config["cnn_finetune"]
CNN_FINETUNE_GENES = PLAN.cnn_finetune_genes  # [] unless enabled (checked against the expression matrix)
CNN_FINETUNE_PREDICT = PLAN.cnn_finetune_predict_samples
CNN_FINETUNE_SAMPLES = sorted(set(PLAN.model_samples) | set(CNN_FINETUNE_PREDICT))
CNN_FINETUNE_GPU = {"gpu": 1} if CNN_FINETUNE["gpu"] else {}
CNN_FINETUNE_SETTINGS = PLAN.cnn_finetune_settings  # without resources: changing one reruns nothing


# (lambdas: `snakemake --lint` flags `def` beside rules)
cnn_finetune_targets = lambda: (  # noqa: E731
    ["results/cnn_finetune/predictions/patients.tsv", "results/cnn_finetune/training_curves.png"]
    if CNN_FINETUNE_GENES else [])


rule cnn_finetune_gene:
    input:
        expression="results/expression/training.h5",
        tiles=[f"results/tiles/{s}.h5" for s in CNN_FINETUNE_SAMPLES],
        slides=[PLAN.slide(s) for s in CNN_FINETUNE_SAMPLES],
    output:
        model="results/cnn_finetune/{gene}/model.pt",
        training="results/cnn_finetune/{gene}/training.tsv",
        kept="results/cnn_finetune/{gene}/kept.tsv",
        epochs=directory("results/cnn_finetune/{gene}/epochs"),
        predictions="results/cnn_finetune/{gene}/predictions.h5",
    wildcard_constraints:
        gene=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    log:
        log_path("cnn_finetune_gene", "gene"),
    benchmark:
        benchmark_path("cnn_finetune_gene", "gene")
    conda:
        "../../envs/torch.yaml"
    threads: CNN_FINETUNE["threads"]
    resources:
        mem_mb=CNN_FINETUNE["mem_mb"],
        runtime=CNN_FINETUNE["runtime"],
        **CNN_FINETUNE_GPU,
    params:
        samples=CNN_FINETUNE_SAMPLES,
        mpp=PLAN.mpps(CNN_FINETUNE_SAMPLES),
        train_samples=PLAN.train_samples,
        tune_samples=PLAN.tune_samples,
        predict_samples=CNN_FINETUNE_PREDICT,
        sample_patient={s: PLAN.sample_patient[s] for s in CNN_FINETUNE_SAMPLES},
        settings=CNN_FINETUNE_SETTINGS,
        stain_method=config["stain_normalisation"]["method"],
        # not an output: Snakemake leaves it alone, so a preempted job resumes from it
        state_dir=lambda wildcards: f"results/cnn_finetune/{wildcards.gene}/state",
        code_version=script_version("cnn_finetune_gene.py"),
    script:
        script_path("cnn_finetune_gene.py")


rule cnn_finetune_predictions:
    input:
        predictions=[f"results/cnn_finetune/{g}/predictions.h5" for g in CNN_FINETUNE_GENES],
        training=[f"results/cnn_finetune/{g}/training.tsv" for g in CNN_FINETUNE_GENES],
    output:
        slides=[f"results/cnn_finetune/predictions/slides/{s}.h5" for s in CNN_FINETUNE_PREDICT],
        patients="results/cnn_finetune/predictions/patients.tsv",
        summary="results/cnn_finetune/training_summary.tsv",
        figure=report("results/cnn_finetune/training_curves.png", caption="../report/cnn_finetune_curves.rst",
                      category="Gene models", labels={"figure": "CNN fine-tuning curves"}),
    log:
        log_path("cnn_finetune_predictions"),
    benchmark:
        benchmark_path("cnn_finetune_predictions")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        genes=CNN_FINETUNE_GENES,
        sample_patient={s: PLAN.sample_patient[s] for s in CNN_FINETUNE_PREDICT},
        settings=CNN_FINETUNE_SETTINGS,
        code_version=script_version("cnn_finetune_predictions.py"),
    script:
        script_path("cnn_finetune_predictions.py")
