# Input and target functions of gene_statistics.smk, kept in their own file because
# `snakemake --lint` wants functions and rules apart.


def _statistics_figure_inputs(wildcards):
    files = {key: path.format(encoder=wildcards.encoder) for key, path in STATS_INPUTS.items()}
    base = STATS_DIR.format(encoder=wildcards.encoder)
    files.update(validation=f"{base}/validation.tsv", test=f"{base}/test.tsv")
    if STATS_CLINICAL:
        files.update(clinical=STATS_CLINICAL, proliferation_scores=f"{base}/proliferation_scores.tsv",
                     proliferation=f"{base}/proliferation.tsv", pam50_clusters=f"{base}/pam50_clusters.tsv")
    return files

def gene_statistics_targets(encoder=None):
    base = STATS_DIR.format(encoder=encoder or ENCODER)
    names = ["validation.tsv", "selected_genes.tsv", "test.tsv", "external.tsv"]
    if STATS_CLINICAL:
        names += ["proliferation_scores.tsv", "proliferation.tsv", "proliferation_genes.tsv",
                  "markers_summary.tsv", "markers_tests.tsv", "pam50_clusters.tsv", "pam50_clustering.tsv",
                  "er_models.tsv", "er_summary.tsv"]
    if STATS["ridge_baseline"]:
        names += ["ridge/validation.tsv", "ridge/selected_genes.tsv", "colour_texture/validation.tsv",
                  "colour_texture/selected_genes.tsv", "model_comparison.tsv"]
    names += [f"figures/{name}" for name, _ in _STATS_FIGURES.values()]
    return [f"{base}/{name}" for name in names]
