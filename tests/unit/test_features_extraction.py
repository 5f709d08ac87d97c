"""Streaming extraction into feature stores: contents and attributes as documented,
determinism, bounded writes, and atomicity when the job is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from emo.colour_texture import DESCRIPTOR_NAMES, tile_descriptors

from emo import encoders as E
from emo import features as F
from emo.provenance import file_sha256, hdf5_content_sha256
from emo.stores.features import read_feature_store
from features_fixtures import ArrayTiles, SlowTiles, make_tile_store

REPO = Path(__file__).resolve().parents[2]
ROOT_ATTRS = {"sample", "encoder", "feature_dim", "weights_path", "weights_sha256", "input_px", "tile_store_sha256",
              "tiling_params", "stain_normalisation", "code_version", "emo_version", "torch_version", "created",
              "device", "precision", "batch_size", "tile_um", "tile_px", "input_um_per_px", "encoder_native_um_per_px",
              "scale_ratio", "scale_tolerance", "scale_mismatch"}


def _extract(tmp_path: Path, out: Path, tiles, store: Path, **kwargs) -> Path:
    args = dict(sample="S1", slide_path="unused.svs", tile_store_path=str(store), out_path=str(out),
                encoder="efficientnet_lite0", batch_size=4, num_workers=0, device="cpu", threads=1,
                code_version="abc123def456", tiles=tiles, progress=False)
    args.update(kwargs)
    return F.extract_slide(**args)


@pytest.fixture(scope="module")
def lite0():
    return E.load_encoder("efficientnet_lite0")


def test_feature_store_contents_and_attrs(tmp_path, lite0):
    n = 10
    store = make_tile_store(tmp_path / "tiles" / "S1.h5", n)
    tiles = ArrayTiles(n, 224, seed=7)
    out = _extract(tmp_path, tmp_path / "features" / "efficientnet_lite0" / "S1.h5", tiles, store, num_workers=2)
    with h5py.File(out, "r") as f, h5py.File(store, "r") as t:
        assert set(f) == {"features", "colour_texture", "coords"}
        feats = f["features"][:]
        # the colour/texture baseline's descriptors of the very tiles the encoder embedded, in order
        descriptors = f["colour_texture"][:]
        assert f["colour_texture"].attrs["names"].split(",") == list(DESCRIPTOR_NAMES)
        np.testing.assert_array_equal(descriptors, tile_descriptors(np.stack([tiles[i] for i in range(n)])))
        assert f["features"].dtype == np.float32 and feats.shape == (n, 1280)
        np.testing.assert_array_equal(f["coords"][:], t["coords"][:])
        assert f["coords"].dtype == np.int64
        assert dict(f["coords"].attrs).keys() == dict(t["coords"].attrs).keys()
        for key, value in t["coords"].attrs.items():
            assert f["coords"].attrs[key] == value
        attrs = dict(f.attrs)
    assert set(attrs) == ROOT_ATTRS
    assert attrs["sample"] == "S1" and attrs["encoder"] == "efficientnet_lite0"
    assert attrs["feature_dim"] == 1280 and attrs["input_px"] == 224 and attrs["batch_size"] == 4
    assert attrs["weights_sha256"] == file_sha256(attrs["weights_path"]) == lite0.weights_sha256
    assert attrs["tile_store_sha256"] == hdf5_content_sha256(store)
    assert json.loads(attrs["tiling_params"])["tile_um"] == 271.0
    assert json.loads(attrs["stain_normalisation"]) == {"method": "none"}
    assert attrs["torch_version"] == torch.__version__ and attrs["code_version"] == "abc123def456"
    assert attrs["device"] == "cpu" and attrs["precision"] == "float32"
    # an ImageNet encoder has no native histology scale: recorded, never a mismatch
    assert attrs["tile_um"] == 271.0 and attrs["tile_px"] == 224 and attrs["input_um_per_px"] == 271.0 / 224
    assert attrs["encoder_native_um_per_px"] == "" and attrs["scale_ratio"] == "" and not attrs["scale_mismatch"]
    # each row is the encoder applied to that tile alone (order kept, no mixing across the batch)
    pre = F.Preprocess(224, lite0.spec.mean, lite0.spec.std, torch.device("cpu"), False)
    with torch.inference_mode():
        for i in (0, 5, 9):
            single = lite0.module(pre(torch.from_numpy(tiles[i][None]))).numpy()[0]
            np.testing.assert_allclose(feats[i], single, rtol=1e-4, atol=1e-4)
    assert not np.allclose(feats[0], feats[1])
    # the determinism switches are restored for the caller
    assert not torch.are_deterministic_algorithms_enabled()


def test_two_runs_identical_and_workers_do_not_change_results(tmp_path):
    n = 9  # last batch partial
    store = make_tile_store(tmp_path / "S1.h5", n)
    a = _extract(tmp_path, tmp_path / "a.h5", ArrayTiles(n, seed=3), store, num_workers=0)
    b = _extract(tmp_path, tmp_path / "b.h5", ArrayTiles(n, seed=3), store, num_workers=2)
    fstore = read_feature_store(a)
    fa, ca, attrs_a = fstore.features, fstore.coords, fstore.attrs
    fstore = read_feature_store(b)
    fb, cb, attrs_b = fstore.features, fstore.coords, fstore.attrs
    assert fa.tobytes() == fb.tobytes()  # bitwise identical
    np.testing.assert_array_equal(ca, cb)
    attrs_a.pop("created"), attrs_b.pop("created")
    assert attrs_a == attrs_b


def test_tiles_resized_to_encoder_input(tmp_path, lite0):
    """112 px tiles (a different tiling.tile_px) are resized on the batch to 224."""
    n = 3
    store = make_tile_store(tmp_path / "S1.h5", n, tile_px=112)
    out = _extract(tmp_path, tmp_path / "f.h5", ArrayTiles(n, 112, seed=1), store)
    fstore = read_feature_store(out)
    feats, attrs = fstore.features, fstore.attrs
    assert feats.shape == (3, 1280) and attrs["input_px"] == 224
    tiles = ArrayTiles(n, 112, seed=1)
    up = torch.nn.functional.interpolate(torch.from_numpy(tiles[2][None]).permute(0, 3, 1, 2).float() / 255,
                                         size=(224, 224), mode="bilinear", antialias=True).clamp(0, 1)
    with torch.inference_mode():
        ref = lite0.module((up - 0.5) / 0.5).numpy()[0]
    np.testing.assert_allclose(feats[2], ref, rtol=1e-4, atol=1e-4)


def test_empty_slide_gives_empty_store(tmp_path):
    store = make_tile_store(tmp_path / "S1.h5", 0)
    fstore = read_feature_store(_extract(tmp_path, tmp_path / "f.h5", ArrayTiles(0), store))
    feats, coords, attrs = fstore.features, fstore.coords, fstore.attrs
    assert feats.shape == (0, 1280) and coords.shape == (0, 2) and attrs["feature_dim"] == 1280


def test_tile_count_mismatch_is_an_error(tmp_path):
    store = make_tile_store(tmp_path / "S1.h5", 4)
    with pytest.raises(ValueError, match="4 coords"):
        _extract(tmp_path, tmp_path / "f.h5", ArrayTiles(5), store)
    assert not (tmp_path / "f.h5").exists() and not list(tmp_path.glob(".f.h5.tmp.*"))


def test_batch_preprocessing_matches_per_tile_reference():
    tiles = ArrayTiles(4, 64, seed=2)
    batch = F.collate_uint8([tiles[i] for i in range(4)])
    assert batch.dtype == torch.uint8 and batch.shape == (4, 64, 64, 3)
    pre = F.Preprocess(64, (0.1, 0.2, 0.3), (0.5, 0.6, 0.7), torch.device("cpu"), channels_last=True)
    x = pre(batch)
    assert x.shape == (4, 3, 64, 64) and x.is_contiguous(memory_format=torch.channels_last)
    ref = (tiles[3].astype(np.float64) / 255 - np.array([0.1, 0.2, 0.3])) / np.array([0.5, 0.6, 0.7])
    np.testing.assert_allclose(x[3].permute(1, 2, 0).numpy(), ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="uint8"):
        F.collate_uint8([np.zeros((8, 8, 3), dtype=np.float32)])


def test_device_and_precision_selection():
    assert F.select_device("cpu").type == "cpu"
    assert F.select_precision("auto", torch.device("cpu")) == torch.float32
    if not torch.cuda.is_available():
        assert F.select_device("auto").type == "cpu"
        with pytest.raises(F.ConfigError, match="features.device"):
            F.select_device("cuda")
        with pytest.raises(F.ConfigError, match="config key cnn_finetune.device is 'cuda'"):
            F.select_device("cuda", "cnn_finetune.device")
    with pytest.raises(F.ConfigError, match="features.precision"):
        F.select_precision("int8", torch.device("cpu"))


N_KILL = 16
_KILL_SCRIPT = textwrap.dedent("""
    import sys
    from emo.features import extract_slide
    from features_fixtures import SlowTiles
    n, store, out, marker = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    extract_slide(sample="S1", slide_path="unused.svs", tile_store_path=store, out_path=out,
                  encoder="efficientnet_lite0", batch_size=2, num_workers=1, device="cpu", threads=1,
                  code_version="x", tiles=SlowTiles(n, 224, 11, delay=0.25, marker=marker, mark_at=6),
                  progress=True)
