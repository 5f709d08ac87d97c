# Stage: ki67_proliferation (paper 001, Supplementary Fig. S6). The IHC Ki67 score of each
# patient's tumour (clinical column statistics.ki67_column) against the predicted
# proliferation score of rule gene_statistics_proliferation, Spearman per evaluation set;
# the ROI-level Ki67 LME is in the spatial stage. Off while statistics.ki67_column is null;
# a configured column the clinical table lacks is refused here, before any job.
#   results/statistics/{encoder}/ki67/ki67_proliferation.tsv, ki67_pairs.tsv, ki67_proliferation.png

from emo.stats import ki67 as _ki67

KI67_COLUMN = _ki67.check_clinical_column(config)
KI67_DIR = "results/statistics/{encoder}/ki67"


# (a lambda: `snakemake --lint` flags `def` beside rules)
ki67_proliferation_targets = lambda: (  # noqa: E731
    [f"results/statistics/{ENCODER}/ki67/{name}" for name in ("ki67_proliferation.tsv", "ki67_proliferation.png")]
    if KI67_COLUMN else [])


rule ki67_proliferation:
    input:
        scores="results/statistics/{encoder}/proliferation_scores.tsv",
        clinical=config.get("clinical") or [],
    output:
        table=f"{KI67_DIR}/ki67_proliferation.tsv",
        pairs=f"{KI67_DIR}/ki67_pairs.tsv",
        figure=report(f"{KI67_DIR}/ki67_proliferation.png", caption="../report/ki67_proliferation.rst",
                      category="Gene statistics", labels={"figure": "ki67_proliferation", "encoder": "{encoder}"}),
    params:
        ki67_column=KI67_COLUMN,
        code_version=script_version("ki67_proliferation.py"),
        **PLAN.clinical_mapping_params,
    log:
        log_path("ki67_proliferation", "encoder"),
    benchmark:
        benchmark_path("ki67_proliferation", "encoder")
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        script_path("ki67_proliferation.py")
