"""Snakemake entry: results/splits/patients.tsv (emo.splits)."""
import pandas as pd

import emo.smk
from emo import io, provenance, splits

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821
    p = snakemake.params  # noqa: F821
    sheet = pd.DataFrame(p.sheet, columns=["patient", "cohort", "split"])
    table = splits.assign_splits(sheet, dict(p.roles), p.seed, p.proportions)
    io.write_tsv(table, snakemake.output[0])  # noqa: F821
    provenance.write_sidecar(snakemake.output[0], p.code_version,  # noqa: F821
                             {"seed": p.seed, "proportions": splits.check_proportions(p.proportions)})
    log.info("%d patients: %s", len(table), table["split"].value_counts().sort_index().to_dict())
