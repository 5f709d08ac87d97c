"""Entry script of rule slide_model_train (library: emo.slide_models.run.train_slide_model)."""

import emo.smk
from emo.slide_models.run import TRAIN_OUTPUTS, job_setup, train_slide_model

snakemake = globals()["snakemake"]  # noqa: F821 (injected by Snakemake)

with emo.smk.rule_logging(snakemake.log[0]) as log:
    p, i, o = snakemake.params, snakemake.input, snakemake.output
    name = snakemake.wildcards.model
    settings, device, slides = job_setup(p.settings, snakemake.threads, p.samples, p.patients, i.features)
    log.info("training slide model %s on %s (%d threads)", name, device, snakemake.threads)
    train_slide_model(name, settings, slides, i.expression, {key: o[key] for key in TRAIN_OUTPUTS},
                      p.code_version, device)
