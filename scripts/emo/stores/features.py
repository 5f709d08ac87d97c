"""The feature store ``results/features/{encoder}/{sample}.h5`` (docs/data_contracts.md,
"Feature store"): ``/features`` float32 (N, D), ``/colour_texture`` float32 (N, 40) (the
baseline's descriptors of the same tiles, :mod:`emo.colour_texture`), ``/coords`` int64
(N, 2) with the tile store's coords attrs, root attrs describing the encoder and its inputs.

Stores can be large (N x D x 4 bytes), so besides :func:`read_feature_store` (all in
memory) there are bounded readers: :func:`open_feature_store` gives the shape and
attributes without reading arrays, :meth:`FeatureStoreReader.iter_blocks` streams
rows; :func:`open_feature_store_writer` writes rows batch by batch.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import h5py
import numpy as np

from ..colour_texture import DESCRIPTOR_NAMES, N_DESCRIPTORS
from ._h5 import read_attrs, write_attrs

CHUNK_BYTES = 1 << 20   # /features chunks hold about 1 MiB of rows
COLOUR_TEXTURE = "colour_texture"


@dataclass
class FeatureStore:
    features: np.ndarray     # /features (N, D) float32
    coords: np.ndarray       # /coords (N, 2) int64
    coords_attrs: dict       # /coords attrs (as the tile store's)
    attrs: dict              # root attrs (sample, encoder, feature_dim, ...)


class FeatureStoreReader:
    """An open feature store; arrays are read only on request."""

    def __init__(self, handle: h5py.File):
        self._h5 = handle
        self.n_tiles, self.feature_dim = (int(x) for x in handle["features"].shape)
        self.attrs = read_attrs(handle)
        self.coords_attrs = read_attrs(handle["coords"])

    @property
    def shape(self) -> tuple[int, int]:
        return self.n_tiles, self.feature_dim

    def features(self) -> np.ndarray:
        return self._h5["features"][:]

    def coords(self) -> np.ndarray:
        return self._h5["coords"][:]

    @property
    def has_colour_texture(self) -> bool:
        return COLOUR_TEXTURE in self._h5

    def iter_blocks(self, rows: int, dataset: str = "features") -> Iterator[np.ndarray]:
        """``/features`` (or ``/colour_texture``) in consecutive blocks of at most ``rows`` rows."""
        if dataset not in self._h5:
            raise KeyError(f"feature store {self._h5.filename} has no /{dataset} (written by an older version: "
                           "delete it and rerun feature extraction)")
        data = self._h5[dataset]
        for start in range(0, self.n_tiles, rows):
            yield data[start:start + rows]


@contextlib.contextmanager
def open_feature_store(path: str | Path) -> Iterator[FeatureStoreReader]:
    with h5py.File(path, "r") as handle:
        yield FeatureStoreReader(handle)


def read_feature_store(path: str | Path) -> FeatureStore:
    """The whole feature store in memory."""
    with h5py.File(path, "r") as f:
        return FeatureStore(features=f["features"][:], coords=f["coords"][:], coords_attrs=read_attrs(f["coords"]),
                            attrs=read_attrs(f))


class FeatureStoreWriter:
    """Rows are appended in order with :meth:`write`; :meth:`set_attrs` writes the root attrs."""

    def __init__(self, handle: h5py.File, dataset: h5py.Dataset, descriptors: h5py.Dataset):
        self._h5, self._features, self._descriptors = handle, dataset, descriptors
        self.rows_written = 0

    def write(self, rows: np.ndarray, descriptors: np.ndarray) -> None:
        """Encoder features and colour/texture descriptors of the next ``len(rows)`` tiles."""
        if len(descriptors) != len(rows):
            raise ValueError(f"{len(rows)} feature rows but {len(descriptors)} descriptor rows")
        self._features[self.rows_written:self.rows_written + len(rows)] = rows
        self._descriptors[self.rows_written:self.rows_written + len(rows)] = descriptors
        self.rows_written += len(rows)

    def set_attrs(self, attrs: Mapping[str, Any]) -> None:
        write_attrs(self._h5, attrs, sort=True)


@contextlib.contextmanager
def open_feature_store_writer(path: str | Path, n: int, dim: int, coords: np.ndarray,
                              coords_attrs: Mapping[str, Any]) -> Iterator[FeatureStoreWriter]:
    """Create a feature store of ``n`` x ``dim`` features at ``path`` (pass a temporary
    path and rename it, see :func:`emo.io.atomic_path`); coords are written at once."""
    with h5py.File(path, "w", track_order=False) as f:
        chunk_rows = max(1, min(n, CHUNK_BYTES // (4 * dim))) if n else None
        features = f.create_dataset("features", shape=(n, dim), dtype=np.float32, chunks=(chunk_rows, dim)
                                    if n else None, track_times=False)
        descriptors = f.create_dataset(COLOUR_TEXTURE, shape=(n, N_DESCRIPTORS), dtype=np.float32,
                                       track_times=False)
        descriptors.attrs["names"] = ",".join(DESCRIPTOR_NAMES)
        coords_ds = f.create_dataset("coords", data=np.asarray(coords, dtype=np.int64).reshape(n, 2),
                                     track_times=False)
        write_attrs(coords_ds, coords_attrs, sort=True)
        yield FeatureStoreWriter(f, features, descriptors)


__all__ = ["COLOUR_TEXTURE", "FeatureStore", "FeatureStoreReader", "FeatureStoreWriter", "open_feature_store",
           "open_feature_store_writer", "read_feature_store"]
