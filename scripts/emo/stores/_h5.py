"""Helpers shared by the HDF5 stores (emo.stores.*): the one bytes -> str decode,
UTF-8 string datasets and attribute copies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, Iterable

import h5py
import numpy as np

STR = h5py.string_dtype("utf-8")


def as_str(value: Any) -> str:
    """An HDF5 string (h5py returns ``bytes`` for variable-length strings) as ``str``."""
    return value.decode() if isinstance(value, bytes) else str(value)


def as_strs(values: Iterable) -> list[str]:
    return [as_str(v) for v in values]


def read_strs(dataset: h5py.Dataset) -> list[str]:
    """A 1-d string dataset as a list of ``str``."""
    return as_strs(dataset[:])


def write_strs(group: h5py.Group, name: str, values: Iterable[str]) -> h5py.Dataset:
    """A 1-d variable-length UTF-8 string dataset (the stores' string layout)."""
    return group.create_dataset(name, data=np.asarray(list(values), dtype=object), dtype=STR)


def read_attrs(obj: h5py.HLObject) -> dict:
    return dict(obj.attrs)


def write_attrs(obj: h5py.HLObject, attrs: Mapping[str, Any], *, sort: bool = False) -> None:
    for key in (sorted(attrs) if sort else attrs):
        obj.attrs[key] = attrs[key]


class ItemAccess:
    """``record["genes"]`` is ``record.genes`` for a dataclass record, so stores pass
    where the domain code indexes the result dicts it builds (``result["genes"]``)."""

    def __getitem__(self, key: str):
        if key not in {f.name for f in fields(self)}:
            raise KeyError(key)
        return getattr(self, key)
