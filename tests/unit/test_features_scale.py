"""Scale per encoder: native scales in the registry, the tile geometry each encoder's
features come from, and the mismatch warning and fields of the feature store."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from emo import encoders as E
from emo import features as F
from emo import settings
from emo.errors import ConfigError
from emo.stores.features import read_feature_store
from features_fixtures import ArrayTiles, make_tile_store


def _features(**values) -> dict:
    return settings.section("features", values)


def test_native_geometries_follow_the_registry():
    tiling = settings.section("tiling")
    base = E.tiling_geometry(tiling)
    for name, spec in E.ENCODERS.items():
        geometry, source = E.encoder_geometry(name, _features(), tiling)
        if spec.native_um_per_px is None:  # ImageNet CNNs keep the tiling config's geometry
            assert (geometry, source) == (base, "tiling"), name
        else:
            assert source == "native" and geometry.tile_px == spec.input_px, name
            assert math.isclose(geometry.um_per_px, spec.native_um_per_px), name
    # the foundation models, as their model cards: 224 px / 448 px at ~0.5 µm/px
    assert E.encoder_geometry("uni", _features(), tiling)[0] == E.Geometry(112.0, 224)
    assert E.encoder_geometry("conch", _features(), tiling)[0] == E.Geometry(224.0, 448)
    assert E.Geometry(112.0, 224).name == "112um_224px" and E.Geometry(112.5, 224).name == "112.5um_224px"


def test_geometry_config_choices():
    tiling = dict(settings.section("tiling"), tile_um=200.0, tile_px=256)
    every = _features(geometry="tiling")
    for name in E.encoder_names():
        assert E.encoder_geometry(name, every, tiling) == (E.Geometry(200.0, 256), "tiling")
    explicit = _features(geometry="tiling", encoder_geometry={"uni": {"tile_um": 128, "tile_px": 224}})
    assert E.encoder_geometry("uni", explicit, tiling) == (E.Geometry(128.0, 224), "features.encoder_geometry.uni")
    assert E.encoder_geometry("conch", explicit, tiling)[0] == E.Geometry(200.0, 256)
    with pytest.raises(ConfigError, match="features.encoder_geometry"):
        _features(encoder_geometry={"uni": {"tile_um": 128}})
    with pytest.raises(ConfigError, match="features.geometry"):
        _features(geometry="encoder")


def test_scale_check_tolerance_both_ways():
    uni = E.get_spec("uni")
    assert not E.check_scale(uni, 112.0, 0.1).mismatch
    emo_tiles = E.check_scale(uni, 271.0, 0.1)  # the issue: EMO's 271 µm tiles at 224 px
    assert emo_tiles.mismatch and math.isclose(emo_tiles.ratio, 271.0 / 224 / 0.5)
    assert not E.check_scale(uni, 120.0, 0.1).mismatch and E.check_scale(uni, 120.0, 0.05).mismatch
    assert E.check_scale(uni, 100.0, 0.1).mismatch       # 1.12x finer
    assert not E.check_scale(uni, 103.0, 0.1).mismatch   # 1.087x finer
    lite0 = E.check_scale(E.get_spec("efficientnet_lite0"), 271.0, 0.0)
    assert lite0.ratio is None and not lite0.mismatch


@pytest.fixture(scope="module")
def conch_weights(tmp_path_factory):
    """CONCH with random weights, as a published-layout file (a real encoder with a native scale)."""
    torch.manual_seed(4)
    module = E.get_spec("conch").build()
    path = tmp_path_factory.mktemp("conch") / "pytorch_model.bin"
    torch.save({f"visual.{k}": v for k, v in module.state_dict().items()}, path)
    return path


def _extract(tmp_path, name, weights, tile_um, tile_px, **kwargs):
    store = make_tile_store(tmp_path / f"tiles_{name}.h5", 1, tile_px=tile_px, tile_um=tile_um)
    out = F.extract_slide(sample="S1", slide_path="unused.svs", tile_store_path=str(store),
                          out_path=str(tmp_path / f"{name}.h5"), encoder="conch", weights=str(weights),
                          batch_size=1, num_workers=0, device="cpu", threads=2, code_version="t",
                          tiles=ArrayTiles(1, tile_px, seed=2), progress=False, **kwargs)
    return read_feature_store(out).attrs


def test_off_scale_extraction_warns_and_is_recorded(tmp_path, conch_weights, caplog):
    caplog.set_level(logging.WARNING, logger="emo")
    # EMO geometry (271 µm, 224 px) for CONCH: upsampled to 448 px -> 0.60 µm/px
    attrs = _extract(tmp_path, "emo", conch_weights, 271.0, 224)
    warnings = [r.getMessage() for r in caplog.records if "pretrained at" in r.getMessage()]
    assert len(warnings) == 1, caplog.text
    assert "encoder conch" in warnings[0] and "features.encoder_geometry.conch" in warnings[0]
    assert "{tile_um: 224, tile_px: 448}" in warnings[0] and "1.21x coarser" in warnings[0]
    assert attrs["tile_um"] == 271.0 and attrs["tile_px"] == 224 and attrs["input_px"] == 448
    assert math.isclose(attrs["input_um_per_px"], 271.0 / 448) and attrs["encoder_native_um_per_px"] == 0.5
    assert math.isclose(attrs["scale_ratio"], 271.0 / 448 / 0.5) and attrs["scale_tolerance"] == 0.1
    assert bool(attrs["scale_mismatch"]) is True
    # CONCH's native geometry: no warning, no mismatch
    caplog.clear()
    attrs = _extract(tmp_path, "native", conch_weights, 224.0, 448,
                     geometry={"tile_um": 224.0, "tile_px": 448, "source": "native"})
    assert not [r for r in caplog.records if "pretrained at" in r.getMessage()], caplog.text
    assert math.isclose(attrs["scale_ratio"], 1.0) and bool(attrs["scale_mismatch"]) is False
    # a looser tolerance accepts the EMO geometry (the field follows features.scale_tolerance)
    attrs = _extract(tmp_path, "loose", conch_weights, 271.0, 224, scale_tolerance=0.25)
    assert bool(attrs["scale_mismatch"]) is False and attrs["scale_tolerance"] == 0.25


def test_tile_store_of_another_geometry_is_refused(tmp_path):
    store = make_tile_store(tmp_path / "S1.h5", 2, tile_px=224, tile_um=271.0)
    with pytest.raises(ConfigError, match=r"271 µm / 224 px tiles but encoder efficientnet_lite0 extracts from "
                                          r"112 µm / 224 px tiles \(features.encoder_geometry.efficientnet_lite0\)"):
        F.extract_slide(sample="S1", slide_path="unused.svs", tile_store_path=str(store),
                        out_path=str(tmp_path / "f.h5"), encoder="efficientnet_lite0", device="cpu", threads=1,
                        num_workers=0, tiles=ArrayTiles(2), progress=False,
                        geometry={"tile_um": 112.0, "tile_px": 224,
                                  "source": "features.encoder_geometry.efficientnet_lite0"})
    assert not (tmp_path / "f.h5").exists()
