# Stage: pathway_enrichment (paper 001, "Gene set enrichment analysis"). Genes ranked by
# their validation statistics, GSEA preranked on each user-supplied GMT file (gseapy,
# cross-checked against a numpy reference of the same test) and the hypergeometric
# over-representation of the genes not predicted well. Reads only validation.tsv and the
# gene-set files, so an enrichment setting reruns this rule alone. docs/pathway_enrichment.md.
#   results/enrichment/{encoder}/gsea.tsv, ora.tsv, agreement.tsv, curves.tsv, enrichment.png

ENRICHMENT = config["enrichment"]
ENRICHMENT_DIR = "results/enrichment/{encoder}"
ENRICHMENT_ON = bool(ENRICHMENT["enabled"] and ENRICHMENT["gene_sets"])


# (a lambda: `snakemake --lint` flags `def` beside rules)
pathway_enrichment_targets = lambda: (  # noqa: E731
    [f"results/enrichment/{ENCODER}/{name}" for name in ("gsea.tsv", "ora.tsv", "agreement.tsv", "enrichment.png")]
    if ENRICHMENT_ON else [])


rule pathway_enrichment:
    input:
        validation="results/statistics/{encoder}/validation.tsv",
        gene_sets=ENRICHMENT["gene_sets"],
    output:
        gsea=f"{ENRICHMENT_DIR}/gsea.tsv",
        ora=f"{ENRICHMENT_DIR}/ora.tsv",
        agreement=f"{ENRICHMENT_DIR}/agreement.tsv",
        curves=f"{ENRICHMENT_DIR}/curves.tsv",
        figure=report(f"{ENRICHMENT_DIR}/enrichment.png", caption="../report/pathway_enrichment.rst",
                      category="Pathway enrichment", labels={"figure": "enrichment", "encoder": "{encoder}"}),
    params:
        enrichment={k: v for k, v in ENRICHMENT.items() if k not in ("enabled", "gene_sets")},
        code_version=script_version("pathway_enrichment.py"),
    log:
        log_path("pathway_enrichment", "encoder"),
    benchmark:
        benchmark_path("pathway_enrichment", "encoder")
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        script_path("pathway_enrichment.py")
