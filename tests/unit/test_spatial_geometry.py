"""ROI geometry: polygon clipping, exact tile overlap areas, area-weighted ROI means,
ROI-table validation and ROIs outside the slide."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emo import spatial
from emo.errors import ConfigError, InputTableError


def test_polygon_area_shoelace():
    assert spatial.polygon_area([[0, 0], [4, 0], [4, 3], [0, 3]]) == 12.0
    assert spatial.polygon_area([[0, 0], [0, 3], [4, 3], [4, 0]]) == 12.0  # orientation does not matter
    assert spatial.polygon_area([[0, 0], [4, 0], [0, 3]]) == 6.0


def test_rect_overlap_matches_hand_computed_areas():
    # tiles of side 100 at (0,0), (100,0), (0,100), (100,100), (300,300); ROI x 50..170, y 20..120
    coords = np.array([[0, 0], [100, 0], [0, 100], [100, 100], [300, 300]])
    roi = np.array([[50, 20], [170, 20], [170, 120], [50, 120]], dtype=float)
    areas = spatial.tile_overlap_areas(roi, coords, 100.0)
    expected = [50 * 80, 70 * 80, 50 * 20, 70 * 20, 0]
    np.testing.assert_allclose(areas, expected)
    assert areas.sum() == pytest.approx(120 * 100)


def test_triangle_overlap_matches_hand_computed_areas():
    # right triangle (0,0),(200,0),(0,200): the tile at (0,0) is fully inside (10000),
    # tiles (100,0) and (0,100) each hold half their square (5000), tile (100,100) none.
    coords = np.array([[0, 0], [100, 0], [0, 100], [100, 100]])
    tri = np.array([[0, 0], [200, 0], [0, 200]], dtype=float)
    np.testing.assert_allclose(spatial.tile_overlap_areas(tri, coords, 100.0), [10000, 5000, 5000, 0])


def test_concave_polygon_overlap():
    # L-shape covering tiles (0,0), (100,0), (0,100) completely, nothing of (100,100)
    ell = np.array([[0, 0], [200, 0], [200, 100], [100, 100], [100, 200], [0, 200]], dtype=float)
    coords = np.array([[0, 0], [100, 0], [0, 100], [100, 100], [50, 50]])
    areas = spatial.tile_overlap_areas(ell, coords, 100.0)
    np.testing.assert_allclose(areas, [10000, 10000, 10000, 0, 7500])


def test_polygon_clip_equals_rect_fast_path():
    rng = np.random.default_rng(3)
    coords = rng.uniform(0, 1000, size=(200, 2))
    rect = np.array([[120.5, 230.25], [640.0, 230.25], [640.0, 700.75], [120.5, 700.75]])
    fast = spatial.tile_overlap_areas(rect, coords, 137.0)
    # rotate the vertex order so the axis-aligned shortcut is not taken (5 vertices, one collinear)
    slow_poly = np.vstack([rect, [[120.5, 500.0]]])[[0, 1, 2, 3, 4]]
    slow = spatial.tile_overlap_areas(slow_poly, coords, 137.0)
    np.testing.assert_allclose(fast, slow, atol=1e-6)


def test_weighted_means_use_overlap_areas():
    coords = np.array([[0, 0], [100, 0]])
    values = np.array([[1.0, 10.0], [3.0, 20.0]])
    roi = np.array([[25, 0], [125, 0], [125, 100], [25, 100]], dtype=float)   # 75 % tile 0, 25 % tile 1
    means, covered, n = spatial.weighted_roi_means(roi, coords, 100.0, values)
    np.testing.assert_allclose(means, [0.75 * 1 + 0.25 * 3, 0.75 * 10 + 0.25 * 20])
    assert covered == pytest.approx(10000) and n == 2
    empty, covered, n = spatial.weighted_roi_means(roi + 1000, coords, 100.0, values)
    assert np.all(np.isnan(empty)) and covered == 0 and n == 0


def _write(tmp_path, rows, name="rois.tsv"):
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return path


def test_load_rois_rect_polygon_units(tmp_path):
    path = _write(tmp_path, [
        {"sample": "S1", "roi": "b", "shape": "rect", "units": "um", "x": 10, "y": 20, "width": 30, "height": 40,
         "polygon": ""},
        {"sample": "S1", "roi": "a", "shape": "polygon", "units": "px", "x": "", "y": "", "width": "",
         "height": "", "polygon": "0 0,10 0,10 10,0 0"},
    ])
    rois = spatial.load_rois(path)
    assert list(rois["roi"]) == ["a", "b"]                       # sorted
    assert len(rois.loc[0, "vertices"]) == 3                     # closing vertex removed
    px = spatial.roi_vertices_px(rois.loc[1], mpp=0.5)
    np.testing.assert_allclose(px.min(axis=0), [20, 40])
    np.testing.assert_allclose(px.max(axis=0), [80, 120])
    again = spatial.read_validated_rois(_write(tmp_path, spatial.rois_to_table(rois), "valid.tsv"))
    np.testing.assert_allclose(again.loc[1, "vertices"], rois.loc[1, "vertices"])


@pytest.mark.parametrize("row, message", [
    ({"shape": "circle"}, "column 'shape'"),
    ({"units": "mm"}, "column 'units'"),
    ({"width": -5}, "width and height must be > 0"),
    ({"x": "abc"}, "column 'x'"),
    ({"shape": "polygon", "polygon": "0 0,1 1"}, "at least 3 vertices"),
    ({"shape": "polygon", "polygon": "0 0,a b,3 3"}, "numeric vertices"),
])
def test_load_rois_errors_name_row_and_roi(tmp_path, row, message):
    base = {"sample": "S1", "roi": "r1", "shape": "rect", "units": "px", "x": 0, "y": 0, "width": 10,
            "height": 10, "polygon": ""}
    base.update(row)
    with pytest.raises(InputTableError, match=message) as info:
        spatial.load_rois(_write(tmp_path, [base]))
    assert "row 1" in str(info.value) and "'r1'" in str(info.value)


def test_load_rois_duplicates_unknown_samples_missing_file(tmp_path):
    row = {"sample": "S1", "roi": "r1", "shape": "rect", "units": "px", "x": 0, "y": 0, "width": 10, "height": 10}
    with pytest.raises(InputTableError, match="more than once"):
        spatial.load_rois(_write(tmp_path, [row, row]))
    with pytest.raises(InputTableError, match="S1 are not in the sample sheet"):
        spatial.load_rois(_write(tmp_path, [row]), samples=["S2"])
    with pytest.raises(ConfigError, match="spatial.rois"):
        spatial.load_rois(tmp_path / "nope.tsv")


def test_roi_outside_slide_names_slide_and_roi(tmp_path):
    from spatial_fixtures import MPP, NX, TILE, write_slide

    tiles, preds = write_slide(tmp_path, "S1", np.random.default_rng(0))
    path = _write(tmp_path, [{"sample": "S1", "roi": "edge", "shape": "rect", "units": "um",
                              "x": (NX * TILE - 50) * MPP, "y": 0, "width": 100 * MPP, "height": 100 * MPP}])
    with pytest.raises(InputTableError, match=r"slide 'S1', ROI 'edge'.*level-0"):
        spatial.slide_roi_predictions("S1", spatial.load_rois(path), tiles, preds)


def test_slide_roi_predictions_against_direct_average(tmp_path):
    from spatial_fixtures import GENES, write_slide

    tiles, preds = write_slide(tmp_path, "S1", np.random.default_rng(1))
    # ROI exactly covering the 2x2 tiles at (200..400, 300..500): plain mean of those four tiles
    path = _write(tmp_path, [{"sample": "S1", "roi": "q", "shape": "rect", "units": "px", "x": 200, "y": 300,
                              "width": 200, "height": 200}])
    table = spatial.slide_roi_predictions("S1", spatial.load_rois(path), tiles, preds)
    import h5py

    with h5py.File(preds) as h5:
        coords, values = h5["coords"][:], h5["tiles/values"][:]
    inside = (coords[:, 0] >= 200) & (coords[:, 0] < 400) & (coords[:, 1] >= 300) & (coords[:, 1] < 500)
    assert inside.sum() == 4
    np.testing.assert_allclose(table.loc[0, GENES].to_numpy(float), values[inside].mean(0), rtol=1e-6)
    assert table.loc[0, "coverage"] == pytest.approx(1.0) and table.loc[0, "n_tiles"] == 4
    # restricted to the genes the probes need: only those columns are read
    subset = spatial.slide_roi_predictions("S1", spatial.load_rois(path), tiles, preds, genes=["MKI67", "NOPE"])
    assert list(subset.columns) == ["sample", "roi", "area_px", "coverage", "n_tiles", "MKI67"]
    assert subset.loc[0, "MKI67"] == pytest.approx(table.loc[0, "MKI67"])


def test_probe_columns_reads_header(tmp_path):
    path = tmp_path / "counts.tsv"
    path.write_text("sample\troi\tNeg-1\tCD8A\nA\t1\t3\t4\n")
    assert spatial.probe_columns(path) == ["Neg-1", "CD8A"]
