"""The per-slide prediction store ``results/predictions/{encoder}/slides/{sample}.h5``
(docs/data_contracts.md, "Models and predictions"): ``/genes`` + ``/slide_mean``
(all modelled genes), ``/tiles/genes`` + ``/tiles/values`` (tile genes, gzip,
chunked), ``/coords`` as the feature store, per baseline (``ridge``, ``colour_texture``)
``/{baseline}/genes`` + ``/{baseline}/slide_mean``; root attrs ``sample``, ``n_tiles``, ``tile_genes_setting``, provenance.

:func:`open_prediction_store` reads tile values column by column (bounded memory when
every gene has tile predictions); :func:`read_slide_means` reads just the slide means.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import h5py
import numpy as np

from ..io import atomic_path
from ._h5 import read_attrs, read_strs, write_attrs, write_strs


@dataclass
class SlidePredictions:
    genes: list[str]                    # /genes, sorted
    slide_mean: np.ndarray              # /slide_mean (G,) float32
    tile_genes: list[str]               # /tiles/genes, sorted
    tile_values: np.ndarray             # /tiles/values (N, S) float32
    coords: np.ndarray                  # /coords (N, 2), as the feature store
    coords_attrs: dict                  # /coords attrs
    attrs: dict                         # root attrs, written in this order
    # baseline name -> (genes, slide means (G_b,)): /{name}/genes, /{name}/slide_mean
    baselines: dict[str, tuple[list[str], np.ndarray]] = field(default_factory=dict)


def write_prediction_store(path: str | Path, store: SlidePredictions) -> None:
    """Write ``store`` to ``path`` atomically."""
    tiles = np.asarray(store.tile_values, dtype=np.float32)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            write_strs(h5, "genes", store.genes)
            h5.create_dataset("slide_mean", data=np.asarray(store.slide_mean).astype(np.float32))
            grp = h5.create_group("tiles")
            write_strs(grp, "genes", store.tile_genes)
            grp.create_dataset("values", data=tiles,
                               chunks=(min(max(tiles.shape[0], 1), 1024), max(min(tiles.shape[1], 256), 1))
                               if tiles.size else None, compression="gzip" if tiles.size else None)
            dset = h5.create_dataset("coords", data=store.coords)
            write_attrs(dset, store.coords_attrs)
            for name, (genes, means) in sorted(store.baselines.items()):
                group = h5.create_group(name)
                write_strs(group, "genes", genes)
                group.create_dataset("slide_mean", data=np.asarray(means).astype(np.float32))
            write_attrs(h5, store.attrs)


def read_slide_means(path: str | Path, group: str = "") -> tuple[list[str], np.ndarray]:
    """(genes, slide means) of the gene models (``group=""``) or a baseline (``"ridge"``,
    ``"colour_texture"``)."""
    prefix = f"{group}/" if group else ""
    with h5py.File(path, "r") as h5:
        return read_strs(h5[prefix + "genes"]), h5[prefix + "slide_mean"][:]


class PredictionStoreReader:
    """An open prediction store: tile genes, coords attrs and root attrs; arrays on request."""

    def __init__(self, handle: h5py.File):
        self._h5 = handle
        self.tile_genes = read_strs(handle["tiles/genes"])
        self.tile_values_shape = tuple(handle["tiles/values"].shape)
        self.coords_attrs = read_attrs(handle["coords"])
        self.attrs = read_attrs(handle)

    def coords(self) -> np.ndarray:
        return self._h5["coords"][:]

    def tile_values(self, columns: Sequence[int] | None = None) -> np.ndarray:
        """``/tiles/values``, all of it or only ``columns`` (increasing indices; a
        column-sliced read)."""
        data = self._h5["tiles/values"]
        return data[...] if columns is None else data[:, list(columns)]


@contextlib.contextmanager
def open_prediction_store(path: str | Path) -> Iterator[PredictionStoreReader]:
    with h5py.File(path, "r") as handle:
        yield PredictionStoreReader(handle)


__all__ = ["PredictionStoreReader", "SlidePredictions", "open_prediction_store", "read_slide_means",
           "write_prediction_store"]
