"""Snakemake entry: expression, clinical and spatial tables and truth.json of the demo cohort."""

from pathlib import Path

import emo.smk
from emo.demo.tables import write_tables

with emo.smk.rule_logging(snakemake.log[0]):  # noqa: F821
    # every output lies under the demo folder, the parent of truth.json
    out_dir = Path(snakemake.output.truth).parent  # noqa: F821
    written = write_tables(snakemake.params.demo, snakemake.input.truth, out_dir,  # noqa: F821
                           snakemake.params.code_version)  # noqa: F821
    expected = {str(p) for p in snakemake.output}  # noqa: F821
    missing = expected - {str(p) for p in written.values()}
    if missing:
        raise RuntimeError(f"demo_tables: outputs not written: {sorted(missing)}")
