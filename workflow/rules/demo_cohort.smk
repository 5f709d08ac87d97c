# Stage: demo_cohort. The embedded demo cohort with planted truth, generated from
# `demo.seed` when `demo.enabled` (docs/demo_cohort.md):
#   {out_dir}/slides/{sample}.svs, {out_dir}/truth/{sample}.npz        (rule demo_slide)
#   {out_dir}/expression_{cohort}.tsv, clinical.tsv, spatial/*.tsv,
#   gene_sets.gmt, truth.json                                           (rule demo_tables)
# The files are pulled in as inputs of the tiling and expression stages; rule
# `demo_cohort` builds all of them.

import re  # noqa: E402

from emo.demo import annotations as demo_annotations  # noqa: E402
from emo.demo import design as demo_design  # noqa: E402

DEMO = PLAN.demo  # checked against the cohorts and the sample sheet by the plan
DEMO_DIR = config["demo"]["out_dir"]


# The demo files are inputs of the tiling and expression stages; nothing to add to `all`.
demo_cohort_targets = lambda: []  # noqa: E731


if DEMO:
    DEMO_SAMPLES = demo_design.sample_names(DEMO)
    DEMO_COHORTS = demo_design.cohorts(DEMO)
    DEMO_ANNOTATED = demo_annotations.annotated_samples(DEMO)
    DEMO_TABLES = {
        "clinical": f"{DEMO_DIR}/clinical.tsv",
        "rois": f"{DEMO_DIR}/spatial/rois.tsv",
        "probe_counts": f"{DEMO_DIR}/spatial/probe_counts.tsv",
        "ki67": f"{DEMO_DIR}/spatial/ki67.tsv",
        "gene_sets": f"{DEMO_DIR}/gene_sets.gmt",
        "truth": f"{DEMO_DIR}/truth.json",
    }

    # One rule body, like the per-slide stages (the sheet equals the demo design, so the
    # batches hold the demo's slides).
    for _rule, _samples in per_slide_units("demo_slide"):

        rule:
            name:
                _rule
            output:
                slide=unit_paths(f"{DEMO_DIR}/slides/{{sample}}.svs", _samples),
                truth=unit_paths(f"{DEMO_DIR}/truth/{{sample}}.npz", _samples),
            log:
                unit_log("demo_slide", _samples),
            benchmark:
                unit_benchmark("demo_slide", _samples)
            wildcard_constraints:
                sample="|".join(re.escape(s) for s in DEMO_SAMPLES),
            conda:
                "../../envs/slides.yaml"
            threads: 1
            resources:
                mem_mb=1500,
                runtime=unit_runtime(10, _samples),
            params:
                samples=unit_samples(_samples),
                demo=demo_design.slide_params(DEMO),
                # not demo.tables: editing the table generator must not re-render slides
                code_version=script_version("demo_slide.py"),
            script:
                script_path("demo_slide.py")

    rule demo_tables:
        input:
            truth=expand(f"{DEMO_DIR}/truth/{{sample}}.npz", sample=DEMO_SAMPLES),
        output:
            expression=expand(f"{DEMO_DIR}/expression_{{cohort}}.tsv", cohort=DEMO_COHORTS),
            # region annotations of some slides (tumour_regions stage)
            annotations=expand(f"{DEMO_DIR}/annotations/{{sample}}.geojson", sample=DEMO_ANNOTATED),
            **DEMO_TABLES,
        log:
            log_path("demo_tables"),
        benchmark:
            benchmark_path("demo_tables")
        conda:
            "../../envs/stats.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=20,
        params:
            demo=DEMO,
            code_version=script_version("demo_tables.py"),
        script:
            script_path("demo_tables.py")

    rule demo_cohort:
        input:
            expand(f"{DEMO_DIR}/slides/{{sample}}.svs", sample=DEMO_SAMPLES),
            expand(f"{DEMO_DIR}/expression_{{cohort}}.tsv", cohort=DEMO_COHORTS),
            list(DEMO_TABLES.values()),
        localrule: True
