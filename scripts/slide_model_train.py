"""Entry script of rule slide_model_train (library: emo.slide_models.run.train_slide_model)."""

import torch

import emo.smk
from emo.slide_models.run import TRAIN_OUTPUTS, SlideInput, train_slide_model
from emo.slide_models.training import resolve_device

snakemake = globals()["snakemake"]  # noqa: F821 (injected by Snakemake)

with emo.smk.rule_logging(snakemake.log[0]) as log:
    p, i, o = snakemake.params, snakemake.input, snakemake.output
    torch.set_num_threads(max(1, snakemake.threads))
    name = snakemake.wildcards.model
    settings = dict(p.settings)
    device = resolve_device(settings["device"])
    log.info("training slide model %s on %s (%d threads)", name, device, snakemake.threads)
    slides = [SlideInput(s, patient, path) for s, patient, path in zip(p.samples, p.patients, i.features)]
    train_slide_model(name, settings, slides, i.expression, {key: o[key] for key in TRAIN_OUTPUTS},
                      p.code_version, device)
