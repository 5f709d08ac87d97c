# Stage: gene_statistics. Validation, selection, internal/external testing, proliferation
# score, markers by clinical status, PAM50 clustering, ER+/ER- models and their figures
# (paper 001). Reads only the prepared expression, the split table, the patient-level
# predictions and the clinical table, so a threshold change reruns statistics only.
# Tables: docs/statistics.md.

from emo.stats import settings as _statistics_settings

PLAN.check_statistics_clinical()  # before any job: the clinical columns these rules use
STATS = _statistics_settings(config["statistics"])  # pam50.genes: null -> the PAM50 genes
STATS_DIR = "results/statistics/{encoder}"
STATS_OUT = "results/statistics/{encoder,[^/]+}"  # outputs: encoder is one path component
STATS_CLINICAL = config.get("clinical")
STATS_INPUTS = {
    "prepared": "results/expression/prepared.h5",
    "splits": "results/splits/patients.tsv",
    "predictions": "results/predictions/{encoder}/patients.tsv",
}
STATS_ENV = "../../envs/stats.yaml"


include: "gene_statistics_functions.smk"


rule gene_statistics_validation:
    input:
        **STATS_INPUTS,
    output:
        validation=f"{STATS_OUT}/validation.tsv",
        selected=f"{STATS_OUT}/selected_genes.tsv",
    params:
        statistics={"selection": STATS["selection"]},
        code_version=script_version("gene_statistics_validation.py"),
    log:
        log_path("gene_statistics_validation", "encoder"),
    benchmark:
        benchmark_path("gene_statistics_validation", "encoder")
    conda:
        STATS_ENV
    threads: 1
    resources:
        mem_mb=6000,
        runtime=30,
    script:
        script_path("gene_statistics_validation.py")


rule gene_statistics_validation_ridge:
    input:
        **{**STATS_INPUTS, "predictions": "results/predictions/{encoder}/patients_ridge.tsv"},
    output:
        validation=f"{STATS_OUT}/ridge/validation.tsv",
        selected=f"{STATS_OUT}/ridge/selected_genes.tsv",
    params:
        statistics={"selection": STATS["selection"]},
        code_version=script_version("gene_statistics_validation.py"),
    log:
        log_path("gene_statistics_validation_ridge", "encoder"),
    benchmark:
        benchmark_path("gene_statistics_validation_ridge", "encoder")
    conda:
        STATS_ENV
    threads: 1
    resources:
        mem_mb=6000,
        runtime=30,
    script:
        script_path("gene_statistics_validation.py")


rule gene_statistics_model_comparison:
    input:
        emo=f"{STATS_DIR}/validation.tsv",
        ridge=f"{STATS_DIR}/ridge/validation.tsv",
    output:
        table=f"{STATS_OUT}/model_comparison.tsv",
    params:
        statistics={"selection": STATS["selection"]},
        code_version=script_version("gene_statistics_model_comparison.py"),
    log:
        log_path("gene_statistics_model_comparison", "encoder"),
    benchmark:
        benchmark_path("gene_statistics_model_comparison", "encoder")
    conda:
        STATS_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        script_path("gene_statistics_model_comparison.py")


rule gene_statistics_testing:
    input:
        **STATS_INPUTS,
        selected=f"{STATS_DIR}/selected_genes.tsv",
    output:
        test=f"{STATS_OUT}/test.tsv",
        external=f"{STATS_OUT}/external.tsv",
    params:
        statistics={"test_alpha": STATS["test_alpha"]},
        code_version=script_version("gene_statistics_testing.py"),
    log:
        log_path("gene_statistics_testing", "encoder"),
    benchmark:
        benchmark_path("gene_statistics_testing", "encoder")
    conda:
        STATS_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        script_path("gene_statistics_testing.py")


