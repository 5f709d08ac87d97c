"""Tensor molecular cartographies and the heterogeneity index HTI (Levy-Jurgenson et al. 2020).

A slide's *molecular cartography* for one trait is the binary prediction of each tile
placed on the slide's tile grid; stacking the cartographies of k traits gives the
*tensor molecular cartography* (k, H, W). Each tile then falls into one of the 2^k
trait combinations (encoded as a bit mask: bit j set = positive for trait j).

HTI (paper, eq. 1)::

    HTI = - sum_{i=1..C} p_i log_C p_i,     C = 2^k - 1

where p_i is the proportion of tiles positive for *exactly* the traits of the non-empty
combination i, among the tiles positive for at least one trait (tiles positive for no
trait are excluded). HTI lies in [0, 1]: 0 when all such tiles share one combination,
1 when they spread uniformly over all C combinations.

The continuous ("soft") variant replaces the binary calls by per-tile probabilities
q_tj in [0, 1] of trait j being positive, treats traits as independent within a tile,
and uses the expected combination masses::

    m_S = sum_t prod_{j in S} q_tj prod_{j not in S} (1 - q_tj),   p_S = m_S / sum_{S != {}} m_S

It equals the binary HTI when every q is 0 or 1.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

NO_TILE = -1


def n_combinations(k: int) -> int:
    """C = 2^k - 1, the number of non-empty trait combinations."""
    if k < 2:
        raise ValueError(f"HTI needs at least two traits (k={k}); with one trait C = 1 and log_C is undefined")
    return 2 ** k - 1


def combination_codes(positive: np.ndarray) -> np.ndarray:
    """(N, k) booleans -> (N,) int codes, bit j set when the tile is positive for trait j."""
    positive = np.asarray(positive, dtype=bool)
    if positive.ndim != 2:
        raise ValueError("positive must be a (tiles, traits) array")
    weights = (1 << np.arange(positive.shape[1])).astype(np.int64)
    return positive.astype(np.int64) @ weights


def combination_label(code: int, traits: Sequence[str]) -> str:
    """'none', 'A', 'A+B', ... for a combination code."""
    names = [t for j, t in enumerate(traits) if code >> j & 1]
    return "+".join(names) if names else "none"


def entropy_base_c(p: np.ndarray, c: int) -> float:
    """-sum p log_C p with 0 log 0 = 0."""
    p = np.asarray(p, dtype=np.float64)
    nz = p[p > 0]
    if nz.size == 0:
        return 0.0
    value = float(-(nz * np.log(nz)).sum() / math.log(c))
    # Guard tiny negative zero / >1 rounding noise.
    return min(max(value, 0.0), 1.0)


def combination_proportions(positive: np.ndarray) -> tuple[np.ndarray, int]:
    """Proportions p_1..p_C of the non-empty combinations (index = code - 1) and the
    number of tiles positive for at least one trait."""
    positive = np.asarray(positive, dtype=bool)
    k = positive.shape[1]
    c = n_combinations(k)
    codes = combination_codes(positive)
    counts = np.bincount(codes, minlength=c + 1)[1:].astype(np.float64)
    n_pos = int(counts.sum())
    if n_pos == 0:
        return np.zeros(c), 0
    return counts / n_pos, n_pos


def hti(positive: np.ndarray) -> float:
    """Binary HTI of one slide from its (tiles, traits) boolean predictions.

    A slide without any tile positive for any trait shows no combination at all; it is
    homogeneous and gets HTI = 0 (the paper leaves this case undefined).
    """
    p, _ = combination_proportions(positive)
    return entropy_base_c(p, n_combinations(np.asarray(positive).shape[1]))


def soft_combination_masses(prob: np.ndarray) -> np.ndarray:
    """Expected number of tiles in each combination code 0..2^k-1 from per-tile
    independent trait probabilities (N, k)."""
    prob = np.clip(np.asarray(prob, dtype=np.float64), 0.0, 1.0)
    n, k = prob.shape
    masses = np.empty(2 ** k)
    for code in range(2 ** k):
        factor = np.ones(n)
        for j in range(k):
            factor *= prob[:, j] if code >> j & 1 else 1.0 - prob[:, j]
        masses[code] = factor.sum()
    return masses


def soft_hti(prob: np.ndarray) -> float:
    """Continuous HTI from (tiles, traits) probabilities (see module docstring)."""
    prob = np.asarray(prob, dtype=np.float64)
    c = n_combinations(prob.shape[1])
    masses = soft_combination_masses(prob)[1:]
    total = masses.sum()
    if total <= 0:
        return 0.0
    return entropy_base_c(masses / total, c)


def logistic_probability(values: np.ndarray, location: float, scale: float) -> np.ndarray:
    """q = 1 / (1 + exp(-(x - location) / scale)), numerically safe."""
    if not np.all(np.asarray(scale) > 0):
        raise ValueError("scale must be positive")
    z = (np.asarray(values, dtype=np.float64) - location) / scale
    return 0.5 * (1.0 + np.tanh(0.5 * z))


# --------------------------------------------------------------------------- grids

def tile_grid(coords: np.ndarray, patch_size: float) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Row and column of each tile on the slide's tile grid and the grid shape (H, W).

    Tiles are non-overlapping squares of side ``patch_size`` (level-0 px) with top-left
    ``coords`` (x, y); grid origin is the top-left-most tile.
    """
    coords = np.asarray(coords, dtype=np.float64)
    if coords.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), (0, 0)
    if not patch_size > 0:
        raise ValueError("patch_size must be positive")
    col = np.rint((coords[:, 0] - coords[:, 0].min()) / patch_size).astype(np.int64)
    row = np.rint((coords[:, 1] - coords[:, 1].min()) / patch_size).astype(np.int64)
    return row, col, (int(row.max()) + 1, int(col.max()) + 1)


