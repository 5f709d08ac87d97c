"""Entry script of rule headline_numbers: the run's headline numbers for the report's
landing page (library: emo.headline)."""

import emo.smk
from emo.headline import write_headline

snakemake = globals()["snakemake"]  # noqa: F821 (injected by Snakemake)

with emo.smk.rule_logging(snakemake.log[0]) as log:
    sources = dict(snakemake.input.items())
    p = snakemake.params
    table = write_headline(sources, dict(p.not_run), p.static_text, float(p.spatial_fdr),
                           snakemake.output.table, snakemake.output.landing, p.code_version,
                           {"not_run": dict(p.not_run), "spatial_fdr": p.spatial_fdr})
    log.info("headline: %d numbers, %d stages not run", int((table["status"] == "ok").sum()),
             int((table["status"] == "not_run").sum()))