rule gene_statistics_proliferation:
    input:
        **STATS_INPUTS,
        clinical=STATS_CLINICAL or [],
        validation=f"{STATS_DIR}/validation.tsv",
    output:
        scores=f"{STATS_OUT}/proliferation_scores.tsv",
        table=f"{STATS_OUT}/proliferation.tsv",
        genes=f"{STATS_OUT}/proliferation_genes.tsv",
    params:
        statistics={"proliferation_genes": STATS["proliferation_genes"]},
        code_version=script_version("gene_statistics_proliferation.py"),
    log:
        log_path("gene_statistics_proliferation", "encoder"),
    benchmark:
        benchmark_path("gene_statistics_proliferation", "encoder")
    conda:
        STATS_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    script:
        script_path("gene_statistics_proliferation.py")


rule gene_statistics_markers:
    input:
        **STATS_INPUTS,
        clinical=STATS_CLINICAL or [],
        scores=f"{STATS_DIR}/proliferation_scores.tsv",
    output:
        summary=f"{STATS_OUT}/markers_summary.tsv",
        tests=f"{STATS_OUT}/markers_tests.tsv",
    params:
        statistics={"markers": STATS["markers"]},
        code_version=script_version("gene_statistics_markers.py"),
    log:
        log_path("gene_statistics_markers", "encoder"),
    benchmark:
        benchmark_path("gene_statistics_markers", "encoder")
    conda:
        STATS_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    script:
        script_path("gene_statistics_markers.py")


rule gene_statistics_pam50:
    input:
        **STATS_INPUTS,
        clinical=STATS_CLINICAL or [],
    output:
        clusters=f"{STATS_OUT}/pam50_clusters.tsv",
        ari=f"{STATS_OUT}/pam50_clustering.tsv",
    params:
        statistics={"pam50": STATS["pam50"]},
        code_version=script_version("gene_statistics_pam50.py"),
    log:
        log_path("gene_statistics_pam50", "encoder"),
    benchmark:
        benchmark_path("gene_statistics_pam50", "encoder")
    conda:
        STATS_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        script_path("gene_statistics_pam50.py")


rule gene_statistics_er_models:
    input:
        **STATS_INPUTS,
        clinical=STATS_CLINICAL or [],
        selected=f"{STATS_DIR}/selected_genes.tsv",
    output:
        models=f"{STATS_OUT}/er_models.tsv",
        summary=f"{STATS_OUT}/er_summary.tsv",
    params:
        statistics={"er_models": STATS["er_models"]},
        code_version=script_version("gene_statistics_er_models.py"),
    log:
        log_path("gene_statistics_er_models", "encoder"),
    benchmark:
        benchmark_path("gene_statistics_er_models", "encoder")
    conda:
        STATS_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        script_path("gene_statistics_er_models.py")


_STATS_FIGURES = {
    "histograms": ("validation_histograms.png", "statistics_validation_histograms.rst"),
    "top_validation": ("top_genes_validation.png", "statistics_top_genes.rst"),
    "top_test": ("top_genes_test.png", "statistics_top_genes.rst"),
    "top_external": ("top_genes_external.png", "statistics_top_genes.rst"),
}
if STATS_CLINICAL:
    _STATS_FIGURES.update({
        "proliferation_figure": ("proliferation.png", "statistics_proliferation.rst"),
        "markers_figure": ("markers.png", "statistics_markers.rst"),
        "pam50_figure": ("pam50_heatmaps.png", "statistics_pam50.rst"),
    })


rule gene_statistics_figures:
    input:
        unpack(_statistics_figure_inputs),
    output:
        **{key: report(f"{STATS_OUT}/figures/{name}", caption=f"../report/{caption}", category="Gene statistics",
                       labels={"figure": key, "encoder": "{encoder}"})
           for key, (name, caption) in _STATS_FIGURES.items()},
    params:
        statistics=STATS,
        code_version=script_version("gene_statistics_figures.py"),
    log:
        log_path("gene_statistics_figures", "encoder"),
    benchmark:
        benchmark_path("gene_statistics_figures", "encoder")
    conda:
        STATS_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        script_path("gene_statistics_figures.py")


