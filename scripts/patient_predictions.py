"""Snakemake entry: patient-level predictions (emo.predictions)."""
import emo.smk
from emo import io, predictions, provenance, ridge, tumour_regions

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821
    p, inp, out = snakemake.params, snakemake.input, snakemake.output  # noqa: F821
    paths = dict(zip(p.samples, inp.slides))
    if "tumour_slides" in dict(inp.items()):  # predictions.patient_slides: largest_tumour
        chosen = set(tumour_regions.largest_tumour_slides(io.read_table(inp.tumour_slides)))
        log.info("largest tumour area: %d of %d slides kept", len(chosen & set(paths)), len(paths))
        paths = {s: path for s, path in paths.items() if s in chosen}
    # the gene models, then each ridge baseline (group = its name in the prediction stores)
    for group, path in [("", out.nn)] + [(name, out[name]) for name in ridge.BASELINE_INPUTS]:
        table = predictions.aggregate_patients(paths, dict(p.sample_patient), group)
        io.write_tsv(table, path)
        provenance.write_sidecar(path, p.code_version, {"model": group or "gene_models"}, inp.slides)
        log.info("%s: %d patients x %d genes", path, len(table), table.shape[1] - 1)