def tensor_cartography(positive: np.ndarray, coords: np.ndarray, patch_size: float) -> np.ndarray:
    """(k, H, W) int8: 1/0 per trait where a tile lies, NO_TILE (-1) elsewhere."""
    positive = np.asarray(positive, dtype=bool)
    row, col, (h, w) = tile_grid(coords, patch_size)
    tensor = np.full((positive.shape[1], h, w), NO_TILE, dtype=np.int8)
    tensor[:, row, col] = positive.T.astype(np.int8)
    return tensor


def combination_map(tensor: np.ndarray) -> np.ndarray:
    """(H, W) int16 combination code of each grid cell from a tensor cartography;
    NO_TILE where no tile lies."""
    tensor = np.asarray(tensor)
    k = tensor.shape[0]
    present = tensor[0] != NO_TILE
    codes = np.zeros(tensor.shape[1:], dtype=np.int16)
    for j in range(k):
        codes |= (tensor[j] == 1).astype(np.int16) << j
    codes[~present] = NO_TILE
    return codes


# --------------------------------------------------------------------------- figures

NONE_COLOUR = (0.85, 0.85, 0.85)
PALETTE = ["#e377c2", "#2ca02c", "#8c564b", "#1f77b4", "#ff7f0e", "#9467bd", "#17becf", "#bcbd22",
           "#d62728", "#7f7f7f"]


def combination_colours(k: int) -> list[tuple]:
    """Colour of each code 0..2^k-1 (0 = no trait, light grey)."""
    from matplotlib.colors import to_rgb

    colours = [NONE_COLOUR]
    for code in range(1, 2 ** k):
        colours.append(to_rgb(PALETTE[(code - 1) % len(PALETTE)]))
    return colours


def select_for_figure(table, n: int) -> list[int]:
    """Row positions of up to n slides spread evenly over the HTI order (lowest to highest)."""
    order = np.argsort(table["hti"].to_numpy(), kind="stable")
    if len(order) <= n:
        return list(order)
    picks = np.unique(np.rint(np.linspace(0, len(order) - 1, n)).astype(int))
    return [int(order[i]) for i in picks]


def plot_heterogeneity_maps(maps: list[tuple[str, float, np.ndarray]], traits: Sequence[str], path,
                            columns: int = 4) -> None:
    """Heterogeneity maps (combination colour per tile) ordered as given, titled with HTI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    k = len(traits)
    colours = combination_colours(k)
    cmap = ListedColormap([(1, 1, 1)] + colours)  # index 0 = no tile (white)
    n = max(len(maps), 1)
    columns = min(columns, n)
    rows = math.ceil(n / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.2 * rows + 0.8), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (sample, value, codes) in zip(axes.ravel(), maps):
        ax.imshow(codes.astype(np.int32) + 1, cmap=cmap, vmin=0, vmax=len(colours), interpolation="nearest")
        ax.set_title(f"{sample}\nHTI = {value:.2f}", fontsize=9)
    handles = [Patch(color=colours[c], label=combination_label(c, traits)) for c in range(2 ** k)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


# --------------------------------------------------------------------------- orchestration

def read_tile_predictions(path, genes: Sequence[str], sample: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, k) tile-level predicted values of ``genes`` and coords from a prediction store."""
    from .errors import InputTableError
    from .stores.predictions import open_prediction_store

    with open_prediction_store(path) as pred:
        stored = pred.tile_genes
        missing = [g for g in genes if g not in stored]
        if missing:
            raise InputTableError(
                f"slide {sample!r}: tile predictions {path} lack trait gene(s) {missing}; add them to "
                "config predictions.tile_genes or set heterogeneity.continuous.source: classifier")
        index = [stored.index(g) for g in genes]
        values = pred.tile_values()[:, index].astype(np.float64)
        coords = pred.coords().astype(np.int64)
    return values, coords


def _combination_columns(traits: Sequence[str]) -> list[str]:
    return [f"p_{combination_label(code, traits)}" for code in range(1, 2 ** len(traits))]


