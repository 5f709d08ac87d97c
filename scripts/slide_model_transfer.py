"""Entry script of rule slide_model_transfer (library: emo.slide_models.transfer.run_transfer)."""

import torch

import emo.smk
from emo.errors import ConfigError
from emo.slide_models.run import SlideInput
from emo.slide_models.training import resolve_device
from emo.slide_models.transfer import run_transfer
from emo.stats.inputs import read_clinical

snakemake = globals()["snakemake"]  # noqa: F821 (injected by Snakemake)

with emo.smk.rule_logging(snakemake.log[0]) as log:
    p, i = snakemake.params, snakemake.input
    torch.set_num_threads(max(1, snakemake.threads))
    if not i.clinical:
        raise ConfigError("slide_models.transfer.enabled needs a clinical table (config key 'clinical')")
    settings = dict(p.settings)
    device = resolve_device(settings["device"])
    clinical = read_clinical(i.clinical, emo.smk.clinical_mapping(snakemake))
    slides = [SlideInput(s, patient, path) for s, patient, path in zip(p.samples, p.patients, i.features)]
    run_transfer(settings, slides, i.model, clinical, str(i.clinical), dict(snakemake.output.items()),
                 p.code_version, device)
    log.info("transfer of the HE2RNA representation to %s written", settings["transfer"]["target"])
