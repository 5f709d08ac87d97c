# Input and target functions of model_comparison.smk, kept in their own file because
# `snakemake --lint` wants functions and rules apart.


def _model_patients(model, encoder):
    """The patient-level prediction table of a compared model."""
    if model == "emo":
        return f"results/predictions/{encoder}/patients.tsv"
    if model in ("ridge", "colour_texture"):
        return f"results/predictions/{encoder}/patients_{model}.tsv"
    return f"results/slide_models/{encoder}/{model}/patients.tsv"


def _benchmark_files(model, encoder):
    """Training cost of the heads and baselines: the benchmark files of the chunk jobs and
    of the ridge job (both baselines are fitted in one train_ridge job). Read by the job,
    not declared as inputs, so a deleted benchmarks/ folder never reruns the training
    (the cost then reads NaN); a slide model's cost is its measured training_cost.tsv."""
    if model == "emo":
        return [f"benchmarks/train_gene_chunk/{encoder}_{chunk}.tsv" for chunk in PLAN.gene_chunks]
    return [f"benchmarks/train_ridge/{encoder}.tsv"]


def model_cost_sources(wildcards):
    """params.cost_sources: model -> (kind, files) for emo.stats.comparison.cost_table."""
    return {m: ("measured", [f"results/slide_models/{wildcards.encoder}/{m}/training_cost.tsv"])
            if m in SLIDE_MODEL_NAMES else ("benchmark", _benchmark_files(m, wildcards.encoder))
            for m in COMPARED_MODELS}


def model_comparison_inputs(wildcards):
    encoder = wildcards.encoder
    stats_dir = STATS_DIR.format(encoder=encoder)
    files = {key: path.format(encoder=encoder) for key, path in STATS_INPUTS.items() if key != "predictions"}
    # the heads' statistics come from the statistics stage; every other model's are computed in the job
    files.update({f"emo_{name}": f"{stats_dir}/{name}.tsv" for name in ("validation", "test", "external")})
    for model in COMPARED_MODELS:
        if model != "emo":
            files[f"{model}_patients"] = _model_patients(model, encoder)
        if model in SLIDE_MODEL_NAMES:
            files[f"{model}_cost"] = f"results/slide_models/{encoder}/{model}/training_cost.tsv"
    return files


def model_comparison_targets(encoder=None):
    if len(COMPARED_MODELS) < 2:
        return []
    base = COMPARISON_DIR.format(encoder=encoder or ENCODER)
    return [f"{base}/{name}" for name in ("comparison.tsv", "statistics.tsv", "per_gene_spearman.tsv",
                                          "training_cost.tsv", "spearman_pairs.png")]
