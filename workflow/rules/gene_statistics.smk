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


# The table rules differ only in inputs, outputs, the settings they read and their size,
# so one rule body serves them: name -> entry script, inputs, outputs (under STATS_OUT),
# the statistics settings passed as params, memory (MB) and runtime (minutes).
_CLINICAL = {"clinical": STATS_CLINICAL or []}
# config key clinical_mapping, a param of exactly the rules reading the clinical table ({} without one)
_CLINICAL_PARAMS = PLAN.clinical_mapping_params
_STATS_TABLES = {
    "validation": ("gene_statistics_validation.py", STATS_INPUTS,
                   {"validation": "validation.tsv", "selected": "selected_genes.tsv"},
                   {"selection": STATS["selection"]}, 6000, 30),
    # the same statistics on the ridge baseline's predictions, for the model comparison
    "validation_ridge": ("gene_statistics_validation.py",
                         {**STATS_INPUTS, "predictions": "results/predictions/{encoder}/patients_ridge.tsv"},
                         {"validation": "ridge/validation.tsv", "selected": "ridge/selected_genes.tsv"},
                         {"selection": STATS["selection"]}, 6000, 30),
    "validation_colour_texture": ("gene_statistics_validation.py",
                                  {**STATS_INPUTS,
                                   "predictions": "results/predictions/{encoder}/patients_colour_texture.tsv"},
                                  {"validation": "colour_texture/validation.tsv",
                                   "selected": "colour_texture/selected_genes.tsv"},
                                  {"selection": STATS["selection"]}, 6000, 30),
    # input keys name the models' rows in the table
    "model_comparison": ("gene_statistics_model_comparison.py",
                         {"emo": f"{STATS_DIR}/validation.tsv", "ridge": f"{STATS_DIR}/ridge/validation.tsv",
                          "colour_texture": f"{STATS_DIR}/colour_texture/validation.tsv"},
                         {"table": "model_comparison.tsv"}, {"selection": STATS["selection"]}, 1000, 10),
    "testing": ("gene_statistics_testing.py", {**STATS_INPUTS, "selected": f"{STATS_DIR}/selected_genes.tsv"},
                {"test": "test.tsv", "external": "external.tsv"}, {"test_alpha": STATS["test_alpha"]}, 4000, 30),
    "proliferation": ("gene_statistics_proliferation.py",
                      {**STATS_INPUTS, **_CLINICAL, "validation": f"{STATS_DIR}/validation.tsv"},
                      {"scores": "proliferation_scores.tsv", "table": "proliferation.tsv",
                       "genes": "proliferation_genes.tsv"},
                      {"proliferation_genes": STATS["proliferation_genes"]}, 2000, 15),
    "markers": ("gene_statistics_markers.py",
                {**STATS_INPUTS, **_CLINICAL, "scores": f"{STATS_DIR}/proliferation_scores.tsv"},
                {"summary": "markers_summary.tsv", "tests": "markers_tests.tsv"},
                {"markers": STATS["markers"]}, 2000, 15),
    "pam50": ("gene_statistics_pam50.py", {**STATS_INPUTS, **_CLINICAL},
              {"clusters": "pam50_clusters.tsv", "ari": "pam50_clustering.tsv"}, {"pam50": STATS["pam50"]}, 2000, 30),
    "er_models": ("gene_statistics_er_models.py",
                  {**STATS_INPUTS, **_CLINICAL, "selected": f"{STATS_DIR}/selected_genes.tsv"},
                  {"models": "er_models.tsv", "summary": "er_summary.tsv"}, {"er_models": STATS["er_models"]},
                  4000, 30),
}

for _table, (_script, _inputs, _outputs, _settings, _mem_mb, _runtime) in _STATS_TABLES.items():

    rule:
        name:
            f"gene_statistics_{_table}"
        input:
            **_inputs,
        output:
            **{key: f"{STATS_OUT}/{name}" for key, name in _outputs.items()},
        params:
            statistics=_settings,
            script=_script,
            code_version=script_version(_script),
            **(_CLINICAL_PARAMS if "clinical" in _inputs else {}),
        log:
            log_path(f"gene_statistics_{_table}", "encoder"),
        benchmark:
            benchmark_path(f"gene_statistics_{_table}", "encoder")
        conda:
            STATS_ENV
        threads: 1
        resources:
            mem_mb=_mem_mb,
            runtime=_runtime,
        # formatted with this job's params when it runs (a loop variable here would be
        # read at run time, when it holds the last table's value)
        script:
            script_path("{params.script}")


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
        **(_CLINICAL_PARAMS if STATS_CLINICAL else {}),
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


