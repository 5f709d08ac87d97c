"""Our stores read by the peer tools' own reading code paths, reimplemented minimally from
their documented formats (docs/interop.md): CLAM's Whole_Slide_Bag_FP, pt bags and
StitchCoords; STAMP's BagDataset/get_coords; TRIDENT's patch reader. The stores are the
pipeline's own, tiled and embedded from a real slide (CMU-1-Small-Region)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import openslide
import pytest
import torch
from PIL import Image

from emo import features, interop, slides, tiling
from emo.stores.features import read_feature_store
from emo.stores.tiles import read_tile_store_header, write_tile_store
from external_slides import cmu_small_region

SAMPLE = "CMU-1-Small-Region"
ENCODER = "efficientnet_lite0"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("interop")
    slide = cmu_small_region()
    info = slides.check_slide(SAMPLE, slide)
    result = tiling.tile_slide(info, {"tile_um": 112.0, "tile_px": 224})
    tile_store = root / "tiles.h5"
    write_tile_store(tile_store, tiling.build_store(result, "test", slides.slide_sha256(slide)))
    feature_store = root / "features.h5"
    features.extract_slide(sample=SAMPLE, slide_path=str(slide), tile_store_path=str(tile_store),
                           out_path=str(feature_store), encoder=ENCODER, batch_size=16, num_workers=0,
                           device="cpu", threads=1, progress=False)
    written = {fmt: interop.export_slide(fmt, SAMPLE, tile_store, feature_store, root / "export", ENCODER, "abc123")
               for fmt in interop.FORMATS}
    return {"slide": slide, "tiles": read_tile_store_header(tile_store), "features": read_feature_store(feature_store),
            "written": written, "root": root}


def _our_tile(exported, i):
    """The tile our encoder saw: level-0 region of patch_size_level0, resized to tile_px."""
    header = exported["tiles"]
    size0 = int(round(header.coords_attrs["patch_size_level0"]))
    with openslide.OpenSlide(str(exported["slide"])) as wsi:
        region = wsi.read_region(tuple(int(v) for v in header.coords[i]), 0, (size0, size0)).convert("RGB")
    return np.asarray(region.resize((int(header.attrs["tile_px"]),) * 2, Image.BILINEAR), dtype=float)


def test_there_are_tiles_to_read(exported):
    assert len(exported["tiles"].coords) >= 20


def test_clam_bag_reader_reads_our_tiles(exported):
    # CLAM Whole_Slide_Bag_FP: coords + attrs patch_level / patch_size, read_region at that level
    path = exported["written"]["clam"]["patches"]
    with h5py.File(path, "r") as f, openslide.OpenSlide(str(exported["slide"])) as wsi:
        coords = f["coords"][:]
        patch_level, patch_size = int(f["coords"].attrs["patch_level"]), int(f["coords"].attrs["patch_size"])
        np.testing.assert_array_equal(coords, exported["tiles"].coords)
        for i in (0, len(coords) // 2, len(coords) - 1):
            img = wsi.read_region(tuple(int(v) for v in coords[i]), patch_level, (patch_size, patch_size)).convert("RGB")
            ours = _our_tile(exported, i)
            theirs = np.asarray(img.resize(ours.shape[:2][::-1], Image.BILINEAR), dtype=float)
            assert np.abs(theirs - ours).mean() < 2.0, i   # the same tissue, up to the rounding of the size


def test_clam_h5_and_pt_bags_hold_our_features(exported):
    clam = exported["written"]["clam"]
    with h5py.File(clam["h5"], "r") as f:
        np.testing.assert_array_equal(f["features"][:], exported["features"].features)
        np.testing.assert_array_equal(f["coords"][:], exported["features"].coords)
    bag = torch.load(clam["pt"], weights_only=True)   # CLAM's Generic_MIL_Dataset: torch.load(pt_files/{slide}.pt)
    assert bag.dtype == torch.float32 and bag.shape == exported["features"].features.shape
    np.testing.assert_array_equal(bag.numpy(), exported["features"].features)


def test_clam_stitching(exported):
    # CLAM StitchCoords / DrawMapFromCoords: the level downsample and level dims of the
    # patch level, each patch drawn at the visualisation level
    path = exported["written"]["clam"]["patches"]
    with h5py.File(path, "r") as f, openslide.OpenSlide(str(exported["slide"])) as wsi:
        attrs = dict(f["coords"].attrs)
        coords = f["coords"][:]
        level = int(attrs["patch_level"])
        assert attrs["name"] == SAMPLE
        np.testing.assert_allclose(attrs["downsample"], [wsi.level_downsamples[level]] * 2)
        np.testing.assert_array_equal(attrs["level_dim"], wsi.level_dimensions[0])
        np.testing.assert_array_equal(attrs["downsampled_level_dim"], wsi.level_dimensions[level])
        vis_level = wsi.get_best_level_for_downsample(4)
        down = np.array([wsi.level_downsamples[vis_level]] * 2)
        w, h = wsi.level_dimensions[vis_level]
        canvas = np.zeros((h, w, 3), dtype=np.uint8)
        patch = np.array([attrs["patch_size"]] * 2) * np.asarray(attrs["downsample"])
        size = np.ceil(patch / down).astype(int)
        for coord in coords:
            x, y = np.ceil(coord / down).astype(int)
            img = np.asarray(wsi.read_region(tuple(int(v) for v in coord), vis_level, tuple(size)).convert("RGB"))
            canvas[y:y + size[1], x:x + size[0]] = img[:canvas.shape[0] - y, :canvas.shape[1] - x]
    drawn = canvas.any(axis=2)
    cells = np.zeros_like(drawn)
    for coord in coords:
        x, y = np.ceil(coord / down).astype(int)
        cells[y:y + size[1], x:x + size[0]] = True
    assert drawn[cells].mean() > 0.99 and not drawn[~cells].any()   # each tile where its coords say, nothing else


def test_stamp_reader(exported):
    # STAMP get_coords (tile_size_um + unit um) and BagDataset (/feats)
    path = exported["written"]["stamp"]["features"]
    mpp = exported["tiles"].attrs["mpp"]
    with h5py.File(path, "r") as f:
        assert f.attrs["unit"] == "um" and f.attrs["feat_type"] == "tile"
        tile_size_um = float(f.attrs["tile_size_um"])
        tile_size_px = int(f.attrs["tile_size_px"])
        coords_um = f["coords"][:]
        feats = torch.from_numpy(f["feats"][:]).float()
    np.testing.assert_allclose(coords_um / mpp, exported["tiles"].coords, atol=0.5 + 1e-6)   # to the pixel
    # STAMP's CoordsInfo.mpp is the tile's, tile_size_um / tile_size_px; times tile_px it is our tile side
    assert tile_size_um / tile_size_px * tile_size_px / mpp == pytest.approx(exported["tiles"].coords_attrs["patch_size_level0"])
    np.testing.assert_array_equal(feats.numpy(), exported["features"].features)
    # STAMP's rejection thumbnail puts tile (x, y) in grid cell floor(coords_um / tile_size_um): one tile per cell
    cells = np.floor(coords_um / tile_size_um).astype(int)
    assert len({tuple(c) for c in cells}) == len(cells)


def test_trident_reader(exported):
    written = exported["written"]["trident"]
    for key in ("patches", "features"):
        with h5py.File(written[key], "r") as f:
            attrs = dict(f["coords"].attrs)
            coords = f["coords"][:]
            for name in ("patch_size", "patch_size_level0", "level0_magnification", "target_magnification", "overlap",
                         "name", "savetodir"):
                assert name in attrs, (key, name)
            if key == "features":
                np.testing.assert_array_equal(f["features"][:], exported["features"].features)
    # TRIDENT reads patch_size_level0 px at level 0 and resizes them to patch_size
    assert attrs["patch_size"] == exported["tiles"].attrs["tile_px"]
    assert attrs["level0_magnification"] == pytest.approx(10 / exported["tiles"].attrs["mpp"], abs=1e-3)
    # TRIDENT's relation: patch_size_level0 = round(patch_size * level0_magnification / target_magnification)
    implied = attrs["patch_size"] * attrs["level0_magnification"] / attrs["target_magnification"]
    assert abs(attrs["patch_size_level0"] - implied) <= 0.5 + 1e-3
    with openslide.OpenSlide(str(exported["slide"])) as wsi:
        i = len(coords) // 3
        region = wsi.read_region(tuple(int(v) for v in coords[i]), 0, (int(attrs["patch_size_level0"]),) * 2)
        theirs = np.asarray(region.convert("RGB").resize((int(attrs["patch_size"]),) * 2, Image.BILINEAR), dtype=float)
    assert np.abs(theirs - _our_tile(exported, i)).mean() < 2.0


def test_every_export_carries_provenance(exported):
    for fmt, paths in exported["written"].items():
        for key, path in paths.items():
            if path.suffix != ".h5":
                continue
            with h5py.File(path, "r") as f:
                assert f.attrs["emo_sample"] == SAMPLE and f.attrs["emo_encoder"] == ENCODER, (fmt, key)
                assert f.attrs["code_version"] == "abc123"
                params = json.loads(f.attrs["params"])
                assert params["format"] == fmt and len(params["source"]["weights_sha256"]) == 64


def test_mismatched_stores_are_refused(exported, tmp_path):
    import shutil

    store = tmp_path / "features.h5"
    shutil.copy2(exported["root"] / "features.h5", store)
    with h5py.File(store, "r+") as f:   # a feature store of other tiles than the tile store's
        f["coords"][0] = f["coords"][0] + 1
    with pytest.raises(ValueError, match="hold different tiles"):
        interop.export_slide("stamp", SAMPLE, exported["root"] / "tiles.h5", store, tmp_path, ENCODER)
    assert not list(tmp_path.glob("stamp/**/*.h5"))


# ---------------------------------------------------------------- import (emo.peer_import)
from emo import peer_import  # noqa: E402
from emo.peer_import import PeerImportError  # noqa: E402


def _import_folder(exported, fmt):
    """The folder a user points the import at: TRIDENT's features_<encoder>, CLAM's and
    STAMP's feature folders."""
    base = exported["root"] / "export" / fmt / ENCODER
    return base / f"features_{ENCODER}" if fmt == "trident" else base


