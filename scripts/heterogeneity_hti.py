"""Snakemake entry: tensor molecular cartographies, per-slide HTI and heterogeneity maps."""

import emo.smk
from emo import heterogeneity as het

smk = snakemake  # noqa: F821
with emo.smk.rule_logging(smk.log[0]) as log:
    traits = list(smk.params.traits)
    predictions = (dict(zip(smk.params.samples, smk.input.predictions)) if len(smk.input.predictions) else None)
    het.run_hti(traits, dict(zip(traits, smk.input.tiles)), dict(zip(traits, smk.input.slides)), smk.params.config,
                {k: smk.output[k] for k in ("table", "cartographies", "figure")}, smk.params.code_version,
                prediction_paths=predictions)
    log.info("HTI for %d traits written to %s", len(traits), smk.output.table)
