# Stage: slide_models. Slide-level multi-gene models beside the per-gene heads
# (docs/models.md): HE2RNA (paper 003) and gated-attention MIL regression, on the frozen
# tile features. Per model, one training job (all cross-validation folds, on the train +
# tune slides) and one prediction job (every slide), so a new external slide reruns the
# prediction only.
#   results/slide_models/{encoder}/{model}/model.pt, folds.tsv, training.tsv, training_cost.tsv
#   results/slide_models/{encoder}/{model}/patients.tsv (as patients_ridge.tsv), slides.tsv,
#   pearson.tsv, tiles.h5, spatialisation.png
# Each model's jobs read only the shared keys they use and the model's own section, so
# adding or retuning one model reruns nothing else.

SLIDE_MODELS = config["slide_models"]
SLIDE_MODEL_NAMES = list(SLIDE_MODELS["models"])
SLIDE_MODEL_DIR = "results/slide_models/{encoder}/{model}"
SLIDE_MODEL_GPU = {"gpu": 1} if SLIDE_MODELS["gpu"] else {}


include: "slide_models_functions.smk"


wildcard_constraints:
    model="he2rna|attention_mil",


rule slide_model_train:
    output:
        folds=f"{SLIDE_MODEL_DIR}/folds.tsv",
        training=f"{SLIDE_MODEL_DIR}/training.tsv",
        cost=f"{SLIDE_MODEL_DIR}/training_cost.tsv",
        model=f"{SLIDE_MODEL_DIR}/model.pt",
    input:
        expression="results/expression/training.h5",
        features=expand("results/features/{{encoder}}/{sample}.h5", sample=PLAN.model_samples),
    params:
        samples=PLAN.model_samples,
        patients=[PLAN.sample_patient[s] for s in PLAN.model_samples],
        settings=slide_model_train_settings,
        code_version=script_version("slide_model_train.py"),
    log:
        log_path("slide_model_train", "encoder", "model"),
    benchmark:
        benchmark_path("slide_model_train", "encoder", "model")
    conda:
        "../../envs/torch.yaml"
    threads: SLIDE_MODELS["threads"]
    resources:
        mem_mb=slide_model_mem_mb,
        runtime=SLIDE_MODELS["runtime"],
        **SLIDE_MODEL_GPU,
    script:
        script_path("slide_model_train.py")


rule slide_model_predict:
    output:
        patients=f"{SLIDE_MODEL_DIR}/patients.tsv",
        slides=f"{SLIDE_MODEL_DIR}/slides.tsv",
        pearson=f"{SLIDE_MODEL_DIR}/pearson.tsv",
        tiles=f"{SLIDE_MODEL_DIR}/tiles.h5",
        maps=report(f"{SLIDE_MODEL_DIR}/spatialisation.png", caption="../report/slide_model_maps.rst",
                    category="Slide models", labels={"figure": "tile maps", "model": "{model}", "encoder": "{encoder}"}),
    input:
        model=f"{SLIDE_MODEL_DIR}/model.pt",
        prepared="results/expression/prepared.h5",
        splits="results/splits/patients.tsv",
        features=expand("results/features/{{encoder}}/{sample}.h5", sample=SAMPLE_NAMES),
    params:
        samples=SAMPLE_NAMES,
        patients=[PLAN.sample_patient[s] for s in SAMPLE_NAMES],
        settings=slide_model_predict_settings,
        code_version=script_version("slide_model_predict.py"),
    log:
        log_path("slide_model_predict", "encoder", "model"),
    benchmark:
        benchmark_path("slide_model_predict", "encoder", "model")
    conda:
        "../../envs/torch.yaml"
    threads: SLIDE_MODELS["threads"]
    resources:
        mem_mb=8000,
        runtime=SLIDE_MODELS["runtime"],
        **SLIDE_MODEL_GPU,
    script:
        script_path("slide_model_predict.py")


rule slide_model_transfer:
    output:
        table="results/slide_models/{encoder}/he2rna/transfer.tsv",
    input:
        model="results/slide_models/{encoder}/he2rna/model.pt",
        clinical=config.get("clinical") or [],
        features=expand("results/features/{{encoder}}/{sample}.h5", sample=SAMPLE_NAMES),
    params:
        samples=SAMPLE_NAMES,
        patients=[PLAN.sample_patient[s] for s in SAMPLE_NAMES],
        settings={**{k: SLIDE_MODELS[k] for k in ("seed", "device", "transfer")}, "he2rna": SLIDE_MODELS["he2rna"]},
        code_version=script_version("slide_model_transfer.py"),
        **PLAN.clinical_mapping_params,
    log:
        log_path("slide_model_transfer", "encoder"),
    benchmark:
        benchmark_path("slide_model_transfer", "encoder")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    script:
        script_path("slide_model_transfer.py")
