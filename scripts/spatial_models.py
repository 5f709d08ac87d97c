"""Snakemake entry: probe normalisation, LMMs (lme4), BH, per-slide Spearman, Ki67."""

import pandas as pd

import emo.smk
from emo import io, lme, provenance, spatial

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821
    smk = snakemake  # noqa: F821
    settings = smk.params.spatial
    fit = lme.fitter(settings["backend"])  # fails early with install instructions if R/lme4 is missing
    roi_preds = pd.concat([pd.read_csv(p, sep="\t", dtype={"sample": str, "roi": str})
                           for p in smk.input.roi_predictions], ignore_index=True)
    counts = spatial.load_probe_counts(smk.input.counts)
    ki67 = spatial.load_ki67(smk.input.ki67) if "ki67" in smk.input.keys() else None
    results = spatial.run_models(roi_preds, counts, settings, ki67=ki67, fit=fit)
    n_sig = int((results.probes["padj"] < settings["fdr"]).sum())
    log.info("%d probes analysed, %d with FDR < %g; %d dropped; %d ROIs excluded", len(results.probes), n_sig,
             settings["fdr"], len(results.dropped), len(results.excluded_rois))
    params = {k: settings[k] for k in sorted(settings) if k not in ("enabled",)}
    inputs = list(smk.input)
    for name, table in [("probes", results.probes), ("spearman", results.spearman),
                        ("dropped", results.dropped), ("roi_values", results.roi_values),
                        ("excluded_rois", results.excluded_rois), ("ki67", results.ki67),
                        ("ki67_spearman", results.ki67_spearman)]:
        if name in smk.output.keys():
            io.write_tsv(table, smk.output[name])
            provenance.write_sidecar(smk.output[name], smk.params.code_version, params, inputs)
