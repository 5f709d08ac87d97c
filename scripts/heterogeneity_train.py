"""Snakemake entry: train and apply one trait's tile classifiers (5 rounds + top-3 ensemble)."""

import h5py
import pandas as pd
import torch

import emo.smk
from emo import trait_classifiers as tc
from emo.errors import InputTableError

smk = snakemake  # noqa: F821
with emo.smk.rule_logging(smk.log[0]) as log:
    torch.set_num_threads(max(1, smk.threads))
    trait = smk.wildcards.trait
    with h5py.File(smk.input.expression, "r") as handle:
        genes = [g.decode() if isinstance(g, bytes) else str(g) for g in handle["genes"][...]]
        patients = [p.decode() if isinstance(p, bytes) else str(p) for p in handle["patients"][...]]
        if trait not in genes:
            raise InputTableError(f"trait {trait!r} (config heterogeneity.traits) is not a gene of "
                                  f"{smk.input.expression}; it may have been removed by the variance filter "
                                  "(expression.min_variance) — choose another gene")
        values = pd.Series(handle["values"][:, genes.index(trait)].astype(float), index=patients)
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
