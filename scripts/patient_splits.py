"""Snakemake entry: results/splits/patients.tsv (emo.splits)."""
import pandas as pd

import emo.smk
from emo import io, provenance, splits

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821
    p = snakemake.params  # noqa: F821
    sheet = pd.DataFrame(p.sheet, columns=["patient", "cohort", "split", "site"])
    table = splits.assign_splits(sheet, dict(p.roles), p.seed, p.proportions, by=p.by, site_source=p.site_source)
    io.write_tsv(table, snakemake.output[0])  # noqa: F821
    provenance.write_sidecar(snakemake.output[0], p.code_version,  # noqa: F821
                             {"seed": p.seed, "proportions": splits.check_proportions(p.proportions),
                              # by patient (the default) the sidecar stays as before site splits existed
                              **({"by": p.by, "site_source": p.site_source} if p.by == "site" else {})})
    log.info("%d patients: %s", len(table), table["split"].value_counts().sort_index().to_dict())
