"""Snakemake entry: ridge baseline on slide-mean features (emo.ridge)."""
import pandas as pd

import emo.smk
from emo import io, provenance, ridge
from emo.stores.expression import read_expression_store
from emo.stores.models import write_ridge_store

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821
    p, inp, out = snakemake.params, snakemake.input, snakemake.output  # noqa: F821
    store = read_expression_store(inp.expression)
    model = ridge.train_baseline(store.genes, store, dict(zip(p.samples, inp.train)), dict(p.sample_patient),
                                 p.alphas, p.folds)
    params = {"alphas": list(p.alphas), "folds": p.folds}
    write_ridge_store(out.model, model, provenance.base_attrs(p.code_version, params))
    table = pd.DataFrame({"gene": model["genes"], "alpha": model["alpha"], "cv_mse": model["cv_mse"]})
    io.write_tsv(table, out.table)
    provenance.write_sidecar(out.table, p.code_version, params, list(inp.train) + [inp.expression])
    log.info("ridge: %d genes, %d slides; median alpha %g", len(table), len(p.samples), table["alpha"].median())
