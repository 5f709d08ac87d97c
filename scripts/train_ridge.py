"""Snakemake entry: the two ridge baselines on slide means of the feature stores, one on
the encoder's features, one on the 40 colour/texture descriptors (emo.ridge)."""
import pandas as pd

import emo.smk
from emo import io, provenance, ridge
from emo.stores.expression import read_expression_store
from emo.stores.models import write_ridge_store

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821
    p, inp, out = snakemake.params, snakemake.input, snakemake.output  # noqa: F821
    store = read_expression_store(inp.expression)
    for name, dataset in ridge.BASELINE_INPUTS.items():
        model = ridge.train_baseline(store.genes, store, dict(zip(p.samples, inp.train)), dict(p.sample_patient),
                                     p.alphas, p.folds, dataset=dataset)
        params = {"alphas": list(p.alphas), "folds": p.folds, "inputs": dataset}
        write_ridge_store(out[name], model, provenance.base_attrs(p.code_version, params))
        table = pd.DataFrame({"gene": model["genes"], "alpha": model["alpha"], "cv_mse": model["cv_mse"]})
        io.write_tsv(table, out[f"{name}_table"])
        provenance.write_sidecar(out[f"{name}_table"], p.code_version, params, list(inp.train) + [inp.expression])
        log.info("%s baseline (slide means of /%s): %d genes, %d slides; median alpha %g", name, dataset,
                 len(table), len(p.samples), table["alpha"].median())
