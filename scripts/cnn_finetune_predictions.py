"""Snakemake entry: the fine-tuned CNNs' per-slide prediction stores and patient table
(the heads' layouts), the per-gene training summary and the training-curves figure."""
from pathlib import Path

import emo.smk
from emo import cnn_finetune, io, provenance

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821
    p, inp, out = snakemake.params, snakemake.input, snakemake.output  # noqa: F821
    genes = list(p.genes)
    predictions = dict(zip(genes, inp.predictions))
    training = dict(zip(genes, inp.training))
    slide_out = {Path(path).stem: path for path in out.slides}
    patients = cnn_finetune.collect_predictions(predictions, dict(p.sample_patient), slide_out, p.code_version,
                                                p.settings)
    io.write_tsv(patients, out.patients)
    provenance.write_sidecar(out.patients, p.code_version, {"cnn_finetune": dict(p.settings)}, list(inp.predictions))
    summary = cnn_finetune.summary_table(training, p.settings["max_epochs"])
    io.write_tsv(summary, out.summary)
    provenance.write_sidecar(out.summary, p.code_version, {"cnn_finetune": dict(p.settings)}, list(inp.training))
    cnn_finetune.plot_curves(training, out.figure)
    log.info("cnn_finetune: %d genes, %d slides, %d patients", len(genes), len(slide_out), len(patients))
