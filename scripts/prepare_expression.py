"""Snakemake entry: results/expression/prepared.h5 (emo.expression)."""
import emo.smk
from emo import expression, provenance
from emo.stores.expression import read_expression_store, write_prepared_store

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821
    p, inp, out = snakemake.params, snakemake.input, snakemake.output  # noqa: F821
    table, matrices = expression.load_cohorts(p.patients, p.cohorts, inp.matrices, p.input_kind)
    training = read_expression_store(inp.training)
    result = expression.apply_normalisation(matrices, table, training, dict(p.roles))
    write_prepared_store(out[0], result, provenance.base_attrs(p.code_version, {"input": p.input_kind}))
    log.info("prepared %d patients x %d genes", len(result["patients"]), len(result["genes"]))
