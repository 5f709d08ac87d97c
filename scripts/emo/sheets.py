"""Sample-sheet loading and validation.

Validation happens when the DAG is built, so a bad sheet fails before any job runs.
Messages name the row (1-based, header excluded), the column and what to do.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

from .errors import ConfigError, SampleSheetError
from .io import check_tab_separated
from .resolution import EXAMPLES, RANGE_TEXT, plausible_mpp, power_of_ten_guess

REQUIRED_COLUMNS = ("sample", "patient", "cohort", "slide")
OPTIONAL_COLUMNS = ("mpp", "split", "site")
VALID_SPLITS = ("train", "tune", "validation", "test", "external")
SAMPLE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def load_sample_sheet(path: str | Path, cohorts: Iterable[str]) -> pd.DataFrame:
    """Read and validate a sample sheet; returns it indexed by ``sample``."""
    path = Path(path)
    if not path.is_file():
        raise SampleSheetError(f"sample sheet {path} does not exist; set config key 'samples' to a TSV "
                               f"with columns {', '.join(REQUIRED_COLUMNS)}")
    sheet = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment="#")
    sheet.columns = [c.strip() for c in sheet.columns]
    check_tab_separated(sheet.columns, f"sample sheet {path} (config key 'samples')", SampleSheetError)
    missing = [c for c in REQUIRED_COLUMNS if c not in sheet.columns]
    if missing:
        raise SampleSheetError(f"sample sheet {path}: missing column(s) {', '.join(missing)}; "
                               f"required columns are {', '.join(REQUIRED_COLUMNS)}")
    unknown = [c for c in sheet.columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        raise SampleSheetError(f"sample sheet {path}: unknown column(s) {', '.join(unknown)}; "
                               f"allowed are {', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}")
    if sheet.empty:
        raise SampleSheetError(f"sample sheet {path} has no rows")
    for column in sheet.columns:
        sheet[column] = sheet[column].str.strip()
    cohorts = set(cohorts)
    for row_number, row in enumerate(sheet.itertuples(index=False), start=1):
        where = f"sample sheet {path}, row {row_number}"
        for column in REQUIRED_COLUMNS:
            if getattr(row, column) == "":
                raise SampleSheetError(f"{where}, column '{column}': empty; every row needs a {column}")
        if not SAMPLE_PATTERN.match(row.sample):
            raise SampleSheetError(f"{where}, column 'sample': {row.sample!r} is not a valid name; use letters, "
                                   "digits, '.', '_' and '-' only (it becomes a file name)")
        if row.cohort not in cohorts:
            raise SampleSheetError(f"{where}, column 'cohort': {row.cohort!r} is not a cohort of the config; "
                                   f"add it under config key 'cohorts' or use one of {sorted(cohorts)}")
        if "mpp" in sheet.columns and row.mpp != "":
            try:
                mpp = float(row.mpp)
            except ValueError:
                mpp = float("nan")
            if not (math.isfinite(mpp) and mpp > 0):
                raise SampleSheetError(f"{where}, column 'mpp': {row.mpp!r} is not a positive number of "
                                       f"µm per pixel (e.g. {EXAMPLES}); leave it empty to use "
                                       "the slide's metadata")
            if not plausible_mpp(mpp):
                guess = power_of_ten_guess(mpp)
                hint = f"; did you mean {guess:g}? (a power of ten off)" if guess is not None else ""
                raise SampleSheetError(
                    f"{where} (sample {row.sample!r}), column 'mpp': {row.mpp} µm per pixel is outside the "
                    f"plausible range of a slide scan, {RANGE_TEXT}{hint}; give the level-0 resolution in µm "
                    f"per pixel (e.g. {EXAMPLES}), or leave it empty to use the slide's metadata")
        if "split" in sheet.columns and row.split != "" and row.split not in VALID_SPLITS:
            raise SampleSheetError(f"{where}, column 'split': {row.split!r} is not one of {', '.join(VALID_SPLITS)}")
    duplicated = sheet["sample"][sheet["sample"].duplicated()]
    if not duplicated.empty:
        rows = [int(i) + 1 for i in sheet.index[sheet["sample"] == duplicated.iloc[0]]]
        raise SampleSheetError(f"sample sheet {path}, column 'sample': {duplicated.iloc[0]!r} appears in rows "
                               f"{rows}; sample names must be unique")
    for patient, group in sheet.groupby("patient", sort=True):
        if group["cohort"].nunique() > 1:
            raise SampleSheetError(f"sample sheet {path}: patient {patient!r} has slides in several cohorts "
                                   f"({sorted(group['cohort'].unique())}); a patient belongs to one cohort")
        if "split" in sheet.columns and group["split"].nunique() > 1:
            raise SampleSheetError(f"sample sheet {path}, column 'split': patient {patient!r} has slides in "
                                   f"different splits ({sorted(group['split'].unique())}); all slides of a "
                                   "patient must be in one split")
        if "site" in sheet.columns and group["site"].nunique() > 1:
            raise SampleSheetError(f"sample sheet {path}, column 'site': patient {patient!r} has slides from "
                                   f"different tissue source sites ({sorted(group['site'].unique())}); a "
                                   "patient's slides come from one site")
    if "mpp" not in sheet.columns:
        sheet["mpp"] = ""
    if "split" not in sheet.columns:
        sheet["split"] = ""
    if "site" not in sheet.columns:
        sheet["site"] = ""
    return sheet.set_index("sample", drop=False)


def resolve_slide_paths(sheet: pd.DataFrame, sheet_path: str | Path, require_existing: bool,
                        workdir: str | Path = ".") -> pd.DataFrame:
    """The sheet with each relative ``slide`` path resolved: next to the sheet first (a
    cohort folder holding its sheet and slides can be used from anywhere), else in the
    working directory (where the workflow writes generated slides, e.g. the demo's).
    Paths are kept relative to the working directory when they lie below it, so stores
    and logs do not record the machine's absolute paths.

    ``require_existing``: every slide must exist now (no rule of this run makes slides);
    a missing one fails before any job starts, naming the sample and the paths tried."""
    # abspath, not resolve: symlinked folders keep the names the user gave them
    sheet_dir = Path(os.path.abspath(sheet_path)).parent
    workdir = Path(os.path.abspath(workdir))
    resolved, missing = [], []
    for sample, slide in zip(sheet["sample"], sheet["slide"]):
        path = Path(slide).expanduser()
        tried = [path] if path.is_absolute() else list(dict.fromkeys([sheet_dir / path, workdir / path]))
        found = next((t for t in tried if t.exists()), None)
        if found is None:
            missing.append((sample, tried))
            found = tried[-1]  # a slide this run generates: the working-directory path
        found = Path(os.path.abspath(found))
        try:
            resolved.append(str(found.relative_to(workdir)))
        except ValueError:
            resolved.append(str(found))
    if missing and require_existing:
        lines = [f"  {sample}: " + " or ".join(str(t) for t in tried) for sample, tried in missing[:5]]
        more = f"\n  ... and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise SampleSheetError(
            f"sample sheet {sheet_path}, column 'slide': {len(missing)} slide file(s) not found (relative paths are "
            "looked up next to the sheet, then in the working directory):\n" + "\n".join(lines) + more
            + "\nfix the paths in the sheet or remove those rows")
    out = sheet.copy()
    out["slide"] = resolved
    return out


def slide_batches(samples: Iterable[str], n_batches: int,
                  groups: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """Config ``slide_batches``: the per-slide stages run as ``n_batches`` jobs per group
    instead of one job per slide. A sample's batch is a stable hash of its name, so adding
    a slide later moves no other slide (only its own batch reruns). ``groups`` (sample ->
    group name) keeps groups apart: the pipeline separates the slides models train on
    from the rest, so a new evaluation slide never rebuilds a training slide's stores
    (and with them the models). Returns {batch id: sorted samples}, ids
    ``<group><k>`` (``batch<k>`` without groups), empty batches left out; ``n_batches`` 0
    means no batching ({})."""
    if n_batches < 0:
        raise ConfigError(f"config key 'slide_batches': {n_batches} must be 0 (one job per slide) or a "
                          "positive number of jobs per per-slide stage")
    if n_batches == 0:
        return {}
    width = len(str(n_batches - 1))
    batches: dict[str, list[str]] = {}
    for sample in sorted(samples):
        index = int.from_bytes(hashlib.sha256(sample.encode()).digest()[:8], "big") % n_batches
        group = groups[sample] if groups is not None else "batch"
        batches.setdefault(f"{group}{index:0{width}d}", []).append(sample)
    return dict(sorted(batches.items()))
