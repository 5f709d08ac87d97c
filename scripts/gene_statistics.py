"""Entry script of the gene_statistics rules: dispatches on the rule name to the
library (emo.stats.*, emo.figures). All logic lives in the library."""

import emo.smk
from emo.stats import settings

snakemake = globals()["snakemake"]  # noqa: F821 (injected by Snakemake)

with emo.smk.rule_logging(snakemake.log[0]):
    cfg = settings(snakemake.params.statistics)
    version = snakemake.params.code_version
    i, o, rule = snakemake.input, snakemake.output, snakemake.rule
    if rule in ("gene_statistics_validation", "gene_statistics_validation_ridge"):
        from emo.stats.validation import run_validation
        run_validation(i.prepared, i.splits, i.predictions, o.validation, o.selected, cfg, version)
    elif rule == "gene_statistics_model_comparison":
        from emo.stats.validation import run_model_comparison
        run_model_comparison({"emo": i.emo, "ridge": i.ridge}, o.table, cfg, version)
    elif rule == "gene_statistics_testing":
        from emo.stats.validation import run_testing
        run_testing(i.prepared, i.splits, i.predictions, i.selected, o.test, o.external, cfg, version)
    elif rule == "gene_statistics_proliferation":
        from emo.stats.clinical import run_proliferation
        run_proliferation(i.prepared, i.splits, i.predictions, i.clinical, i.validation, o.scores, o.table,
                          o.genes, cfg, version)
    elif rule == "gene_statistics_markers":
        from emo.stats.clinical import run_markers
        run_markers(i.prepared, i.splits, i.predictions, i.clinical, i.scores, o.summary, o.tests, cfg, version)
    elif rule == "gene_statistics_pam50":
        from emo.stats.clustering import run_pam50
        run_pam50(i.prepared, i.splits, i.predictions, i.clinical, o.clusters, o.ari, cfg, version)
    elif rule == "gene_statistics_er_models":
        from emo.stats.er_models import run_er_models
        run_er_models(i.prepared, i.splits, i.predictions, i.clinical, i.selected, o.models, o.summary,
                      cfg, version)
    elif rule == "gene_statistics_figures":
        from emo.figures import run_figures
        run_figures(dict(i.items()), dict(o.items()), cfg)
    else:
        raise RuntimeError(f"gene_statistics.py: unknown rule {rule!r}")
