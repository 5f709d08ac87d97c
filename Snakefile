# emo: expression-morphology analysis of breast tumour H&E whole-slide images.
#
#   snakemake --cores 2                      # demo cohort, local
#   snakemake --profile profiles/slurm       # on a Slurm cluster (see README)
#
# One rule file per stage, named for what it produces. Each rule file defines
# `<stage>_targets()`; `all` collects them.

# The demo's config, unless config files are given on the command line: those then
# replace it rather than merge into it, so a user's own config does not inherit the
# demo's cohorts (README, "Running on your own cohort"). --config still overrides keys.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# Target-only rules run no code: never submit them to a cluster.
localrules:
    all,


include: "workflow/rules/common.smk"
include: "workflow/rules/demo_cohort.smk"
include: "workflow/rules/tile_stores.smk"
include: "workflow/rules/feature_stores.smk"
include: "workflow/rules/tumour_regions.smk"
include: "workflow/rules/peer_exports.smk"
include: "workflow/rules/expression.smk"
include: "workflow/rules/gene_models.smk"
include: "workflow/rules/cnn_finetune.smk"
include: "workflow/rules/predictions.smk"
include: "workflow/rules/slide_models.smk"
include: "workflow/rules/gene_statistics.smk"
include: "workflow/rules/model_comparison.smk"
include: "workflow/rules/spatial_validation.smk"
include: "workflow/rules/heterogeneity.smk"
include: "workflow/rules/clinical_classifiers.smk"
include: "workflow/rules/fusion_classifiers.smk"
include: "workflow/rules/pathway_enrichment.smk"
include: "workflow/rules/gene_statistics_ki67.smk"
include: "workflow/rules/gene_maps.smk"
include: "workflow/rules/headline_numbers.smk"


# Landing page of `snakemake --report`: workflow/report/workflow.rst, followed by the run's
# headline numbers once rule headline_numbers has written them (emo.headline.landing_page);
# figures are registered per stage in the rule files.
report: landing_page(REPORT_LANDING_STATIC)


onstart:
    refuse_cluster_batches()


rule all:
    input:
        tile_stores_targets(),
        feature_stores_targets(),
        tumour_regions_targets(),
        peer_exports_targets(),
        expression_targets(),
        gene_models_targets(),
        cnn_finetune_targets(),
        predictions_targets(),
        slide_models_targets(),
        gene_statistics_targets(),
        model_comparison_targets(),
        spatial_validation_targets(),
        heterogeneity_targets(),
        clinical_classifiers_targets(),
        fusion_classifiers_targets(),
        pathway_enrichment_targets(),
        gene_statistics_ki67_targets(),
        gene_maps_targets(),
        headline_numbers_targets(),
    default_target: True
