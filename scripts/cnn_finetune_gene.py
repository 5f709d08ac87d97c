"""Snakemake entry: one gene's fine-tuned Inception V3 (emo.cnn_finetune): training,
resumed from results/cnn_finetune/{gene}/state after a preemption, kept epochs and the
best epoch's tile predictions of the prediction slides."""
import torch

import emo.smk
from emo import cnn_finetune

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821
    p, inp, out, wc = snakemake.params, snakemake.input, snakemake.output, snakemake.wildcards  # noqa: F821
    torch.set_num_threads(max(1, snakemake.threads - p.settings["num_workers"]))  # noqa: F821
    slides = {s: cnn_finetune.SlideInput(s, slide, store, p.mpp[s])
              for s, slide, store in zip(p.samples, inp.slides, inp.tiles)}
    cnn_finetune.run_gene_job(
        wc.gene, inp.expression, slides, p.train_samples, p.tune_samples, p.predict_samples, dict(p.sample_patient),
        dict(p.settings), p.stain_method, p.code_version,
        {"model": out.model, "training": out.training, "kept": out.kept, "epochs": out.epochs,
         "predictions": out.predictions}, p.state_dir)
