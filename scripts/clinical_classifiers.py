"""Snakemake entry: tile classifiers of the clinical labels, their metrics and figures
(emo.classifiers.clinical)."""

import pandas as pd
import torch

import emo.smk
from emo.classifiers import clinical
from emo.classifiers.figures import confusion_figure, roc_figure
from emo.io import atomic_path, write_tsv
from emo.provenance import write_sidecar
from emo.stats.inputs import read_clinical

smk = snakemake  # noqa: F821
with emo.smk.rule_logging(smk.log[0]) as log:
    torch.set_num_threads(max(1, smk.threads))
    cfg = smk.params.config
    device = smk.params.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    table = read_clinical(smk.input.clinical, emo.smk.clinical_mapping(smk))
    sheet = pd.DataFrame({"sample": smk.params.samples, "patient": smk.params.patients})
    splits = pd.read_csv(smk.input.splits, sep="\t", dtype={"patient": str})
    result = clinical.run(sheet, dict(zip(smk.params.samples, smk.input.features)), table, smk.input.clinical,
                          splits, cfg, device=device)
    inputs = sorted(smk.input.features) + [smk.input.clinical, smk.input.splits]
    for key in ("metrics", "patients", "confusion", "status", "comparison"):
        write_tsv(result[key], smk.output[key])
        write_sidecar(smk.output[key], smk.params.code_version, cfg, inputs)
    with atomic_path(smk.output.models) as tmp:
        torch.save({"code_version": smk.params.code_version, "config": cfg, "labels": result["models"]}, tmp)
    classes = {label: result["models"][label]["classes"] for label in result["labels"]}
    roc_figure(result["patients"], result["metrics"], result["labels"], classes, smk.output.roc)
    confusion_figure(result["confusion"], result["labels"], classes, smk.output.confusion_figure)
    for _, row in clinical.patient_auc_check(result["metrics"]).iterrows():
        log.info("%s %s %s (held-out patients): %.3f (%.3f-%.3f), n=%d", row["label"], row["metric"], row["class"],
                 row["value"], row["ci_lower"], row["ci_upper"], row["n"])
    pooled = result["comparison"][result["comparison"]["set"] == clinical.POOLED]
    for _, row in pooled.iterrows():
        log.info("comparison %s %s %s %s (held-out patients): %.3f", row["label"], row["metric"], row["class"],
                 row["model"], row["value"])
