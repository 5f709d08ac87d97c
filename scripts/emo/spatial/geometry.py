"""ROI geometry: polygon areas, exact ROI/tile overlaps (Sutherland–Hodgman clipping
of the ROI polygon against each tile square, shoelace area) and area-weighted means."""

from __future__ import annotations

import numpy as np


def polygon_area(points: np.ndarray) -> float:
    """Absolute area of a simple polygon (shoelace formula)."""
    pts = np.asarray(points, dtype=float)
    if len(pts) < 3:
        return 0.0
    x, y = pts[:, 0], pts[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def clip_polygon_to_rect(points: np.ndarray, xmin: float, ymin: float, xmax: float,
                         ymax: float) -> np.ndarray:
    """Sutherland–Hodgman clipping of a polygon against an axis-aligned rectangle.

    The clip window is convex, so the result is exact for any simple subject polygon
    (concave subjects may gain zero-area bridge edges, which do not change the area).
    """
    pts = [tuple(p) for p in np.asarray(points, dtype=float)]

    def clip(pts, axis, bound, keep_greater):
        if not pts:
            return pts
        out = []

        def inside(p):
            return p[axis] >= bound if keep_greater else p[axis] <= bound

        def cross(p, q):
            t = (bound - p[axis]) / (q[axis] - p[axis])
            other = 1 - axis
            point = [0.0, 0.0]
            point[axis] = bound
            point[other] = p[other] + t * (q[other] - p[other])
            return tuple(point)

        prev = pts[-1]
        for cur in pts:
            if inside(cur):
                if not inside(prev):
                    out.append(cross(prev, cur))
                out.append(cur)
            elif inside(prev):
                out.append(cross(prev, cur))
            prev = cur
        return out

    pts = clip(pts, 0, xmin, True)
    pts = clip(pts, 0, xmax, False)
    pts = clip(pts, 1, ymin, True)
    pts = clip(pts, 1, ymax, False)
    return np.asarray(pts, dtype=float).reshape(-1, 2)


def tile_overlap_areas(polygon: np.ndarray, coords: np.ndarray, tile_size: float) -> np.ndarray:
    """Exact overlap area (level-0 px²) of ``polygon`` with each tile square.

    ``coords`` are the tiles' top-left level-0 ``x, y``; tiles are squares of side
    ``tile_size``. Tiles outside the polygon's bounding box are skipped cheaply.
    """
    polygon = np.asarray(polygon, dtype=float)
    coords = np.asarray(coords, dtype=float).reshape(-1, 2)
    areas = np.zeros(len(coords), dtype=float)
    if len(coords) == 0:
        return areas
    pxmin, pymin = polygon.min(axis=0)
    pxmax, pymax = polygon.max(axis=0)
    candidates = np.flatnonzero((coords[:, 0] < pxmax) & (coords[:, 0] + tile_size > pxmin)
                                & (coords[:, 1] < pymax) & (coords[:, 1] + tile_size > pymin))
    is_rect = _is_axis_aligned_rect(polygon)
    for i in candidates:
        x0, y0 = coords[i]
        x1, y1 = x0 + tile_size, y0 + tile_size
        if is_rect:
            w = min(x1, pxmax) - max(x0, pxmin)
            h = min(y1, pymax) - max(y0, pymin)
            areas[i] = max(w, 0.0) * max(h, 0.0)
        else:
            areas[i] = polygon_area(clip_polygon_to_rect(polygon, x0, y0, x1, y1))
    return areas


def _is_axis_aligned_rect(polygon: np.ndarray) -> bool:
    if len(polygon) != 4:
        return False
    xs, ys = np.unique(polygon[:, 0]), np.unique(polygon[:, 1])
    if len(xs) != 2 or len(ys) != 2:
        return False
    corners = {(x, y) for x in xs for y in ys}
    return {tuple(p) for p in polygon} == corners


def weighted_roi_means(polygon: np.ndarray, coords: np.ndarray, tile_size: float,
                       values: np.ndarray) -> tuple[np.ndarray, float, int]:
    """Area-weighted mean of tile ``values`` (N, S) over the ROI.

    Returns (means (S,), covered area in px², number of overlapping tiles); means are
    NaN when no tile overlaps.
    """
    areas = tile_overlap_areas(polygon, coords, tile_size)
    covered = float(areas.sum())
    n_tiles = int(np.count_nonzero(areas > 0))
    values = np.asarray(values, dtype=float)
    if covered <= 0:
        return np.full(values.shape[1], np.nan), 0.0, 0
    nz = areas > 0
    means = areas[nz] @ values[nz] / covered
    return means, covered, n_tiles
