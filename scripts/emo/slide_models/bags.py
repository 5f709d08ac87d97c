"""Slide bags: HE2RNA's super-tiles (k-means on tile positions, mean features per
cluster), seeded tile subsamples, and padding of bags into a batch."""

from __future__ import annotations

import zlib

import numpy as np

from ..errors import InputTableError


def _order_by_position(coords: np.ndarray) -> np.ndarray:
    """Tile indices sorted by (y, x), then by index: a canonical order of the positions."""
    coords = np.asarray(coords)
    return np.lexsort((np.arange(len(coords)), coords[:, 0], coords[:, 1]))


def supertile_labels(coords: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """Cluster index (0..m-1) of each tile: k-means with ``n_clusters`` clusters on the
    tile positions (paper 003, "Preprocessing"; a slide with at most ``n_clusters``
    tiles keeps one super-tile per tile). The clustering sees the tiles in a canonical
    order of their positions and clusters are numbered by their centres' (y, x), so the
    result depends on the positions only, not on the order of the tiles in the store."""
    from sklearn.cluster import KMeans

    coords = np.asarray(coords, dtype=np.float64)
    n = len(coords)
    order = _order_by_position(coords)
    labels = np.empty(n, dtype=np.int64)
    if n <= n_clusters:
        labels[order] = np.arange(n)
        return labels
    km = KMeans(n_clusters=n_clusters, n_init=1, random_state=seed, algorithm="lloyd")
    fitted = km.fit_predict(coords[order])
    # number clusters by their centres (y, x): canonical, and empty clusters dropped
    used = np.unique(fitted)
    centres = np.stack([coords[order][fitted == c].mean(0) for c in used])
    rank = np.lexsort((centres[:, 0], centres[:, 1]))
    relabel = np.empty(int(used.max()) + 1, dtype=np.int64)
    relabel[used[rank]] = np.arange(len(used))
    labels[order] = relabel[fitted]
    return labels


def supertiles(features: np.ndarray, coords: np.ndarray, n_clusters: int, seed: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """(super-tile features (m, D) float32 = mean of each cluster's tile features,
    cluster label per tile (N,))."""
    labels = supertile_labels(coords, n_clusters, seed)
    m = int(labels.max()) + 1 if len(labels) else 0
    sums = np.zeros((m, features.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, np.asarray(features, dtype=np.float64))
    counts = np.bincount(labels, minlength=m).astype(np.float64)
    return (sums / counts[:, None]).astype(np.float32), labels


def tile_subsample(n: int, cap: int, sample: str, seed: int) -> np.ndarray:
    """Sorted indices of at most ``cap`` tiles (all when ``n <= cap``), drawn with a
    generator seeded by ``seed`` and the sample name (stable across runs and machines)."""
    if cap <= 0 or n <= cap:
        return np.arange(n)
    rng = np.random.default_rng([seed, zlib.crc32(sample.encode())])
    return np.sort(rng.choice(n, size=cap, replace=False))


def slide_bag(features: np.ndarray, coords: np.ndarray, kind: str, n_supertiles: int, max_tiles: int,
              sample: str, seed: int) -> np.ndarray:
    """The bag a slide model trains on: ``supertiles`` (k-means on positions) or
    ``tiles`` (a seeded subsample of at most ``max_tiles``)."""
    if len(features) == 0:
        raise InputTableError(f"slide {sample!r}: its feature store has no tiles; check its tile store "
                              "(tiling thresholds) or leave the slide out of the sample sheet")
    if kind == "supertiles":
        return supertiles(features, coords, n_supertiles, seed)[0]
    return np.ascontiguousarray(features[tile_subsample(len(features), max_tiles, sample, seed)], dtype=np.float32)


def pad_bags(bags: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(B, N_max, D) float32 zero-padded bags and a (B, N_max) bool mask of real tiles."""
    n_max = max(len(b) for b in bags)
    dim = bags[0].shape[1]
    x = np.zeros((len(bags), n_max, dim), dtype=np.float32)
    mask = np.zeros((len(bags), n_max), dtype=bool)
    for i, bag in enumerate(bags):
        x[i, :len(bag)] = bag
        mask[i, :len(bag)] = True
    return x, mask
