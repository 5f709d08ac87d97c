"""Entry script of rule model_comparison (library: emo.stats.comparison.run_comparison)."""

import emo.smk
from emo.stats.comparison import run_comparison

snakemake = globals()["snakemake"]  # noqa: F821 (injected by Snakemake)

with emo.smk.rule_logging(snakemake.log[0]):
    p = snakemake.params
    run_comparison(dict(snakemake.input.items()), list(p.models), list(p.computed), dict(p.cost_sources),
                   dict(p.statistics), dict(snakemake.output.items()), p.code_version)
