"""HE2RNA and attention-MIL slide models (emo.slide_models): super-tiles, top-k
aggregation, folds, adjusted p-values against statsmodels/scipy, determinism and
recovery of a planted signal on synthetic bags, and one end-to-end run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from statsmodels.stats.multitest import multipletests

from emo.errors import ConfigError
from emo.slide_models import bags as bg
from emo.slide_models.folds import patient_folds
from emo.slide_models.nets import HE2RNA, GatedAttentionMIL, topk_mean
from emo.slide_models.pearson import pearson_table
from emo.stats.core import holm_sidak_adjust
from emo.slide_models.run import SlideInput, predict_slide_model, train_folds, train_slide_model
from emo.stats.core import bh_adjust
from slide_models_fixtures import synthetic_slides, write_expression

torch.set_num_threads(1)


def _blobs(seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [5000, 0], [0, 5000], [5000, 5000]])
    coords = np.concatenate([c + rng.integers(0, 800, size=(40, 2)) for c in centres])
    return coords


# --- super-tiles -----------------------------------------------------------------

def test_supertiles_follow_positions_and_average_features():
    coords = _blobs()
    features = np.random.default_rng(1).normal(size=(len(coords), 5)).astype(np.float32)
    st, labels = bg.supertiles(features, coords, 4, seed=0)
    # four well-separated blobs of 40 tiles: each blob is one super-tile
    for b in range(4):
        assert len(set(labels[b * 40:(b + 1) * 40])) == 1
    assert len(set(labels)) == 4
    for c in range(4):
        np.testing.assert_allclose(st[c], features[labels == c].mean(0), rtol=1e-6, atol=1e-6)
    # finer clustering: every tile lies nearest its own cluster's centre (k-means fixed point)
    labels = bg.supertile_labels(coords, 12, seed=0)
    centres = np.stack([coords[labels == c].mean(0) for c in range(labels.max() + 1)])
    nearest = np.argmin(((coords[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    assert (nearest == labels).mean() > 0.97


def test_supertiles_deterministic_and_independent_of_tile_order():
    coords = _blobs(3)
    a = bg.supertile_labels(coords, 10, seed=7)
    np.testing.assert_array_equal(a, bg.supertile_labels(coords, 10, seed=7))
    perm = np.random.default_rng(0).permutation(len(coords))
    np.testing.assert_array_equal(bg.supertile_labels(coords[perm], 10, seed=7), a[perm])
    # clusters numbered by centre position (y, then x)
    centres = np.stack([coords[a == c].mean(0) for c in range(a.max() + 1)])
    assert list(np.lexsort((centres[:, 0], centres[:, 1]))) == list(range(len(centres)))


def test_few_tiles_keep_one_supertile_each():
    coords = np.array([[0, 0], [512, 0], [0, 512]])
    st, labels = bg.supertiles(np.eye(3, dtype=np.float32), coords, 100, seed=0)
    assert sorted(labels) == [0, 1, 2] and st.shape == (3, 3)
    np.testing.assert_array_equal(st[labels], np.eye(3, dtype=np.float32))


def test_tile_subsample_seeded_and_capped():
    a = bg.tile_subsample(100, 10, "S1", 0)
    assert len(a) == 10 and np.all(np.diff(a) > 0)
    np.testing.assert_array_equal(a, bg.tile_subsample(100, 10, "S1", 0))
    assert not np.array_equal(a, bg.tile_subsample(100, 10, "S2", 0))
    np.testing.assert_array_equal(bg.tile_subsample(5, 10, "S1", 0), np.arange(5))


def test_score_image_places_tiles_on_the_grid_and_slides_spread():
    from emo.slide_models.maps import pick_slides, score_image

    coords = np.array([[1000, 2000], [1512, 2000], [1000, 3024]])
    image = score_image(coords, [1.0, 2.0, 3.0], 512.0)
    assert image.shape == (3, 2)
    assert image[0, 0] == 1.0 and image[0, 1] == 2.0 and image[2, 0] == 3.0
    assert np.isnan(image[1]).all() and np.isnan(image[2, 1])
    assert pick_slides(list("abcdefg"), [5, 1, 3, 7, 2, 6, 4], 3) == ["b", "g", "d"]
    assert pick_slides(["x", "y"], [2, 1], 4) == ["y", "x"]


# --- top-k aggregation ------------------------------------------------------------

def _reference_topk(scores: np.ndarray, n_valid: int, k: int) -> np.ndarray:
    """Per gene, the mean of the min(k, n_valid) largest of the first n_valid scores."""
    real = scores[:, :n_valid]
    kk = min(k, n_valid)
    return np.sort(real, axis=1)[:, ::-1][:, :kk].mean(1)


def test_topk_mean_equals_reference_on_hand_made_bag():
    # two slides, two genes, 5 tile slots; slide 2 has 3 real tiles, scores all negative so
    # zero padding would win a naive top-k
    scores = np.array([[[0.5, 2.0, -1.0, 3.0, 1.0], [4.0, -2.0, 0.0, 1.0, 2.0]],
                       [[-3.0, -1.0, -2.0, 0.0, 0.0], [-0.5, -4.0, -1.5, 0.0, 0.0]]], dtype=np.float32)
    mask = np.array([[True] * 5, [True, True, True, False, False]])
    for k in (1, 2, 3, 5, 100):
        got = topk_mean(torch.from_numpy(scores), torch.from_numpy(mask), k).numpy()
        want = np.stack([_reference_topk(scores[0], 5, k), _reference_topk(scores[1], 3, k)])
        np.testing.assert_allclose(got, want, rtol=1e-6)
    # hand-computed: slide 1, gene 1, k = 2 -> (3 + 2) / 2; slide 2, gene 2, k = 2 -> (-0.5 - 1.5) / 2
    got = topk_mean(torch.from_numpy(scores), torch.from_numpy(mask), 2).numpy()
    assert got[0, 0] == pytest.approx(2.5) and got[1, 1] == pytest.approx(-1.0)


def test_he2rna_inference_is_mean_over_ks_and_ignores_padding():
    torch.manual_seed(0)
    model = HE2RNA(4, 3, [8], ks=[1, 2, 5], dropout=0.0).eval()
    bag = torch.randn(1, 6, 4)
    padded = torch.cat([bag, torch.zeros(1, 3, 4)], dim=1)
    mask = torch.tensor([[True] * 6 + [False] * 3])
    with torch.no_grad():
        scores = model.tile_scores(bag)[0].numpy()
        want = np.mean([_reference_topk(scores, 6, k) for k in (1, 2, 5)], axis=0)
        np.testing.assert_allclose(model(bag, torch.ones(1, 6, dtype=torch.bool))[0].numpy(), want, rtol=1e-5)
        np.testing.assert_allclose(model(padded, mask)[0].numpy(), want, rtol=1e-5)


def test_gated_attention_weights_sum_to_one_over_real_tiles():
    torch.manual_seed(0)
    model = GatedAttentionMIL(4, 2, hidden=8, attention_dim=4, dropout=0.0).eval()
    bag = torch.randn(1, 5, 4)
    padded = torch.cat([bag, torch.full((1, 2, 4), 7.0)], dim=1)
    mask = torch.tensor([[True] * 5 + [False] * 2])
    with torch.no_grad():
        w, h = model.attention(padded, mask)
        assert float(w[0, :5].sum()) == pytest.approx(1.0) and float(w[0, 5:].abs().sum()) == 0.0
        # reference: softmax of the gated logits, weighted mean of embeddings, linear head
        hh = model.embed(bag)[0]
        logits = model.attention_w(torch.tanh(model.attention_v(hh)) * torch.sigmoid(model.attention_u(hh)))[:, 0]
        ref = model.head((torch.softmax(logits, 0)[:, None] * hh).sum(0))
        np.testing.assert_allclose(model(padded, mask)[0].numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)


# --- folds and statistics ---------------------------------------------------------

def test_patient_folds_disjoint_balanced_deterministic():
    patients = [f"P{i:02d}" for i in range(23)] * 2   # two slides per patient
    folds = patient_folds(patients, 5, seed=3)
    assert sorted(folds) == sorted(set(patients))
    sizes = np.bincount(list(folds.values()))
    assert len(sizes) == 5 and sizes.max() - sizes.min() <= 1
    assert folds == patient_folds(list(reversed(patients)), 5, seed=3)
    assert folds != patient_folds(patients, 5, seed=4)
    with pytest.raises(ConfigError, match="slide_models.folds"):
        patient_folds(["a", "b", "c"], 2, seed=0)


def test_holm_sidak_and_bh_match_statsmodels():
    p = np.random.default_rng(0).uniform(0, 0.2, 40) ** 2
    p[[3, 17]] = np.nan
    ok = ~np.isnan(p)
    np.testing.assert_allclose(holm_sidak_adjust(p)[ok], multipletests(p[ok], method="holm-sidak")[1], rtol=1e-10)
    np.testing.assert_allclose(bh_adjust(p)[ok], multipletests(p[ok], method="fdr_bh")[1], rtol=1e-10)
    assert np.isnan(holm_sidak_adjust(p)[3])


def test_pearson_table_matches_scipy():
    rng = np.random.default_rng(1)
    measured = rng.normal(size=(20, 4))
    predicted = measured * [1, 0.3, 0, 0] + rng.normal(size=(20, 4))
    measured[2, 1] = np.nan
    t = pearson_table("validation", list("wxyz"), measured, predicted)
    for j, gene in enumerate("wxyz"):
        ok = np.isfinite(measured[:, j])
        ref = stats.pearsonr(measured[ok, j], predicted[ok, j])
        row = t.set_index("gene").loc[gene]
        assert row["n"] == ok.sum()
        assert row["pearson_r"] == pytest.approx(ref.statistic, rel=1e-12)
        assert row["pearson_p"] == pytest.approx(ref.pvalue, rel=1e-9)


# --- training: determinism and planted signal --------------------------------------

CFG = {
    "folds": 3, "seed": 1, "tile_genes": "all",
    "he2rna": {"bag": "supertiles", "n_supertiles": 16, "max_tiles": 8000, "layers": [16], "dropout": 0.1,
               "ks_supertiles": [1, 2, 5, 10], "ks_tiles": [10, 20], "lr": 0.01, "weight_decay": 0.0,
               "batch_size": 4, "max_epochs": 20, "patience": 8},
    "attention_mil": {"max_tiles": 64, "hidden": 16, "attention_dim": 8, "dropout": 0.1, "lr": 0.01,
                      "weight_decay": 1e-5, "batch_size": 4, "max_epochs": 20, "patience": 8},
}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("slide_models")
    slides, expression, splits = synthetic_slides(tmp, n_patients=30)
    return tmp, slides, expression, splits


def _bags(name, slides):
    from emo.slide_models.run import _read, training_bag

    out = {}
    for sample, _, path in slides:
        f, c, _ = _read(path)
        out[sample] = training_bag(name, CFG, f, c, sample)
    return out


@pytest.mark.parametrize("name", ["he2rna", "attention_mil"])
def test_training_deterministic_on_cpu_and_recovers_planted_gene(cohort, name):
    _, slides, expression, _ = cohort
    bags = _bags(name, slides)
    patient_of = {s: p for s, p, _ in slides}
    targets = {s: expression.loc[patient_of[s]].to_numpy(np.float32) for s in bags}
    folds = patient_folds(list(patient_of.values()), CFG["folds"], CFG["seed"])
    slide_fold = {s: folds[patient_of[s]] for s in bags}
    runs = []
    for _ in range(2):
        models, rows, _ = train_folds(name, CFG, bags, targets, slide_fold, "cpu")
        from emo.slide_models.training import predict

        oof = np.stack([predict(models[slide_fold[s]][0], [bags[s]], "cpu", 4)[0] for s in sorted(bags)])
        runs.append((oof, rows))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    measured = np.stack([targets[s] for s in sorted(bags)])
    r_a = stats.pearsonr(measured[:, 0], runs[0][0][:, 0]).statistic
    r_c = stats.pearsonr(measured[:, 2], runs[0][0][:, 2]).statistic
    assert r_a > 0.6 and abs(r_c) < 0.5, f"{name}: out-of-fold Pearson of planted A {r_a:.2f}, null C {r_c:.2f}"


def test_train_and_predict_write_tables_and_tile_scores(cohort):
    import h5py

    tmp, slides, expression, splits = cohort
    train_patients = set(splits.loc[splits["split"] == "train", "patient"])
    split_path = tmp / "splits.tsv"
    splits.to_csv(split_path, sep="\t", index=False)
    training = write_expression(tmp / "training.h5", expression, splits)
    inputs = [SlideInput(s, p, f) for s, p, f in slides]
    model_samples = [s for s, p, _ in slides if p in train_patients]
    for name in ("he2rna", "attention_mil"):
        suffix = {"tiles": "h5", "model": "pt", "maps": "png"}
        out = {k: str(tmp / name / f"{k}.{suffix.get(k, 'tsv')}")
               for k in ("patients", "slides", "folds", "training", "cost", "pearson", "tiles", "model", "maps")}
        (tmp / name).mkdir()
        train_slide_model(name, CFG, [s for s in inputs if s.sample in model_samples], str(training), out, "test",
                          "cpu")
        predict_slide_model(name, CFG, inputs, out["model"], str(training), str(split_path), out, "test", "cpu")
        table = pd.read_csv(out["patients"], sep="\t")
        assert list(table.columns) == ["patient", "A", "B", "C"] and len(table) == 30
        folds = pd.read_csv(out["folds"], sep="\t")
        assert set(folds["patient"]) == train_patients
        slide_table = pd.read_csv(out["slides"], sep="\t")
        assert (slide_table["fold"] >= 0).sum() == len(model_samples)
        # folds are patient-disjoint: every slide of a patient in its patient's fold
        assert slide_table.groupby("patient")["fold"].nunique().max() == 1
        held = slide_table[slide_table["fold"] >= 0]
        assert dict(zip(held["patient"], held["fold"])) == dict(zip(folds["patient"], folds["fold"]))
        assert any(n > 1 for n in slide_table.groupby("patient").size())   # two-slide patients exist
        pearson = pd.read_csv(out["pearson"], sep="\t")
        assert set(pearson["set"]) == {"cv", "validation"}
        val_a = pearson.set_index(["set", "gene"]).loc[("validation", "A")]
        assert val_a["pearson_r"] > 0.7 and val_a["padj_holm_sidak"] < 0.05
        with h5py.File(out["tiles"], "r") as h:
            g = h["slides"][slides[0][0]]
            key = "scores" if name == "he2rna" else "attention"
            assert g[key].shape[0] == g["coords"].shape[0] == 64
            if name == "he2rna":
                assert g["scores"].shape[1] == 3 and g["supertile"][:].max() == 15
            else:
                assert float(g["attention"][:].sum()) == pytest.approx(1.0, rel=1e-5)
        assert (tmp / name / "maps.png").stat().st_size > 1000


# --- representation transfer ---------------------------------------------------------

def test_hidden_representation_is_mean_of_last_hidden_layer():
    from emo.slide_models.transfer import hidden_representation

    torch.manual_seed(0)
    model = HE2RNA(4, 3, [8, 5], ks=[1, 2], dropout=0.5)
    bag = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    got = hidden_representation(model, bag)
    w0, b0 = model.convs[0].weight.detach().numpy()[:, :, 0], model.convs[0].bias.detach().numpy()
    w1, b1 = model.convs[1].weight.detach().numpy()[:, :, 0], model.convs[1].bias.detach().numpy()
    h = np.maximum(np.maximum(bag @ w0.T + b0, 0) @ w1.T + b1, 0)
    np.testing.assert_allclose(got, h.mean(0), rtol=1e-5, atol=1e-6)


def test_transfer_auc_matches_sklearn_cross_validation():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from emo.slide_models.transfer import transfer_table

    rng = np.random.default_rng(3)
    y = np.array([0, 1] * 15)
    x = rng.normal(size=(30, 4)) + y[:, None] * [3.0, 0, 0, 0]
    table = transfer_table({"signal": x, "noise": rng.normal(size=(30, 4))}, y, folds=3, seed=7, c=1.0)
    ref = cross_val_score(make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000)), x, y,
                          cv=StratifiedKFold(3, shuffle=True, random_state=7), scoring="roc_auc")
    folds = table[(table["input"] == "signal") & (table["fold"] >= 0)]
    np.testing.assert_allclose(folds["auc"], ref, rtol=1e-12)
    mean = table.set_index(["input", "fold"]).loc[("signal", -1), "auc"]
    assert mean == pytest.approx(ref.mean()) and mean > 0.8
    with pytest.raises(Exception, match="slide_models.transfer"):
        transfer_table({"signal": x[:4]}, np.array([0, 1, 1, 1]), folds=3, seed=0, c=1.0)


def test_run_transfer_on_unseen_patients(cohort, tmp_path):
    from emo.slide_models.transfer import run_transfer

    tmp, slides, expression, splits = cohort
    train_patients = set(splits.loc[splits["split"] == "train", "patient"])
    training = write_expression(tmp_path / "training.h5", expression, splits)
    inputs = [SlideInput(s, p, f) for s, p, f in slides]
    out = {"folds": tmp_path / "f.tsv", "training": tmp_path / "t.tsv", "cost": tmp_path / "c.tsv",
           "model": tmp_path / "m.pt"}
    train_slide_model("he2rna", CFG, [s for s in inputs if s.patient in train_patients], str(training), out, "t", "cpu")
    unseen = sorted(set(expression.index) - train_patients)
    high = expression.loc[unseen, "A"] > expression.loc[unseen, "A"].median()
    clinical = pd.DataFrame({"patient": unseen, "er": np.where(high, "positive", "negative")})
    cfg = {**CFG, "transfer": {"target": "er", "positive": "positive", "folds": 3, "C": 1.0}}
    run_transfer(cfg, inputs, str(out["model"]), clinical, "clinical.tsv", {"table": str(tmp_path / "x.tsv")}, "t",
                 "cpu")
    table = pd.read_csv(tmp_path / "x.tsv", sep="\t")
    assert set(table["input"]) == {"he2rna_representation", "mean_features"}
    summary = table[table["fold"] == -1].set_index("input")
    assert (summary["n_test"] == len(unseen)).all() and summary["auc"].between(0, 1).all()
    assert (table.loc[table["fold"] >= 0, "n_test"].groupby(table["input"]).sum() == len(unseen)).all()
