"""emo.tiling / emo.tissue: physical tile grid, QC reasons, TileReader, real slide."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy import ndimage

from emo import slides, tiling, tissue
from external_slides import cmu_small_region
from tiling_fixtures import (BLUR_BOX, PEN_BOX, TEST_PARAMS, TEST_TILE_UM, physical_box_contains,
                             synthetic_slides)


@pytest.fixture(scope="module")
def results():
    out = {}
    for key in ("x40", "x20"):
        info = slides.check_slide(key, synthetic_slides()[key])
        out[key] = tiling.tile_slide(info, TEST_PARAMS)
    return out


def test_20x_and_40x_give_the_same_physical_tiles(results):
    r40, r20 = results["x40"], results["x20"]
    for r in (r40, r20):
        assert r.geometry.tile_size0 * r.info.mpp == pytest.approx(TEST_TILE_UM)
        assert r.geometry.tile_px == TEST_PARAMS["tile_px"]
    # 40x reads a coarser pyramid level than 20x, at the same physical resolution
    assert r40.geometry.read_downsample * r40.info.mpp == pytest.approx(r20.geometry.read_downsample * r20.info.mpp)
    assert r40.geometry.read_level == r20.geometry.read_level + 1
    # the same grid positions in µm
    um40 = r40.candidates["coords"] * r40.info.mpp
    um20 = r20.candidates["coords"] * r20.info.mpp
    common = {tuple(p) for p in np.round(um40, 3)} & {tuple(p) for p in np.round(um20, 3)}
    assert len(common) >= 0.9 * max(len(um40), len(um20))
    n40, n20 = int(r40.candidates["accepted"].sum()), int(r20.candidates["accepted"].sum())
    assert n40 > 5 and abs(n40 - n20) <= max(1, 0.1 * n40)
    # the same pixels, up to JPEG and pyramid resampling
    s40, s20 = slides.open_slide("x40", r40.info.path), slides.open_slide("x20", r20.info.path)
    both = sorted(common)[:8]
    for x_um, y_um in both:
        t40 = tiling.read_tile(s40, round(x_um / 0.25), round(y_um / 0.25), r40.geometry)
        t20 = tiling.read_tile(s20, round(x_um / 0.5), round(y_um / 0.5), r20.geometry)
        assert t40.shape == t20.shape == (48, 48, 3)
        assert np.abs(t40.astype(int) - t20.astype(int)).mean() < 6


def test_pen_and_blur_are_rejected_with_their_reasons(results):
    r = results["x40"]
    c = r.candidates
    width_um, height_um = r.info.level0_width * r.info.mpp, r.info.level0_height * r.info.mpp
    in_pen = in_blur = 0
    for (x, y), reason in zip(c["coords"] * r.info.mpp, c["reject_reason"]):
        if physical_box_contains(PEN_BOX, width_um, height_um, x, y, TEST_TILE_UM):
            assert reason == "pen"
            in_pen += 1
        elif physical_box_contains(BLUR_BOX, width_um, height_um, x, y, TEST_TILE_UM):
            assert reason == "blur"
            in_blur += 1
    assert in_pen >= 1 and in_blur >= 1
    accepted = c["accepted"]
    assert accepted.sum() > 5
    assert (c["sharpness"][accepted] >= tiling.tiling_params(TEST_PARAMS)["min_sharpness"]).all()
    assert (c["sharpness"][c["reject_reason"] == "blur"] < tiling.tiling_params(TEST_PARAMS)["min_sharpness"]).all()
    assert (c["tissue_fraction"][accepted] >= 0.5).all()
    assert (c["background_fraction"][c["reject_reason"] == "background"] > 0.5).all()


def test_reject_reasons_follow_thresholds():
    p = tiling.tiling_params({})
    assert tiling.reject_reason(1.0, 100.0, 0.0, 0.0, p) == ""
    assert tiling.reject_reason(1.0, 100.0, 0.0, 0.9, p) == "background"
    assert tiling.reject_reason(0.2, 100.0, 0.5, 0.0, p) == "pen"
    assert tiling.reject_reason(0.2, 100.0, 0.0, 0.0, p) == "low_tissue"
    assert tiling.reject_reason(1.0, 5.0, 0.0, 0.0, p) == "blur"


def test_sharpness_matches_laplacian_reference():
    rng = np.random.default_rng(3)
    tile = rng.integers(0, 256, size=(40, 40, 3)).astype(np.uint8)
    grey = tile.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    reference = ndimage.laplace(grey)[1:-1, 1:-1].var()
    assert tiling.sharpness(tile.astype(np.float32)) == pytest.approx(reference, rel=1e-5)
    blurred = ndimage.gaussian_filter(tile.astype(np.float32), (2, 2, 0))
    assert tiling.sharpness(blurred) < tiling.sharpness(tile.astype(np.float32)) / 10


def test_otsu_matches_exhaustive_search():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(40, 8, 3000), rng.normal(150, 20, 1000)]).clip(0, 255).astype(np.uint8)

    def between(t):
        lo, hi = values[values <= t].astype(float), values[values > t].astype(float)
        if not len(lo) or not len(hi):
            return -1
        return len(lo) * len(hi) * (lo.mean() - hi.mean()) ** 2

    best = max(range(256), key=between)
    assert between(tissue.otsu_threshold(values)) == pytest.approx(between(best))


def test_pixel_classes():
    rgb = np.array([[[240, 240, 238], [40, 70, 180], [30, 160, 90], [25, 25, 30],
                     [60, 20, 90], [200, 120, 170], [51, 65, 106], [232, 212, 222], [214, 214, 212]]],
                   dtype=np.uint8)
    # glass, blue pen, green pen, black pen, dark nucleus, eosin, haematoxylin-blue nucleus,
    # pale loose stroma (S 0.086: "background" under the old S < 0.10 rule), grey 214
    assert tissue.white_pixels(rgb)[0].tolist() == [True] + [False] * 7 + [True]
    # relative to the slide's glass: on a slide whose glass is V 246, grey 214 is not glass-coloured
    assert tissue.white_pixels(rgb, tissue.white_min_value(246))[0].tolist() == [True] + [False] * 8
    assert tissue.pen_pixels(rgb)[0].tolist() == [False, True, True, True, False, False, False, False, False]


def test_tile_reader_returns_the_pixels_qc_saw(results, tmp_path):
    r = results["x40"]
    from emo.stores import tiles as tile_store

    path = tmp_path / "x40.h5"
    tile_store.write_tile_store(path, tiling.build_store(r, "test", "0" * 64))
    reader = tiling.TileReader(r.info.path, path)
    assert len(reader) == int(r.candidates["accepted"].sum())
    metrics = {k: r.candidates[k][r.candidates["accepted"]] for k in ("sharpness", "pen_fraction",
                                                                       "background_fraction")}
    for i, (tile, (x0, y0)) in enumerate(zip(reader, reader.coords)):
        assert tile.dtype == np.uint8 and tile.shape == (48, 48, 3)
        envelope = tiling.tile_envelope(r.mask.mask, r.mask.downsample, x0, y0, r.geometry.tile_size0, 48)
        sharp, pen, background = tiling.tile_qc(tile, envelope, r.mask.white_min_value)
        assert np.float32(sharp) == metrics["sharpness"][i]
        assert np.float32(pen) == metrics["pen_fraction"][i]
        assert np.float32(background) == metrics["background_fraction"][i]
    # picklable (DataLoader workers), reopening lazily
    first = reader[0]
    clone = pickle.loads(pickle.dumps(reader))
    assert clone._slide is None
    np.testing.assert_array_equal(clone[0], first)
    np.testing.assert_array_equal(clone[-1], reader[len(reader) - 1])
    with pytest.raises(IndexError):
        reader[len(reader)]
    with pytest.raises(Exception, match="mpp"):
        tiling.TileReader(r.info.path, path, mpp=0.3)


def test_block_reads_equal_single_tile_reads_at_non_integer_downsample(tmp_path):
    """Odd level-0 sizes give non-integer level downsamples; block and single reads agree."""
    from tiling_fixtures import synthetic_he, write_svs

    path = write_svs(synthetic_he(1001, 1203, 0.25, seed=5), tmp_path / "odd.svs", 0.25)
    info = slides.check_slide("odd", path)
    geom = tiling.geometry_for(info.level_downsamples, info.mpp, 40.0, 32)
    assert geom.read_level > 0 and not geom.integer_downsample
    slide = slides.open_slide("odd", path)
    xs = [int(round(i * geom.tile_size0)) for i in range(1, 6)]
    y0 = int(round(2 * geom.tile_size0))
    run = tiling.read_tile_run(slide, xs, y0, geom)
    for x0, tile in zip(xs, run):
        single = tiling.read_tile(slide, x0, y0, geom)
        np.testing.assert_array_equal(single, tile)


def test_cap_is_seeded_and_keeps_reasons():
    info = slides.check_slide("x40", synthetic_slides()["x40"])
    params = dict(TEST_PARAMS, max_tiles_per_slide=5, seed=7)
    a = tiling.tile_slide(info, params)
    b = tiling.tile_slide(info, params)
    assert a.candidates["accepted"].sum() == 5
    assert (a.candidates["reject_reason"] == "cap").sum() > 0
    np.testing.assert_array_equal(a.coords, b.coords)
    other = tiling.tile_slide(info, dict(params, seed=8))
    assert not np.array_equal(a.coords, other.coords)


def test_cmu_small_region_at_half_micron():
    path = cmu_small_region()
    info = slides.check_slide("CMU-1-Small-Region", path, mpp_override=0.5)
    r = tiling.tile_slide(info, {})   # defaults: 271 µm tiles, 224 px
    assert r.geometry.read_level == 0
    assert r.geometry.tile_size0 == pytest.approx(542.0)
    c = r.candidates
    # 1110 x 1483.5 µm -> a 5 x 6 grid whose last column and row are partial; the tissue covers part of it
    assert 0 < len(c["coords"]) <= 30
    assert (c["coords"][:, 1] == 5 * 542).any()      # the partial last row holds tissue: candidates there
    assert c["accepted"].sum() >= 3
    assert (c["reject_reason"] != "").sum() >= 1
    assert (c["sharpness"][c["accepted"]] >= tiling.tiling_params(None)["min_sharpness"]).all()
    assert (c["tissue_fraction"][c["accepted"]] >= tiling.tiling_params(None)["min_tissue_fraction"]).all()
    assert set(c["reject_reason"][~c["accepted"]]) <= {"background", "low_tissue"}   # no pen, no blur
    order = np.lexsort((c["coords"][:, 0], c["coords"][:, 1]))
    np.testing.assert_array_equal(order, np.arange(len(order)))   # row-major
    assert 0.1 < r.mask.mask.mean() < 0.9


def test_runs_group_adjacent_candidates():
    assert tiling._runs([0, 1, 2, 3, 5, 6, 9], 2) == [[0, 1], [2, 3], [5, 6], [9]]
    runs = tiling._runs(list(range(40)))
    assert [len(r) for r in runs] == [tiling.BLOCK_TILES, tiling.BLOCK_TILES, 40 - 2 * tiling.BLOCK_TILES]
    assert sum(runs, []) == list(range(40))


@pytest.mark.parametrize("mpp, tile_um, expected", [
    (352.8, 271.0, r"tiles of 271 µm \(config tiling.tile_um\) at 352.8 µm/px \(mpp from the slide metadata\) "
                   r"are 0.7681 level-0 px a side; the slide is 2220 x 2967 px: smaller than 8 px"),
    (0.5, 2.0, r"tiles of 2 µm .* at 0.5 µm/px .* are 4 level-0 px a side; the slide is 2220 x 2967 px: smaller"),
    (0.499, 2000.0, r"tiles of 2000 µm .* at 0.499 µm/px .* are 4008 level-0 px a side; the slide is 2220 x 2967 "
                    r"px: a tile is larger than the slide"),
])
def test_tile_geometry_is_refused_before_any_pixel_is_read(monkeypatch, mpp, tile_um, expected):
    import dataclasses

    info = dataclasses.replace(slides.check_slide("CMU-1-Small-Region", cmu_small_region()), mpp=mpp)

    def no_pixels(*args, **kwargs):
        raise AssertionError("the slide was opened for pixels before the geometry check")

    monkeypatch.setattr(tiling, "open_slide", no_pixels)
    with pytest.raises(tiling.SlideError, match=expected) as error:
        tiling.tile_slide(info, {"tile_um": tile_um})
    print(error.value)
    assert "CMU-1-Small-Region" in str(error.value) and "'mpp' column of the sample sheet" in str(error.value)
    if tile_um == 2.0:  # a plausible mpp: the tile size is what to fix
        assert "tiling.tile_um is in µm" in str(error.value)