@pytest.mark.parametrize("fmt", peer_import.IMPORT_FORMATS)
def test_import_round_trip(exported, fmt, tmp_path):
    """Our stores exported (emo.interop) and imported back: features and coordinates
    identical, the colour/texture descriptors those of the same pixels."""
    out = tmp_path / f"{SAMPLE}.h5"
    peer = peer_import.import_slide(fmt, _import_folder(exported, fmt), SAMPLE, str(exported["slide"]), out,
                                    encoder=ENCODER, code_version="abc123")
    ours, back = exported["features"], read_feature_store(out)
    np.testing.assert_array_equal(back.features, ours.features)
    np.testing.assert_array_equal(back.coords, ours.coords)
    assert abs(back.coords_attrs["patch_size_level0"] - exported["tiles"].coords_attrs["patch_size_level0"]) <= 0.5
    assert back.coords_attrs["patch_size"] == exported["tiles"].coords_attrs["patch_size"]
    with h5py.File(out, "r") as f, h5py.File(exported["root"] / "features.h5", "r") as original:
        np.testing.assert_allclose(f["colour_texture"][:], original["colour_texture"][:], rtol=0.05, atol=0.02)
        assert f.attrs["import_format"] == fmt and f.attrs["code_version"] == "abc123"
        source = json.loads(f.attrs["import_source"])
    assert source["h5"]["sha256"] == peer_import._sha256(peer.files["h5"])
    assert f"{SAMPLE}.h5" in source["h5"]["path"]


