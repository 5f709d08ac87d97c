"""Snakemake entry: train and apply one trait's tile classifiers (5 rounds + top-3 ensemble)."""

import pandas as pd
import torch

import emo.smk
from emo import trait_classifiers as tc
from emo.errors import InputTableError
from emo.stores.expression import open_expression_store

smk = snakemake  # noqa: F821
with emo.smk.rule_logging(smk.log[0]) as log:
    torch.set_num_threads(max(1, smk.threads))
    trait = smk.wildcards.trait
    with open_expression_store(smk.input.expression) as store:
        genes = store.genes()
        patients = store.patients()
        if trait not in genes:
            raise InputTableError(f"trait {trait!r} (config heterogeneity.traits) is not a gene of "
                                  f"{smk.input.expression}; it may have been removed by the variance filter "
                                  "(expression.min_variance) — choose another gene")
        values = pd.Series(store.column(genes.index(trait)).astype(float), index=patients)
    sheet = pd.DataFrame({"sample": smk.params.samples, "patient": smk.params.patients})
    values = values[values.index.isin(set(sheet["patient"]))]
    splits = pd.read_csv(smk.input.splits, sep="\t", dtype={"patient": str})
    device = smk.params.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    log.info("trait %s on %s: %d patients with expression", trait, device, len(values))
    feature_paths = dict(zip(smk.params.samples, smk.input.features))
    tc.run_trait(trait, sheet, feature_paths, values, splits, smk.params.config,
                 {k: smk.output[k] for k in ("auc", "slides", "rounds", "tiles", "models")},
                 smk.params.code_version, device=device)
