# Stage: model_comparison. Every enabled model on the same validation / test / external
# patients (docs/models.md): the EMO gene models, the two ridge baselines
# (statistics.ridge_baseline) and the slide models (slide_models.models). The heads'
# statistics (emo.stats.validation: Spearman, BH, selection, Bonferroni tests) are
# computed here, in one job, for the models whose tables the statistics stage does not
# make (the slide models; the baselines' tests), then one table, per-gene Spearman,
# training cost and a figure.
#   results/statistics/{encoder}/models/comparison.tsv, statistics.tsv, per_gene_spearman.tsv,
#   training_cost.tsv, spearman_pairs.png
# Needs gene_statistics.smk (STATS, STATS_DIR, STATS_INPUTS) and slide_models.smk (SLIDE_MODEL_NAMES).

COMPARED_MODELS = ["emo"] + (["ridge", "colour_texture"] if STATS["ridge_baseline"] else []) + SLIDE_MODEL_NAMES
COMPARISON_DIR = "results/statistics/{encoder}/models"


include: "model_comparison_functions.smk"


rule model_comparison:
    input:
        unpack(model_comparison_inputs),
    output:
        table=f"{COMPARISON_DIR}/comparison.tsv",
        statistics=f"{COMPARISON_DIR}/statistics.tsv",
        per_gene=f"{COMPARISON_DIR}/per_gene_spearman.tsv",
        cost=f"{COMPARISON_DIR}/training_cost.tsv",
        figure=report(f"{COMPARISON_DIR}/spearman_pairs.png", caption="../report/model_comparison.rst",
                      category="Model comparison", labels={"figure": "per-gene Spearman", "encoder": "{encoder}"}),
    params:
        models=COMPARED_MODELS,
        computed=[m for m in COMPARED_MODELS if m != "emo"],
        cost_sources=model_cost_sources,
        statistics={"selection": STATS["selection"], "test_alpha": STATS["test_alpha"]},
        code_version=script_version("model_comparison.py"),
    log:
        log_path("model_comparison", "encoder"),
    benchmark:
        benchmark_path("model_comparison", "encoder")
    conda:
        STATS_ENV
    threads: 1
    resources:
        mem_mb=6000,
        runtime=30,
    script:
        script_path("model_comparison.py")
