# Stage: slide_models. Slide-level multi-gene models beside the per-gene heads
# (docs/models.md): HE2RNA (paper 003) and gated-attention MIL regression, one job per
# model (all cross-validation folds), on the frozen tile features.
#   results/slide_models/{encoder}/{model}/patients.tsv  (as patients_ridge.tsv)
#   .../slides.tsv, folds.tsv, training.tsv, training_cost.tsv, pearson.tsv, tiles.h5, model.pt
# Each model reads only its own settings, so adding or retuning one reruns nothing else.

SLIDE_MODELS = config["slide_models"]
SLIDE_MODEL_NAMES = list(SLIDE_MODELS["models"])
SLIDE_MODEL_DIR = "results/slide_models/{encoder}/{model}"
# settings every model reads; each model also reads its own section (slide_model_settings)
_SLIDE_MODEL_SHARED = {k: v for k, v in SLIDE_MODELS.items() if k not in ("models", "he2rna", "attention_mil")}


include: "slide_models_functions.smk"


rule slide_model_train:
    output:
        patients=f"{SLIDE_MODEL_DIR}/patients.tsv",
        slides=f"{SLIDE_MODEL_DIR}/slides.tsv",
        folds=f"{SLIDE_MODEL_DIR}/folds.tsv",
        training=f"{SLIDE_MODEL_DIR}/training.tsv",
        cost=f"{SLIDE_MODEL_DIR}/training_cost.tsv",
        pearson=f"{SLIDE_MODEL_DIR}/pearson.tsv",
        tiles=f"{SLIDE_MODEL_DIR}/tiles.h5",
        model=f"{SLIDE_MODEL_DIR}/model.pt",
    input:
        expression="results/expression/training.h5",
        prepared="results/expression/prepared.h5",
        splits="results/splits/patients.tsv",
        features=expand("results/features/{{encoder}}/{sample}.h5", sample=SAMPLE_NAMES),
    wildcard_constraints:
        model="he2rna|attention_mil",
    params:
        samples=SAMPLE_NAMES,
        patients=[PLAN.sample_patient[s] for s in SAMPLE_NAMES],
        model_samples=PLAN.model_samples,
        settings=slide_model_settings,
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
        **({"gpu": 1} if SLIDE_MODELS["gpu"] else {}),
    script:
        script_path("slide_model_train.py")
