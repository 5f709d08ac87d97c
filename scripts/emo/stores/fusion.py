"""The fusion stage's cross-attention store (docs/data_contracts.md, "Image + expression
fusion"): ``results/statistics/{encoder}/fusion/attention.h5``.

- ``/genes``: the expression features (query tokens), in model order.
- per target ``/targets/{target}/`` (``:`` of a one-vs-rest name written ``__``):
  ``patients`` (P,), ``set`` (P,) (``cv`` = out of fold, its fold's model; ``external`` =
  the mean of the fold models), ``weights`` float16 (P, G, K): per patient, expression
  feature (row) x image patch (column) attention, averaged over heads (rows sum to 1 over
  the patient's patches), ``samples`` (P, K) the slide of each patch (``""`` = padding),
  ``coords`` int64 (P, K, 2) its level-0 x, y (-1 = padding); attrs ``target``,
  ``classes`` (JSON).
- root attrs: ``params`` (JSON of the ``fusion`` config), ``code_version`` and the other
  provenance attributes (no ``created``: identical inputs give identical files).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ..io import atomic_path
from ._h5 import ItemAccess, read_attrs, read_strs, write_attrs, write_strs


@dataclass(eq=False)
class TargetAttention(ItemAccess):
    target: str
    classes: list[str]
    patients: list[str]
    set: list[str]
    weights: np.ndarray   # (P, G, K) float16
    samples: np.ndarray   # (P, K) str
    coords: np.ndarray    # (P, K, 2) int64


@dataclass(eq=False)
class FusionAttention(ItemAccess):
    genes: list[str]
    targets: dict[str, TargetAttention]
    attrs: dict = field(default_factory=dict)


def group_name(target: str) -> str:
    return target.replace(":", "__")


def write_fusion_attention(path: str | Path, store: FusionAttention) -> None:
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        write_attrs(handle, {k: v for k, v in store.attrs.items() if k != "created"}, sort=True)
        write_strs(handle, "genes", store.genes)
        targets = handle.create_group("targets")
        for name in sorted(store.targets):
            t = store.targets[name]
            g = targets.create_group(group_name(name))
            g.attrs["target"] = t.target
            g.attrs["classes"] = json.dumps(list(t.classes))
            write_strs(g, "patients", t.patients)
            write_strs(g, "set", t.set)
            g.create_dataset("weights", data=np.asarray(t.weights, dtype=np.float16), compression="gzip",
                             compression_opts=4, shuffle=True)
            g.create_dataset("samples", data=np.asarray(t.samples, dtype=object), dtype=h5py.string_dtype())
            g.create_dataset("coords", data=np.asarray(t.coords, dtype=np.int64))


def read_fusion_attention(path: str | Path) -> FusionAttention:
    with h5py.File(path, "r") as handle:
        targets = {}
        for g in handle["targets"].values():
            samples = np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else str(v), otypes=[object])(
                g["samples"][()]) if g["samples"].size else np.zeros(g["samples"].shape, dtype=object)
            name = str(g.attrs["target"])
            targets[name] = TargetAttention(name, json.loads(g.attrs["classes"]), read_strs(g["patients"]),
                                            read_strs(g["set"]), g["weights"][()], samples, g["coords"][()])
        return FusionAttention(read_strs(handle["genes"]), targets, read_attrs(handle))
