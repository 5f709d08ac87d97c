# Stage spatial_validation: ROI predictions vs spatial transcriptomics with lme4.
# Settings, input functions and spatial_validation_targets() live in
# spatial_validation_functions.smk (the linter wants functions and rules apart).


include: "spatial_validation_functions.smk"


checkpoint spatial_rois:
    input:
        rois=SPATIAL["rois"] or [],
    output:
        rois="results/spatial/rois.tsv",
    log:
        log_path("spatial_rois"),
    benchmark:
        benchmark_path("spatial_rois")
    params:
        code_version=script_version("spatial_rois.py"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/stats.yaml"
    script:
        script_path("spatial_rois.py")


rule spatial_roi_predictions:
    input:
        rois="results/spatial/rois.tsv",
        counts=SPATIAL["probe_counts"] or [],
        tiles=encoder_tile_store,
        predictions="results/predictions/{encoder}/slides/{sample}.h5",
    output:
        table=f"{SPATIAL_DIR}/rois/{{sample}}.tsv",
    log:
        log_path("spatial_roi_predictions", "encoder", "sample"),
    benchmark:
        benchmark_path("spatial_roi_predictions", "encoder", "sample")
    params:
        spatial={k: SPATIAL[k] for k in ("multi_gene_probes", "probe_gene_map", "ki67", "proliferation_genes")},
        code_version=script_version("spatial_roi_predictions.py"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    conda:
        "../../envs/stats.yaml"
    script:
        script_path("spatial_roi_predictions.py")


rule spatial_models:
    input:
        unpack(_spatial_model_inputs),
    output:
        **_spatial_model_outputs(),
    log:
        log_path("spatial_models", "encoder"),
    benchmark:
        benchmark_path("spatial_models", "encoder")
    params:
        spatial={k: SPATIAL[k] for k in ("negative_probes", "multi_gene_probes", "probe_gene_map", "min_variance", "pseudocount",
                                         "ki67", "ki67_pseudocount", "proliferation_genes", "min_tile_coverage", "backend",
                                         "fdr")},
        code_version=script_version("spatial_models.py"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/r_lme4.yaml"
    script:
        script_path("spatial_models.py")


rule spatial_figures:
    input:
        probes=f"{SPATIAL_DIR}/probes.tsv",
        spearman=f"{SPATIAL_DIR}/spearman.tsv",
    output:
        padj=report(f"{SPATIAL_DIR}/figures/padj.png", caption="../report/spatial_padj.rst",
                    category="Spatial validation"),
        coefficients=report(f"{SPATIAL_DIR}/figures/coefficients.png",
                            caption="../report/spatial_coefficients.rst", category="Spatial validation"),
        spearman=report(f"{SPATIAL_DIR}/figures/spearman.png", caption="../report/spatial_spearman.rst",
                        category="Spatial validation"),
    log:
        log_path("spatial_figures", "encoder"),
    benchmark:
        benchmark_path("spatial_figures", "encoder")
    params:
        spatial={k: SPATIAL[k] for k in ("fdr",)},
        code_version=script_version("spatial_figures.py"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/stats.yaml"
    script:
        script_path("spatial_figures.py")


rule spatial_overlay:
    input:
        rois="results/spatial/rois.tsv",
        probes=f"{SPATIAL_DIR}/probes.tsv",
        slide=slide_path,
        tiles=encoder_tile_store,
        predictions="results/predictions/{encoder}/slides/{sample}.h5",
    output:
        png=report(f"{SPATIAL_DIR}/overlays/{{sample}}.png", caption="../report/spatial_overlay.rst",
                   category="Spatial validation", subcategory="ROI overlays"),
    log:
        log_path("spatial_overlay", "encoder", "sample"),
    benchmark:
        benchmark_path("spatial_overlay", "encoder", "sample")
    params:
        spatial={k: SPATIAL[k] for k in ("overlay_probe", "thumbnail_px", "multi_gene_probes", "probe_gene_map")},
        code_version=script_version("spatial_overlay.py"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
    conda:
        "../../envs/stats.yaml"
    script:
        script_path("spatial_overlay.py")
