# Stage: gene_statistics_ki67 (paper 001, Supplementary Fig. S6). The IHC Ki67 score of each
# patient's tumour (clinical column statistics.ki67_column) against the predicted
# proliferation score of rule gene_statistics_proliferation, Spearman per evaluation set;
# the ROI-level Ki67 LME is in the spatial stage. Off while statistics.ki67_column is null;
# a configured column the clinical table lacks is refused here, before any job.
#   results/statistics/{encoder}/ki67/ki67_proliferation.tsv, ki67_pairs.tsv, ki67_proliferation.png

KI67_COLUMN = PLAN.ki67_column  # checked against an existing clinical table
KI67_DIR = "results/statistics/{encoder}/ki67"


# (a lambda: `snakemake --lint` flags `def` beside rules)
gene_statistics_ki67_targets = lambda: (  # noqa: E731
    [f"results/statistics/{ENCODER}/ki67/{name}" for name in ("ki67_proliferation.tsv", "ki67_proliferation.png")]
    if KI67_COLUMN else [])


rule gene_statistics_ki67:
    input:
        scores="results/statistics/{encoder}/proliferation_scores.tsv",
        clinical=config.get("clinical") or [],
    output:
        table=f"{KI67_DIR}/ki67_proliferation.tsv",
        pairs=f"{KI67_DIR}/ki67_pairs.tsv",
        figure=report(f"{KI67_DIR}/ki67_proliferation.png", caption="../report/statistics_ki67.rst",
                      category="Gene statistics", labels={"figure": "ki67_proliferation", "encoder": "{encoder}"}),
    params:
        ki67_column=KI67_COLUMN,
        code_version=script_version("gene_statistics_ki67.py"),
        **PLAN.clinical_mapping_params,
    log:
        log_path("gene_statistics_ki67", "encoder"),
    benchmark:
        benchmark_path("gene_statistics_ki67", "encoder")
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        script_path("gene_statistics_ki67.py")
