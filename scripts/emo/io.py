"""Atomic output helpers: write to a temporary file beside the target, then rename.

A killed job therefore never leaves a half-written store or table under the final
name, and Snakemake's incomplete-output tracking never sees a corrupt file.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import pandas as pd


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path; on success rename it onto ``path``, else delete it."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp.{os.getpid()}")
    try:
        yield tmp
        if tmp.exists():
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_tsv(df: pd.DataFrame, path: str | Path, index: bool = False,
              float_format: str = "%.10g") -> None:
    """Deterministic TSV: fixed float format, LF line ends, atomic."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=index, float_format=float_format, lineterminator="\n")


def read_table(path: str | Path, **kwargs) -> pd.DataFrame:
    """Read TSV, CSV or Parquet by extension."""
    path = Path(path)
    suffixes = "".join(path.suffixes).lower()
    if suffixes.endswith(".parquet") or suffixes.endswith(".pq"):
        return pd.read_parquet(path, **kwargs)
    if suffixes.endswith(".csv") or suffixes.endswith(".csv.gz"):
        return pd.read_csv(path, **kwargs)
    return pd.read_csv(path, sep="\t", **kwargs)


def wrong_separator(columns) -> str | None:
    """The separator a table read as TSV was really written with: "comma" or "semicolon"
    when its single column's header holds commas or semicolons, else None."""
    columns = [str(c) for c in columns]
    if len(columns) != 1:
        return None
    header = columns[0]
    counts = {"comma": header.count(","), "semicolon": header.count(";")}
    name = max(counts, key=counts.get)
    return name if counts[name] else None


def check_tab_separated(columns, what: str, error_class, fix: str = "") -> None:
    """Raise ``error_class`` when a table read as tab-separated has one column whose header
    holds commas or semicolons: the file is comma/semicolon-separated. ``what`` names the
    file (e.g. "sample sheet samples.tsv (config key 'samples')")."""
    separator = wrong_separator(columns)
    if separator is None:
        return
    header = str(list(columns)[0])
    shown = header if len(header) <= 80 else header[:77] + "..."
    raise error_class(f"{what} is {separator}-separated (its header {shown!r} reads as one column); the file "
                      "must be tab-separated: save it as TSV (tab-delimited text)" + (f" {fix}" if fix else ""))


def write_manifest(paths, out_path: str | Path) -> None:
    """A one-column TSV listing files (sorted). Collector rules write one so that a
    many-to-many dependency (every slide x every gene chunk) becomes many-to-one-to-many:
    the DAG then grows with slides + chunks, not slides x chunks."""
    frame = pd.DataFrame({"path": sorted(str(p) for p in paths)})
    write_tsv(frame, out_path)


def read_manifest(path: str | Path) -> list[str]:
    return pd.read_csv(path, sep="\t", dtype=str)["path"].tolist()
