"""Slide predictions (tile predictions, slide means, tile genes, ridge) and the patient
aggregation (mean over a patient's slides)."""

import h5py
import numpy as np
import pandas as pd
import pytest

from emo import gene_models as gm
from emo import predictions, ridge
from emo.colour_texture import N_DESCRIPTORS
from emo.stores.models import read_ridge_store, write_ridge_store
from emo.errors import ConfigError

from gene_models_fixtures import write_feature_store


def linear_state(genes, dim, rng):
    return {"genes": genes, "head": "linear",
            "params": {"W": rng.normal(size=(len(genes), dim)), "b": rng.normal(size=len(genes))},
            "feature_mean": rng.normal(size=dim), "feature_sd": rng.uniform(0.5, 2, dim),
            "target_mean": rng.normal(5, 1, len(genes)), "target_sd": rng.uniform(0.5, 2, len(genes))}


@pytest.fixture
def slide_setup(tmp_path):
    rng = np.random.default_rng(0)
    dim = 6
    chunks = [linear_state(["B", "D"], dim, rng), linear_state(["A", "C"], dim, rng)]
    paths = []
    for k, state in enumerate(chunks):
        path = tmp_path / f"chunk_{k:04d}.npz"
        predictions.save_chunk_arrays(path, state)
        paths.append(path)
    empty = tmp_path / "chunk_0002.npz"
    predictions.save_chunk_arrays(empty, {"genes": [], "head": "linear", "params": {}, "feature_mean": [],
                                          "feature_sd": [], "target_mean": [], "target_sd": []})
    paths.append(empty)
    model = {"genes": ["A", "B"], "coef": rng.normal(size=(2, dim)), "intercept": np.array([1.0, 2.0]),
             "alpha": np.ones(2), "cv_mse": np.ones(2), "alphas": np.ones(1), "feature_mean": np.zeros(dim),
             "feature_sd": np.ones(dim), "samples": ["x"]}
    write_ridge_store(tmp_path / "ridge.h5", model, {})
    colour_model = {**model, "coef": rng.normal(size=(2, N_DESCRIPTORS)), "feature_mean": np.full(N_DESCRIPTORS, 0.1),
                    "feature_sd": np.full(N_DESCRIPTORS, 2.0)}
    write_ridge_store(tmp_path / "colour_texture.h5", colour_model, {})
    return tmp_path, chunks, paths, model, dim, rng


def expected_tiles(chunks, features):
    out = {}
    for state in chunks:
        x = (features - state["feature_mean"]) / state["feature_sd"]
        z = x @ state["params"]["W"].T + state["params"]["b"]
        for i, g in enumerate(state["genes"]):
            out[g] = z[:, i] * state["target_sd"][i] + state["target_mean"][i]
    return out


@pytest.mark.parametrize("tile_genes, expected", [("all", ["A", "B", "C", "D"]), (["D", "A", "ZZZ"], ["A", "D"]),
                                                   ([], [])])
def test_predict_slide(slide_setup, tile_genes, expected):
    tmp, chunks, paths, model, dim, rng = slide_setup
    features = rng.normal(size=(13, dim)).astype(np.float32)
    descriptors = rng.uniform(size=(13, N_DESCRIPTORS)).astype(np.float32)
    write_feature_store(tmp / "f.h5", features, "S1", colour_texture=descriptors)
    baselines = {"ridge": tmp / "ridge.h5", "colour_texture": tmp / "colour_texture.h5"}
    predictions.predict_slide(tmp / "f.h5", paths, baselines, tmp / "out.h5", tile_genes, {"code_version": "t"})
    truth = expected_tiles(chunks, features.astype(np.float64))
    with h5py.File(tmp / "out.h5") as h5:
        genes = [g.decode() for g in h5["genes"][:]]
        assert genes == ["A", "B", "C", "D"]
        np.testing.assert_allclose(h5["slide_mean"][:], [truth[g].mean() for g in genes], rtol=1e-5)
        assert [g.decode() for g in h5["tiles/genes"][:]] == expected
        values = h5["tiles/values"][:]
        assert values.shape == (13, len(expected))
        for i, g in enumerate(expected):
            np.testing.assert_allclose(values[:, i], truth[g], rtol=1e-5, atol=1e-5)
        assert h5["coords"].shape == (13, 2)
        assert h5["coords"].attrs["patch_size"] == 100
        np.testing.assert_allclose(h5["ridge/slide_mean"][:],
                                   model["coef"] @ features.astype(np.float64).mean(0) + model["intercept"],
                                   rtol=1e-5)
        # the colour/texture baseline reads the slide mean of /colour_texture, standardised by its own stats
        colour = read_ridge_store(tmp / "colour_texture.h5")
        x = (descriptors.astype(np.float64).mean(0) - 0.1) / 2.0
        np.testing.assert_allclose(h5["colour_texture/slide_mean"][:], colour.coef @ x + colour.intercept, rtol=1e-5)
        assert [g.decode() for g in h5["colour_texture/genes"][:]] == ["A", "B"]


def test_numpy_forward_matches_torch_for_mlp():
    rng = np.random.default_rng(1)
    genes = ["g1", "g2", "g3"]
    cfg = gm.TrainConfig.from_config(dict(head="mlp", hidden=5))
    params = gm.init_params(genes, 7, cfg)
    params["b1"] = rng.normal(size=params["b1"].shape)
    x = rng.normal(size=(11, 7)).astype(np.float32)
    np.testing.assert_allclose(predictions.forward_numpy({k: v.astype(np.float32) for k, v in params.items()}, x),
                               gm.predict_standardised(params, x), rtol=1e-5, atol=1e-6)


def test_aggregate_patients_means_over_slides(tmp_path):
    rng = np.random.default_rng(2)
    slides = {"S1": "P2", "S2": "P1", "S3": "P2"}
    values = {s: rng.normal(size=3) for s in slides}
    paths = {}
    for s in slides:
        path = tmp_path / f"{s}.h5"
        with h5py.File(path, "w") as h5:
            h5.create_dataset("genes", data=np.array(["A", "B", "C"], dtype=object), dtype=h5py.string_dtype())
            h5.create_dataset("slide_mean", data=values[s].astype(np.float32))
        paths[s] = path
    table = predictions.aggregate_patients(paths, slides)
    assert list(table.columns) == ["patient", "A", "B", "C"]
    assert list(table["patient"]) == ["P1", "P2"]
    f32 = {s: v.astype(np.float32).astype(np.float64) for s, v in values.items()}
    np.testing.assert_allclose(table.iloc[1, 1:].to_numpy(float), (f32["S1"] + f32["S3"]) / 2)
    np.testing.assert_allclose(table.iloc[0, 1:].to_numpy(float), f32["S2"])
    expected = pd.DataFrame({"patient": ["P1", "P2"]})
    assert table["patient"].equals(expected["patient"])


def test_tile_genes_setting_is_checked():
    with pytest.raises(ConfigError, match="predictions.tile_genes"):
        predictions.resolve_tile_genes("some", ["A"])