def run_hti(traits: Sequence[str], trait_tiles: dict, trait_slides: dict, cfg: dict, out: dict,
            code_version: str, prediction_paths: dict | None = None) -> None:
    """Per-slide HTI table, tensor cartographies (HDF5) and the heterogeneity-map figure.

    ``trait_tiles``/``trait_slides``: trait -> tiles.h5 / slides.tsv of the trait
    classifiers. ``prediction_paths``: sample -> prediction store (continuous variant
    from tile-level expression predictions); None uses the classifiers' probabilities.
    ``out`` keys: table, cartographies, figure.
    """
    import h5py
    import pandas as pd

    from .errors import InputTableError
    from .io import atomic_path, write_tsv
    from .provenance import base_attrs, write_sidecar

    traits = list(traits)
    k = len(traits)
    continuous = cfg.get("continuous", {}) or {}
    slides_by_trait = {t: pd.read_csv(trait_slides[t], sep="\t", dtype={"sample": str, "patient": str})
                       .set_index("sample") for t in traits}
    samples = sorted(slides_by_trait[traits[0]].index)
    handles = {t: h5py.File(trait_tiles[t], "r") for t in traits}
    try:
        # Continuous variant from predicted expression: cohort-wide location and scale per trait.
        predicted = {}
        location = scale = None
        if prediction_paths is not None:
            for sample in samples:
                values, coords = read_tile_predictions(prediction_paths[sample], traits, sample)
                ref = handles[traits[0]][f"slides/{sample}/coords"][...]
                if values.shape[0] != len(ref) or not np.array_equal(coords, ref):
                    raise InputTableError(f"slide {sample!r}: tile predictions {prediction_paths[sample]} and the "
                                          "feature store list different tiles; rerun the predictions stage")
                predicted[sample] = values
            pooled = np.concatenate([v for v in predicted.values() if len(v)]) if predicted else np.zeros((0, k))
            location = np.median(pooled, axis=0)
            q75, q25 = np.percentile(pooled, [75, 25], axis=0)
            robust_sd = (q75 - q25) / 1.349
            robust_sd = np.where(robust_sd > 0, robust_sd, pooled.std(axis=0) + 1e-12)
            scale = robust_sd * float(continuous.get("temperature", 1.0))
        rows, maps = [], []
        with atomic_path(out["cartographies"]) as tmp, h5py.File(tmp, "w") as carto:
            for key, value in base_attrs(code_version, cfg).items():
                if key != "created":
                    carto.attrs[key] = value
            carto.attrs["traits"] = np.asarray(traits, dtype=h5py.string_dtype())
            group = carto.create_group("slides")
            for sample in samples:
                g0 = handles[traits[0]][f"slides/{sample}"]
                coords = g0["coords"][...]
                patch = float(g0["coords"].attrs["patch_size_level0"])
                positive = np.stack([handles[t][f"slides/{sample}/positive"][...].astype(bool) for t in traits],
                                    axis=1) if len(coords) else np.zeros((0, k), bool)
                if prediction_paths is not None:
                    prob = logistic_probability(predicted[sample], location, scale) if len(coords) else \
                        np.zeros((0, k))
                else:
                    prob = np.stack([handles[t][f"slides/{sample}/probability"][...] for t in traits], axis=1) \
                        if len(coords) else np.zeros((0, k))
                p, n_pos = combination_proportions(positive)
                value = entropy_base_c(p, n_combinations(k))
                tensor = tensor_cartography(positive, coords, patch)
                codes = combination_map(tensor)
                sg = group.create_group(sample)
                sg.create_dataset("tensor", data=tensor, compression="gzip")
                sg.create_dataset("combination", data=codes, compression="gzip")
                groups = {t: slides_by_trait[t].loc[sample, "group"] for t in traits}
                row = {"sample": sample, "patient": slides_by_trait[traits[0]].loc[sample, "patient"],
                       "n_tiles": len(coords), "n_tiles_positive": n_pos}
                row.update(dict(zip(_combination_columns(traits), p)))
                row.update({"hti": value, "hti_continuous": soft_hti(prob) if len(coords) else 0.0})
                row.update({f"group_{t}": groups[t] for t in traits})
                rows.append(row)
                maps.append((sample, value, codes))
        table = pd.DataFrame(rows)
        # A patient is eligible for survival when none of its slides trained or validated any classifier.
        dev = table[[f"group_{t}" for t in traits]].eq("development").any(axis=1)
        used = set(table.loc[dev, "patient"])
        table["survival_eligible"] = ~table["patient"].isin(used)
        write_tsv(table, out["table"])
        write_sidecar(out["table"], code_version, cfg,
                      [*trait_tiles.values(), *((prediction_paths or {}).values())])
        picks = select_for_figure(table, int(cfg.get("figure_slides", 12)))
        plot_heterogeneity_maps([maps[i] for i in picks], traits, out["figure"])
    finally:
        for handle in handles.values():
            handle.close()
