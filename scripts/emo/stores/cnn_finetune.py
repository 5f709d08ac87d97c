"""The per-gene tile prediction store of a fine-tuned CNN,
``results/cnn_finetune/{gene}/predictions.h5`` (docs/data_contracts.md, "CNN
fine-tuning"): per predicted slide ``/slides/{sample}/values`` float32 (N,) (the best
epoch's prediction of every accepted tile, store order, expression scale) and
``/slides/{sample}/coords`` int64 (N, 2) with the tile store's coords attrs; root
attrs ``gene``, ``best_epoch`` and provenance (``code_version``, ``params``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..io import atomic_path
from ._h5 import read_attrs, write_attrs


@dataclass
class GeneTilePredictions:
    gene: str
    values: dict[str, np.ndarray]        # sample -> (N,) float32
    coords: dict[str, np.ndarray]        # sample -> (N, 2) int64
    coords_attrs: dict[str, dict]        # sample -> the tile store's /coords attrs
    attrs: dict


def write_gene_predictions(path: str | Path, store: GeneTilePredictions) -> None:
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            slides = h5.create_group("slides")
            for sample in sorted(store.values):
                group = slides.create_group(sample)
                group.create_dataset("values", data=np.asarray(store.values[sample], dtype=np.float32))
                dset = group.create_dataset("coords", data=np.asarray(store.coords[sample], dtype=np.int64))
                write_attrs(dset, store.coords_attrs[sample])
            write_attrs(h5, {"gene": store.gene, **store.attrs})


def read_gene_predictions(path: str | Path) -> GeneTilePredictions:
    with h5py.File(path, "r") as h5:
        attrs = read_attrs(h5)
        values, coords, coords_attrs = {}, {}, {}
        for sample, group in h5["slides"].items():
            values[sample] = group["values"][()]
            coords[sample] = group["coords"][()]
            coords_attrs[sample] = read_attrs(group["coords"])
    return GeneTilePredictions(str(attrs.pop("gene")), values, coords, coords_attrs, attrs)
