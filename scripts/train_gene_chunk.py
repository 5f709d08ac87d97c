"""Snakemake entry: one gene chunk's models (emo.gene_models)."""
from pathlib import Path

import torch

import emo.smk
from emo import gene_models, io, predictions, provenance, tumour_regions
from emo.stores.expression import read_expression_store

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821
    p, inp, out, wc = snakemake.params, snakemake.input, snakemake.output, snakemake.wildcards  # noqa: F821
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    cfg = gene_models.TrainConfig.from_config(p.settings)
    table = io.read_table(inp.genes)
    chunk_genes = sorted(table.loc[(table["chunk"] == int(wc.chunk)) & table["kept"].astype(bool), "gene"].astype(str))
    log.info("chunk %s: %d genes pass the variance filter; head %s, device %s", wc.chunk, len(chunk_genes),
             cfg.head, gene_models.resolve_device(cfg.device))
    if chunk_genes:
        store = read_expression_store(inp.expression)
        stores = {Path(path).stem: path for path in io.read_manifest(inp.features)}
        tumour = tumour_regions.job_selection(snakemake)  # noqa: F821  (tile_selection: tumour)
        state = gene_models.train_chunk(chunk_genes, store, {s: stores[s] for s in p.train_samples},
                                        {s: stores[s] for s in p.tune_samples}, dict(p.sample_patient), cfg, tumour)
    else:
        state = gene_models.empty_state(cfg)
    state.update({"encoder": wc.encoder, "chunk": wc.chunk, "code_version": p.code_version})
    gene_models.save_state(state, out.model)
    predictions.save_chunk_arrays(out.arrays, state)
    summary = gene_models.summary_table(state)
    io.write_tsv(summary, out.table)
    provenance.write_sidecar(out.table, p.code_version, {"gene_models": dict(p.settings), "chunk": wc.chunk},
                             io.read_manifest(inp.features) + [inp.expression])
    log.info("done: median best epoch %s, %d stopped early", summary["best_epoch"].median() if len(summary) else "-",
             int(summary["stopped_early"].sum()))
