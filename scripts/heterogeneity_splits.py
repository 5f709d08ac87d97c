"""Snakemake entry: patient splits shared by all traits (held-out test + train/validation rounds)."""

import emo.smk
from emo import trait_classifiers as tc
from emo.io import read_table, write_tsv
from emo.provenance import write_sidecar

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821
    cfg = snakemake.params.config  # noqa: F821
    test_patients = None
    if cfg.get("test_set", "random") == "splits":
        project = read_table(snakemake.input.splits, dtype={"patient": str})  # noqa: F821
        test_patients = project.loc[project["split"].isin(["test", "external"]), "patient"]
    table = tc.split_patients(snakemake.params.patients, seed=int(cfg.get("seed", 2020)),  # noqa: F821
                              rounds=int(cfg.get("rounds", 5)), test_fraction=float(cfg.get("test_fraction", 0.1)),
                              validation_fraction=float(cfg.get("validation_fraction", 0.1)),
                              test_patients=test_patients)
    log.info("heterogeneity splits: %d patients, %d held-out test", len(table), (table["heldout"] == "test").sum())
    write_tsv(table, snakemake.output[0])  # noqa: F821
    write_sidecar(snakemake.output[0], snakemake.params.code_version, cfg)  # noqa: F821
