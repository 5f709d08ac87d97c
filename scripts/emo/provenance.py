"""Provenance recorded in every output: code version, parameters, inputs.

A rule's code version is computed from its entry script's import closure
(:mod:`emo.workflow.code_versions`) and reaches the job as ``params.code_version``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

from . import __version__


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 22) -> str:
    """Streaming sha256 of a file (bounded memory for multi-GB slides)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def params_json(params: Any) -> str:
    """Canonical JSON (sorted keys) so equal parameters give equal strings."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


def now_iso() -> str:
    """Creation timestamp; the one documented field that differs between reruns."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def base_attrs(code_version_value: str, params: Any | None = None) -> dict[str, str]:
    """Attributes every store and sidecar carries."""
    attrs = {"code_version": code_version_value, "emo_version": __version__, "created": now_iso()}
    if params is not None:
        attrs["params"] = params_json(params)
    return attrs


def write_sidecar(table_path: str | Path, code_version_value: str, params: Any,
                  inputs: Iterable[str] = ()) -> Path:
    """Write ``<table>.json`` next to a table with its provenance (no timestamp, so
    identical inputs give byte-identical sidecars)."""
    sidecar = Path(str(table_path) + ".json")
    payload = {
        "code_version": code_version_value,
        "emo_version": __version__,
        "params": params,
        "inputs": sorted(str(p) for p in inputs),
    }
    from .io import atomic_write_text

    atomic_write_text(sidecar, json.dumps(payload, sort_keys=True, indent=2, default=str) + "\n")
    return sidecar


def _value_bytes(value) -> bytes:
    """Bytes of an HDF5 value for hashing; object arrays (variable-length strings) by
    their text, never by their pointers."""
    import numpy as np

    if isinstance(value, str):
        return value.encode()
    array = np.asarray(value)
    if array.dtype.kind == "O":
        return "\0".join(str(x) for x in array.ravel()).encode()
    return np.ascontiguousarray(array).tobytes()


def hdf5_content_sha256(path: str | Path, ignore_attrs: Iterable[str] = ("created",)) -> str:
    """sha256 over an HDF5 file's *content*: every group, dataset (dtype, shape, bytes)
    and attribute in sorted order, except the documented timestamp attributes.

    Unlike the file's own sha256 it is identical for two stores that differ only in
    ``created``, so a store built from a recomputed upstream store stays identical.
    """
    import h5py
    import numpy as np

    ignore = set(ignore_attrs)
    digest = hashlib.sha256()

    def add_attrs(obj) -> None:
        for key in sorted(obj.attrs):
            if key in ignore:
                continue
            value = obj.attrs[key]
            digest.update(f"@{key}=".encode())
            digest.update(_value_bytes(value))

    with h5py.File(path, "r") as handle:
        add_attrs(handle)
        names: list[str] = []
        handle.visit(names.append)
        for name in sorted(names):
            obj = handle[name]
            digest.update(f"/{name}".encode())
            add_attrs(obj)
            if isinstance(obj, h5py.Dataset):
                array = np.asarray(obj[()])
                digest.update(f"{array.dtype.str}{array.shape}".encode())
                digest.update(_value_bytes(array))
    return digest.hexdigest()
