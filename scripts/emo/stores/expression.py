"""The expression stores (docs/data_contracts.md, "Expression and splits"):
``results/expression/training.h5`` (what training reads) and
``results/expression/prepared.h5`` (every patient of the sample sheet).

Both hold ``/values`` float32 (patients x genes), ``/patients``, ``/genes``,
``/cohort``, ``/split`` and ``/offsets/<cohort>``; the training store adds
``/genes_all`` and ``/reference_median``. :class:`ExpressionStore` is also
indexable by field name (``store["genes"]``) so it passes where the domain code takes the
result dicts of :mod:`emo.expression`. :func:`open_expression_store` reads names
without the matrix and the matrix column by column.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import h5py
import numpy as np
import pandas as pd

from ..expression import FIT_SPLITS
from ..io import atomic_path
from ._h5 import ItemAccess, read_attrs, read_strs, write_attrs, write_strs

OFFSETS_PROVENANCE = (
    "per-gene offsets added to each cohort (/offsets/<cohort>, over /genes): training cohorts "
    "median(reference train+validation) - median(cohort train+validation); external cohorts "
    "median(reference train+validation) - median(all cohort patients); reference offset 0")


@dataclass(eq=False)
class ExpressionStore(ItemAccess):
    values: np.ndarray                  # /values (patients, genes) float32
    patients: list[str]                 # /patients, sorted
    genes: list[str]                    # /genes, sorted (kept genes)
    cohort: list[str]                   # /cohort, per patient
    split: list[str]                    # /split, per patient
    offsets: dict[str, np.ndarray]      # /offsets/<cohort> float64
    reference: str                      # attr reference (cohort)
    attrs: dict = field(default_factory=dict)      # root attrs
    genes_all: list[str] | None = None             # /genes_all (training store only)
    reference_median: np.ndarray | None = None     # /reference_median float64 (training store only)


def _write_common(h5: h5py.File, result: Mapping) -> None:
    h5.create_dataset("values", data=np.asarray(result["values"], dtype=np.float32))
    for key in ("patients", "genes", "cohort", "split"):
        write_strs(h5, key, result[key])


def _write_offsets(h5: h5py.File, offsets: Mapping[str, np.ndarray]) -> None:
    grp = h5.create_group("offsets")
    for name, offset in sorted(offsets.items()):
        grp.create_dataset(name, data=np.asarray(offset, dtype=np.float64))


def write_training_store(path: str | Path, result: Mapping, attrs: Mapping[str, str]) -> None:
    """``result``: :func:`emo.expression.prepare_training`'s dict (or an ExpressionStore with
    ``fit_patients``); ``attrs``: provenance attrs."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            _write_common(h5, result)
            write_strs(h5, "genes_all", result["genes_all"])
            h5.create_dataset("reference_median", data=np.asarray(result["reference_median"], dtype=np.float64))
            _write_offsets(h5, result["offsets"])
            h5.attrs["reference"] = result["reference"]
            h5.attrs["fit_splits"] = json.dumps(list(FIT_SPLITS))
            h5.attrs["fit_patients"] = json.dumps(result["fit_patients"], sort_keys=True)
            write_attrs(h5, attrs)


def write_prepared_store(path: str | Path, result: Mapping, attrs: Mapping[str, str]) -> None:
    """``result``: :func:`emo.expression.apply_normalisation`'s dict; ``attrs``: provenance attrs."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            _write_common(h5, result)
            _write_offsets(h5, result["offsets"])
            h5.attrs["reference"] = result["reference"]
            h5.attrs["offsets_provenance"] = OFFSETS_PROVENANCE
            write_attrs(h5, attrs)


def read_expression_store(path: str | Path) -> ExpressionStore:
    """training.h5 or prepared.h5 in memory (``genes_all``/``reference_median`` None for prepared.h5)."""
    with h5py.File(path, "r") as h5:
        return ExpressionStore(
            values=h5["values"][:], patients=read_strs(h5["patients"]), genes=read_strs(h5["genes"]),
            cohort=read_strs(h5["cohort"]), split=read_strs(h5["split"]),
            offsets={name: h5["offsets"][name][:] for name in h5["offsets"]}, reference=str(h5.attrs["reference"]),
            attrs=read_attrs(h5), genes_all=read_strs(h5["genes_all"]) if "genes_all" in h5 else None,
            reference_median=h5["reference_median"][:] if "reference_median" in h5 else None,
        )


def read_expression_frame(path: str | Path) -> pd.DataFrame:
    """prepared.h5 (or training.h5) as a patients x genes DataFrame."""
    with open_expression_store(path) as store:
        return pd.DataFrame(store.values(), index=pd.Index(store.patients(), name="patient"), columns=store.genes())


class ExpressionStoreReader:
    """An open expression store: names on request, the matrix whole or by columns."""

    def __init__(self, handle: h5py.File):
        self._h5 = handle
        self.attrs = read_attrs(handle)

    def missing(self, keys: Sequence[str]) -> list[str]:
        return [key for key in keys if key not in self._h5]

    def patients(self) -> list[str]:
        return read_strs(self._h5["patients"])

    def genes(self) -> list[str]:
        return read_strs(self._h5["genes"])

    def cohort(self) -> list[str]:
        return read_strs(self._h5["cohort"])

    def values(self) -> np.ndarray:
        """``/values`` in one contiguous read."""
        return self._h5["values"][:]

    def column(self, index: int) -> np.ndarray:
        """One gene's column of ``/values``."""
        return self._h5["values"][:, index]


@contextlib.contextmanager
def open_expression_store(path: str | Path) -> Iterator[ExpressionStoreReader]:
    with h5py.File(path, "r") as handle:
        yield ExpressionStoreReader(handle)


__all__ = ["ExpressionStore", "ExpressionStoreReader", "open_expression_store",
           "read_expression_frame", "read_expression_store", "write_prepared_store", "write_training_store"]
