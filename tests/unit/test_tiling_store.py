"""emo.stores.tiles: contents and attributes as documented, determinism across runs."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from emo import slides, stain, tiling
from emo.stores import tiles as tile_store
from emo.provenance import file_sha256
from tiling_fixtures import TEST_PARAMS, synthetic_slides

REFERENCE = str(Path(__file__).resolve().parents[2] / "resources" / "macenko_reference.json")


def _write(path, key="x40", params=TEST_PARAMS, reference=None, mpp=None):
    info = slides.check_slide(key, synthetic_slides()[key], mpp)
    result = tiling.tile_slide(info, params, reference, REFERENCE if reference is not None else "")
    tile_store.write_tile_store(path, tiling.build_store(result, "abc123def456", slides.slide_sha256(info.path)))
    return result


def test_store_contents_and_attributes(tmp_path):
    path = tmp_path / "x40.h5"
    result = _write(path)
    with h5py.File(path, "r") as f:   # plain h5py, as a user would
        assert set(f.keys()) == {"coords", "candidates", "mask"}
        coords = f["coords"]
        assert coords.dtype == np.int64 and coords.ndim == 2 and coords.shape[1] == 2
        assert coords.attrs["patch_level"] == 0
        assert coords.attrs["patch_size"] == 256
        assert coords.attrs["patch_size_level0"] == pytest.approx(256.0)
        assert coords.attrs["downsample"] == pytest.approx(256.0 / 48)
        cand = f["candidates"]
        m = cand["coords"].shape[0]
        assert m >= coords.shape[0] > 0
        for name in ("tissue_fraction", "sharpness", "pen_fraction", "background_fraction"):
            assert cand[name].dtype == np.float32 and cand[name].shape == (m,)
        reasons = cand["reject_reason"].asstr()[:]
        assert h5py.check_string_dtype(cand["reject_reason"].dtype).encoding == "utf-8"
        assert set(reasons) <= {"", "background", "low_tissue", "pen", "blur", "cap"}
        accepted = cand["accepted"][:]
        assert accepted.dtype == bool
        np.testing.assert_array_equal(accepted, reasons == "")
        np.testing.assert_array_equal(coords[:], cand["coords"][:][accepted])
        order = np.lexsort((coords[:, 0], coords[:, 1]))
        np.testing.assert_array_equal(order, np.arange(len(order)))
        for name in ("tissue_fraction", "pen_fraction", "background_fraction"):
            assert ((cand[name][:] >= 0) & (cand[name][:] <= 1)).all()
        mask = f["mask"]
        assert mask.dtype == np.uint8 and set(np.unique(mask[:])) <= {0, 1}
        assert mask.attrs["downsample"] == pytest.approx(4.0 / 0.25)
        attrs = dict(f.attrs)
    for key in tile_store.ROOT_ATTRS:
        assert key in attrs, key
    assert attrs["sample"] == "x40"
    assert attrs["slide_sha256"] == file_sha256(synthetic_slides()["x40"])
    assert attrs["vendor"] == "aperio" and attrs["mpp_source"] == "metadata"
    assert attrs["mpp"] == pytest.approx(0.25)
    assert (attrs["level0_width"], attrs["level0_height"]) == (2048, 1536)
    assert attrs["tile_um"] == pytest.approx(64.0) and attrs["tile_px"] == 48
    assert attrs["read_level"] == result.geometry.read_level == 2
    assert attrs["read_downsample"] == pytest.approx(4.0)
    params = json.loads(attrs["params"])
    assert params == tiling.tiling_params(TEST_PARAMS)
    assert attrs["code_version"] == "abc123def456"
    assert attrs["created"]


def _contents(path):
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()].tobytes() if obj.dtype.kind != "O" else list(obj.asstr()[()])
            out[name + "@attrs"] = {k: (v.tolist() if hasattr(v, "tolist") else v)
                                    for k, v in obj.attrs.items() if k != "created"}
        f.visititems(visit)
        out["@root"] = {k: v for k, v in f.attrs.items() if k != "created"}
    return out


def test_two_runs_give_identical_stores(tmp_path):
    reference = stain.load_reference(REFERENCE)
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    _write(a, reference=reference)
    _write(b, reference=reference)
    ca, cb = _contents(a), _contents(b)
    assert ca.keys() == cb.keys()
    for key in ca:
        assert ca[key] == cb[key], key
    # a changed parameter is visible
    c = tmp_path / "c.h5"
    _write(c, params=dict(TEST_PARAMS, min_sharpness=30.0))
    assert _contents(c)["@root"]["params"] != ca["@root"]["params"]


def test_mpp_from_sample_sheet_is_recorded(tmp_path):
    path = tmp_path / "nompp.h5"
    _write(path, key="no_mpp", mpp=0.5)
    with h5py.File(path, "r") as f:
        assert f.attrs["mpp_source"] == "sample_sheet"
        assert f.attrs["mpp"] == pytest.approx(0.5)


def test_write_is_atomic_on_error(tmp_path):
    path = tmp_path / "bad.h5"
    result = _write(tmp_path / "ok.h5")
    store = tiling.build_store(result, "x", "0")
    del store.attrs["vendor"]
    with pytest.raises(ValueError, match="vendor"):
        tile_store.write_tile_store(path, store)
    assert not path.exists()
    assert not list(tmp_path.glob("*.tmp*"))
