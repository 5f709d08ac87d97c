"""Snakemake entry: results/expression/training.h5 + genes.tsv (emo.expression)."""
import emo.smk
from emo import expression, io, provenance
from emo.stores.expression import write_training_store

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821
    p, inp, out = snakemake.params, snakemake.input, snakemake.output  # noqa: F821
    table, matrices = expression.load_cohorts(p.patients, p.cohorts, inp.matrices, p.input_kind)
    result = expression.prepare_training(matrices, table, p.reference, p.min_variance, p.gene_chunk_size)
    params = {"input": p.input_kind, "min_variance": p.min_variance, "gene_chunk_size": p.gene_chunk_size,
              "reference": p.reference}
    write_training_store(out.store, result, provenance.base_attrs(p.code_version, params))
    io.write_tsv(result["gene_table"], out.genes)
    provenance.write_sidecar(out.genes, p.code_version, params, inp.matrices)
    log.info("%d of %d genes kept (variance > %s over %d training patients)", len(result["genes"]),
             len(result["genes_all"]), p.min_variance, sum(s == "train" for s in result["split"]))