def test_import_clam_pt_bag_when_h5_has_no_features(exported, tmp_path):
    clam = exported["written"]["clam"]
    folder = tmp_path / "clam"
    (folder / "h5_files").mkdir(parents=True)
    (folder / "pt_files").mkdir()
    with h5py.File(clam["h5"], "r") as src, h5py.File(folder / "h5_files" / f"{SAMPLE}.h5", "w") as dst:
        dst.create_dataset("coords", data=src["coords"][:])
        for key, value in src["coords"].attrs.items():
            dst["coords"].attrs[key] = value
    (folder / "pt_files" / f"{SAMPLE}.pt").write_bytes(clam["pt"].read_bytes())
    peer = peer_import.read_peer_features("clam", folder, SAMPLE, mpp=0.5, level0_size=(10**6, 10**6))
    np.testing.assert_array_equal(peer.features, exported["features"].features)
    assert set(peer.files) == {"h5", "pt"}


# Minimal files written by hand from each peer's documented layout (not by our export).
def _write(path, datasets, coords_attrs=None, root_attrs=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for name, data in datasets.items():
            f[name] = data
        for key, value in (coords_attrs or {}).items():
            f["coords"].attrs[key] = value
        for key, value in (root_attrs or {}).items():
            f.attrs[key] = value
    return path


FEATS = np.arange(12, dtype=np.float32).reshape(3, 4)


def test_hand_written_trident_clam_stamp(tmp_path):
    # TRIDENT at 20x from a 40x scan (0.25 µm/px): 256-px patches are 512 level-0 px
    _write(tmp_path / "trident" / "s1.h5", {"features": FEATS, "coords": np.array([[0, 0], [512, 0], [0, 512]])},
           {"patch_size": 256, "patch_size_level0": 512, "level0_magnification": 40, "target_magnification": 20})
    peer = peer_import.read_peer_features("trident", tmp_path / "trident", "s1", mpp=0.25, level0_size=(2000, 2000))
    assert peer.patch_size_level0 == 512 and peer.tile_px == 256
    np.testing.assert_array_equal(peer.coords, [[0, 0], [512, 0], [0, 512]])
    # CLAM patches at level 1 (downsample 4): 256 px there are 1024 level-0 px
    _write(tmp_path / "clam" / "h5_files" / "s1.h5", {"features": FEATS, "coords": np.array([[0, 0], [1024, 0],
                                                                                                  [0, 1024]])},
           {"patch_size": 256, "patch_level": 1})
    peer = peer_import.read_peer_features("clam", tmp_path / "clam", "s1", mpp=0.25, level0_size=(4000, 4000),
                                          level_downsamples=(1.0, 4.0))
    assert peer.patch_size_level0 == 1024 and peer.features.dtype == np.float32
    # STAMP: coords in µm, 256 µm tiles of 224 px on a 0.5 µm/px scan -> 512 level-0 px
    _write(tmp_path / "stamp" / "s1.h5", {"feats": FEATS, "coords": np.array([[0.0, 0.0], [256.0, 0.0],
                                                                               [256.0, 256.0]])},
           None, {"unit": "um", "tile_size_um": 256.0, "tile_size_px": 224, "extractor": "ctranspath"})
    peer = peer_import.read_peer_features("stamp", tmp_path / "stamp", "s1", mpp=0.5, level0_size=(2000, 2000))
    np.testing.assert_array_equal(peer.coords, [[0, 0], [512, 0], [512, 512]])
    assert peer.patch_size_level0 == 512 and peer.tile_px == 224 and peer.peer_attrs["extractor"] == "ctranspath"


def test_import_errors_name_slide_and_fix(tmp_path):
    folder = tmp_path / "trident"
    attrs = {"patch_size": 256, "patch_size_level0": 512, "level0_magnification": 40, "target_magnification": 20}
    _write(folder / "s1.h5", {"features": FEATS, "coords": np.array([[0, 0], [512, 0], [0, 512]])}, attrs)
    # a slide of the sheet without a file
    with pytest.raises(PeerImportError, match=r"1 slide\(s\) .* no trident feature file .*: s2 .*s2\.h5"):
        peer_import.check_peer_files("trident", folder, ["s1", "s2"])
    # coords outside the slide
    with pytest.raises(PeerImportError, match=r"slide 's1': 1 of 3 tiles .* outside the slide's 500 x 2000"):
        peer_import.read_peer_features("trident", folder, "s1", mpp=0.25, level0_size=(500, 2000))
    # magnification that does not match the slide's mpp
    with pytest.raises(PeerImportError, match=r"level-0 magnification 40x.*0.5 µm/px is 20x"):
        peer_import.read_peer_features("trident", folder, "s1", mpp=0.5, level0_size=(2000, 2000))
    # magnification / size attributes missing
    _write(folder / "s3.h5", {"features": FEATS, "coords": np.zeros((3, 2))}, {"patch_size": 256})
    with pytest.raises(PeerImportError, match=r"slide 's3'.*lacks attribute\(s\) patch_size_level0, "
                                              r"level0_magnification, target_magnification"):
        peer_import.read_peer_features("trident", folder, "s3", mpp=0.25, level0_size=(2000, 2000))
    # STAMP coords without unit
    _write(tmp_path / "stamp" / "s1.h5", {"feats": FEATS, "coords": np.zeros((3, 2))}, None,
           {"tile_size_um": 256.0, "tile_size_px": 224})
    with pytest.raises(PeerImportError, match=r"slide 's1'.*no 'unit' attribute"):
        peer_import.read_peer_features("stamp", tmp_path / "stamp", "s1", mpp=0.5, level0_size=(2000, 2000))
    # CLAM without patch_level
    _write(tmp_path / "clam" / "h5_files" / "s1.h5", {"features": FEATS, "coords": np.zeros((3, 2))},
           {"patch_size": 256})
    with pytest.raises(PeerImportError, match=r"slide 's1'.*lacks attribute\(s\) patch_level"):
        peer_import.read_peer_features("clam", tmp_path / "clam", "s1", mpp=0.5, level0_size=(2000, 2000))
    # features and coords of different lengths
    _write(folder / "s4.h5", {"features": FEATS, "coords": np.zeros((2, 2))}, attrs)
    with pytest.raises(PeerImportError, match=r"slide 's4'.*\(3, 4\) features but 2 coords"):
        peer_import.read_peer_features("trident", folder, "s4", mpp=0.25, level0_size=(2000, 2000))
    # feature widths differing across slides
    _write(folder / "s5.h5", {"features": np.zeros((3, 8), np.float32), "coords": np.zeros((3, 2))}, attrs)
    peers = {s: peer_import.read_peer_features("trident", folder, s, mpp=0.25, level0_size=(2000, 2000))
             for s in ("s1", "s5")}
    with pytest.raises(PeerImportError, match=r"differ in width across slides \(4: s1; 8: s5\)"):
        peer_import.check_feature_dims(peers)
    with pytest.raises(PeerImportError, match="unknown feature import format 'qupath'"):
        peer_import.peer_files("qupath", folder, "s1")


def test_import_slides_checks_every_slide_before_reading_pixels(exported, tmp_path, monkeypatch):
    folder = _import_folder(exported, "trident")
    slides = {SAMPLE: str(exported["slide"]), "absent-slide": str(exported["slide"])}
    read = []
    monkeypatch.setattr(peer_import, "colour_texture_at", lambda *a, **k: read.append(a) or None)
    with pytest.raises(PeerImportError, match="absent-slide"):
        peer_import.import_slides("trident", folder, slides, tmp_path, encoder=ENCODER)
    assert not read and not list(tmp_path.glob("*.h5"))
    monkeypatch.undo()
    written = peer_import.import_slides("trident", folder, {SAMPLE: str(exported["slide"])}, tmp_path,
                                        encoder=ENCODER)
    np.testing.assert_array_equal(read_feature_store(written[SAMPLE]).features, exported["features"].features)
