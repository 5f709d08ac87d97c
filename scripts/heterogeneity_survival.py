"""Snakemake entry: Kaplan-Meier / log-rank by HTI group and Cox PH with clinical covariates."""

import pandas as pd

import emo.smk
from emo import survival
from emo.stats.inputs import read_clinical

smk = snakemake  # noqa: F821
with emo.smk.rule_logging(smk.log[0]) as log:
    hti = pd.read_csv(smk.input.hti, sep="\t", dtype={"sample": str, "patient": str})
    # one row per patient, tab-separated, columns and codings mapped (config key clinical_mapping)
    clinical = read_clinical(smk.input.clinical, emo.smk.clinical_mapping(smk))
    survival.run_survival(hti, clinical, smk.params.config,
                          {k: smk.output[k] for k in ("patients", "km", "logrank", "cox", "figure")},
                          smk.params.code_version, inputs=[smk.input.hti, smk.input.clinical])
    log.info("survival tables written to %s", smk.output.cox)
