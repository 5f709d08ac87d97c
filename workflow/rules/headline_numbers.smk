# Stage: headline_numbers. The run's headline numbers for the landing page of
# `snakemake --report` (emo.headline): read from the result tables of the stages the
# config runs (tiling QC, model comparison, spatial validation, survival, clinical
# classifiers); a stage switched off is a "not run" row naming its config key.
#   results/report/headline.tsv (+ .json sidecar), results/report/landing.rst
# The Snakefile's `report:` points at landing.rst once it exists (emo.headline.landing_page).
# Needs the rule files of the stages it reads (the Snakefile includes them all).

from emo.headline import HEADLINE_TABLE, LANDING_RST, landing_page  # noqa: E402,F401  (landing_page: the Snakefile's report:)

# The report's static landing text, found from this file's location (workflow/rules/).
REPORT_LANDING_STATIC = str(SCRIPTS_DIR.parent / "workflow" / "report" / "workflow.rst")
HEADLINE_INPUTS, HEADLINE_NOT_RUN = PLAN.headline_sources

headline_numbers_targets = lambda: [HEADLINE_TABLE, LANDING_RST]  # noqa: E731


rule headline_numbers:
    input:
        **HEADLINE_INPUTS,
    output:
        table=HEADLINE_TABLE,
        landing=LANDING_RST,
    params:
        # the static landing text itself, not its path: a checkout elsewhere (or newer
        # mtime) reruns nothing, an edit of the text reruns this rule
        static_text=Path(REPORT_LANDING_STATIC).read_text(),
        not_run=HEADLINE_NOT_RUN,
        spatial_fdr=config["spatial"]["fdr"],
        code_version=script_version("headline_numbers.py"),
    log:
        log_path("headline_numbers"),
    benchmark:
        benchmark_path("headline_numbers")
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        script_path("headline_numbers.py")
