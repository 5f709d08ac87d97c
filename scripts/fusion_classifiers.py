"""Snakemake entry: image + expression fusion for subtype classification, its tables,
attention store and figures (emo.classifiers.fusion)."""

import pandas as pd

import emo.smk
from emo.classifiers import fusion
from emo.classifiers.fusion_figures import attention_figure, confusion_figure, metrics_figure
from emo.io import write_tsv
from emo.provenance import write_sidecar
from emo.slide_models.run import job_setup
from emo.stats.inputs import read_clinical
from emo.stores.expression import read_expression_frame
from emo.stores.fusion import write_fusion_attention

smk = snakemake  # noqa: F821
with emo.smk.rule_logging(smk.log[0]) as log:
    cfg, device, slides = job_setup(smk.params.config, smk.threads, smk.params.samples, smk.params.patients,
                                    smk.input.features)
    table = read_clinical(smk.input.clinical, emo.smk.clinical_mapping(smk))
    sheet = pd.DataFrame({"sample": [s.sample for s in slides], "patient": [s.patient for s in slides]})
    splits = pd.read_csv(smk.input.splits, sep="\t", dtype={"patient": str})
    result = fusion.run(sheet, {s.sample: s.features for s in slides}, read_expression_frame(smk.input.expression),
                        table, smk.input.clinical, splits, cfg, device=device)
    inputs = sorted(smk.input.features) + [smk.input.expression, smk.input.clinical, smk.input.splits]
    for key in ("metrics", "summary", "predictions", "confusion", "folds", "targets", "missing"):
        write_tsv(result[key], smk.output[key])
        write_sidecar(smk.output[key], smk.params.code_version, cfg, inputs)
    store = fusion.attention_store(result, cfg, smk.params.code_version)
    write_fusion_attention(smk.output.attention, store)
    metrics_figure(result["metrics"], smk.output.metrics_figure)
    confusion_figure(result["confusion"], smk.output.confusion_figure)
    attention_figure(store, result["predictions"], cfg["attention_figure_target"], cfg["attention_figure_patients"],
                     cfg["attention_figure_features"], smk.output.attention_figure)
    for row in result["summary"].to_dict("records"):
        log.info("%s %s %s: best unimodal %s %.3f, best fusion %s %.3f (image-only %.3f)", row["target"], row["set"],
                 row["metric"], row["best_unimodal"], row["best_unimodal_value"], row["best_fusion"],
                 row["best_fusion_value"], row["image_value"])
