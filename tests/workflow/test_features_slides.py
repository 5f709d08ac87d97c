"""Extraction from a real (synthetic, pyramidal Aperio SVS) slide through the tile store
and emo.tiling.TileReader in DataLoader workers, and through the Snakemake rule."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from emo import features as F
from emo import slides, stain, tiling
from emo.stores import tiles as tile_store
from emo.encoders import load_encoder
from emo.provenance import file_sha256, hdf5_content_sha256
from emo.stores.features import read_feature_store

REPO = Path(__file__).resolve().parents[2]
TILING = {"tile_um": 64.0, "tile_px": 112, "min_sharpness": 0.0}


def _slide(dest: Path) -> Path:
    from tiling_fixtures import synthetic_he, write_svs

    return write_svs(synthetic_he(768, 1024, 0.5, seed=3), dest / "S1.svs", 0.5)


def _tile(slide: Path, out: Path, macenko: bool) -> Path:
    info = slides.check_slide("S1", slide)
    reference = stain.load_reference(REPO / "resources/macenko_reference.json") if macenko else None
    result = tiling.tile_slide(info, TILING, reference, "resources/macenko_reference.json" if macenko else "")
    tile_store.write_tile_store(out, tiling.build_store(result, "test", slides.slide_sha256(slide)))
    return out


@pytest.fixture(scope="module")
def slide_dir(tmp_path_factory):
    dest = tmp_path_factory.mktemp("feature_slides")
    slide = _slide(dest)
    _tile(slide, dest / "tiles_none.h5", macenko=False)
    _tile(slide, dest / "tiles_macenko.h5", macenko=True)
    return dest


def test_extraction_from_slide_through_tile_reader_workers(slide_dir, tmp_path):
    store = slide_dir / "tiles_none.h5"
    out = F.extract_slide(sample="S1", slide_path=str(slide_dir / "S1.svs"), tile_store_path=str(store),
                          out_path=str(tmp_path / "S1.h5"), encoder="efficientnet_lite0", batch_size=8,
                          num_workers=2, device="cpu", threads=1, code_version="t", progress=False)
    fstore = read_feature_store(out)
    feats, coords, attrs = fstore.features, fstore.coords, fstore.attrs
    with h5py.File(store, "r") as t:
        np.testing.assert_array_equal(coords, t["coords"][:])
        assert attrs["tiling_params"] == t.attrs["params"]
    assert len(coords) >= 8 and feats.shape == (len(coords), 1280)
    assert attrs["tile_store_sha256"] == hdf5_content_sha256(store)
    # reference: the same tiles read in this process, embedded one at a time
    reader = tiling.TileReader(slide_dir / "S1.svs", store)
    enc = load_encoder("efficientnet_lite0")
    pre = F.Preprocess(224, enc.spec.mean, enc.spec.std, torch.device("cpu"), False)
    with torch.inference_mode():
        for i in (0, len(reader) - 1):
            ref = enc.module(pre(torch.from_numpy(np.array(reader[i][None])))).numpy()[0]
            np.testing.assert_allclose(feats[i], ref, rtol=1e-4, atol=1e-4)


def test_macenko_normalised_tiles(slide_dir, tmp_path):
    kwargs = dict(sample="S1", slide_path=str(slide_dir / "S1.svs"), encoder="efficientnet_lite0", batch_size=8,
                  num_workers=0, device="cpu", threads=1, code_version="t", progress=False)
    plain = F.extract_slide(tile_store_path=str(slide_dir / "tiles_macenko.h5"), out_path=str(tmp_path / "a.h5"),
                            stain_method="none", **kwargs)
    normed = F.extract_slide(tile_store_path=str(slide_dir / "tiles_macenko.h5"),
                             out_path=str(tmp_path / "b.h5"), stain_method="macenko", **kwargs)
    fstore = read_feature_store(plain)
    fa, aa = fstore.features, fstore.attrs
    fstore = read_feature_store(normed)
    fb, ab = fstore.features, fstore.attrs
    assert json.loads(aa["stain_normalisation"]) == {"method": "none"}
    described = json.loads(ab["stain_normalisation"])
    assert described["method"] == "macenko" and np.asarray(described["stain_matrix"]).shape == (3, 2)
    assert not np.allclose(fa, fb)
    with pytest.raises(F.ConfigError, match="stain_normalisation.method"):
        F.extract_slide(tile_store_path=str(slide_dir / "tiles_none.h5"), out_path=str(tmp_path / "c.h5"),
                        stain_method="macenko", **kwargs)


CONFIG = """
samples: samples.tsv
clinical: clinical.tsv
cohorts: {A: {expression: expr.tsv, role: training, reference: true}}
tiling: {tile_um: 64.0, tile_px: 112, min_sharpness: 0.0}
features: {encoder: ENCODER, batch_size: 8, num_workers: 1, device: cpu}
expression: {}
splits: {seed: 1}
heterogeneity: {enabled: false}
"""


def _workdir(tmp_path: Path, slide_dir: Path, encoder: str) -> Path:
    wd = tmp_path / "wd"
    wd.mkdir()
    shutil.copy(slide_dir / "S1.svs", wd / "S1.svs")
    (wd / "samples.tsv").write_text("sample\tpatient\tcohort\tslide\nS1\tP1\tA\tS1.svs\n")
    (wd / "expr.tsv").write_text("gene\tP1\nG1\t1.0\n")
    (wd / "clinical.tsv").write_text("patient\ter\tpr\ther2\tpam50\tage\ttp53\tsurvival_time\tsurvival_event\n"
                                     "P1\tpositive\tpositive\tnegative\tLumA\t50\twildtype\t10\t0\n")
    (wd / "config.yaml").write_text(CONFIG.replace("ENCODER", encoder))
    return wd


def _snakemake(wd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "snakemake"
    cmd = [str(exe), "-s", str(REPO / "Snakefile"), "-d", str(wd), "--configfile", str(wd / "config.yaml"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def test_missing_weights_fail_when_the_dag_is_built(slide_dir, tmp_path):
    wd = _workdir(tmp_path, slide_dir, "uni")
    result = _snakemake(wd, "-n", "results/features/uni/S1.h5", timeout=300)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "features.weights" in output and "pytorch_model.bin" in output and "MahmoodLab/UNI" in output


@pytest.mark.slow
def test_extract_features_rule(slide_dir, tmp_path):
    wd = _workdir(tmp_path, slide_dir, "efficientnet_lite0")
    target = "results/features/efficientnet_lite0/S1.h5"
    result = _snakemake(wd, "--cores", "2", target)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    fstore = read_feature_store(wd / target)
    feats, coords, attrs = fstore.features, fstore.coords, fstore.attrs
    assert feats.shape == (len(coords), 1280) and len(coords) > 0
    assert attrs["encoder"] == "efficientnet_lite0" and attrs["batch_size"] == 8
    log = (wd / "logs/extract_features/efficientnet_lite0_S1.log").read_text()
    assert "tile/s" in log or "tile]" in log  # the progress bar went to the rule's log
    assert (wd / "benchmarks/extract_features/efficientnet_lite0_S1.tsv").is_file()
    again = _snakemake(wd, "-n", target, timeout=300)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
