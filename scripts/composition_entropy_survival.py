"""Snakemake entry: Kaplan-Meier / log-rank by composition-entropy group and Cox PH with
clinical covariates (the HTI's survival analysis, on the tumour-regions stage's entropy)."""

import pandas as pd

import emo.smk
from emo import survival
from emo.stats.inputs import read_clinical

smk = snakemake  # noqa: F821
with emo.smk.rule_logging(smk.log[0]) as log:
    composition = pd.read_csv(smk.input.composition, sep="\t", dtype={"sample": str, "patient": str})
    measure = survival.entropy_measure_table(composition, smk.params.training_samples)
    clinical = read_clinical(smk.input.clinical, emo.smk.clinical_mapping(smk))
    survival.run_survival(measure, clinical, {**smk.params.config, "hti": survival.ENTROPY},
                          {k: smk.output[k] for k in ("patients", "km", "logrank", "cox", "figure")},
                          smk.params.code_version, inputs=[smk.input.composition, smk.input.clinical])
    log.info("composition-entropy survival tables written to %s", smk.output.cox)