""")


def _start_and_kill(tmp_path: Path, store: Path, out: Path, sig: int, tag: str) -> subprocess.CompletedProcess:
    marker = tmp_path / f"marker_{tag}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "scripts"), str(REPO / "tests")]),
               OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(N_KILL), str(store), str(out), str(marker)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "extraction did not start"
        time.sleep(0.1)
    time.sleep(0.3)
    temporaries = list(out.parent.glob(f".{out.name}.tmp.*"))
    assert temporaries, "the store is written to a temporary file while running"
    if sig == signal.SIGKILL:
        os.killpg(proc.pid, signal.SIGKILL)  # the job and its DataLoader worker, like a node failure
    else:
        proc.send_signal(sig)  # what Snakemake / scancel send to the job
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.mark.slow
def test_killed_extraction_leaves_no_store_and_rerun_equals_clean_run(tmp_path):
    n = N_KILL
    store = make_tile_store(tmp_path / "S1.h5", n)
    out = tmp_path / "features" / "S1.h5"
    # SIGTERM: the temporary file is removed on the way out
    _start_and_kill(tmp_path, store, out, signal.SIGTERM, "term")
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.tmp.*"))
    # SIGKILL: nothing can run; the final name never appears, only a hidden temporary file
    _start_and_kill(tmp_path, store, out, signal.SIGKILL, "kill")
    assert not out.exists()
    leftovers = list(out.parent.glob(f".{out.name}.tmp.*"))
    assert leftovers
    # rerun: removes the leftover and equals a clean run in another directory
    _extract(tmp_path, out, SlowTiles(n, 224, 11, delay=0, marker=str(tmp_path / "m"), mark_at=10**9), store,
             batch_size=2, num_workers=1)
    clean = _extract(tmp_path, tmp_path / "clean" / "S1.h5", ArrayTiles(n, 224, 11), store, batch_size=2)
    assert not any(p.exists() for p in leftovers)
    fstore_rerun = read_feature_store(out)
    f_rerun, c_rerun = fstore_rerun.features, fstore_rerun.coords
    fstore_clean = read_feature_store(clean)
    f_clean, c_clean = fstore_clean.features, fstore_clean.coords
    assert f_rerun.tobytes() == f_clean.tobytes()
    np.testing.assert_array_equal(c_rerun, c_clean)
