"""Tumour regions: QuPath GeoJSON parsing (both export shapes, holes, MultiPolygon), tile
labels by polygon cover, clear errors (unknown slide, unknown class, coordinates outside
the slide), the classifier against sklearn and its determinism, tumour-tile selection in
the gene heads and the largest-tumour slide choice."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from emo import gene_models, tumour_regions
from emo.errors import ConfigError, InputTableError
from emo.stores.tumour_regions import (SlideTumour, read_classifier_store, read_tumour_tiles, write_classifier_store,
                                       write_tumour_tiles)
from emo.tumour_regions import classifier, geojson

CLASSES = ["Tumor", "Stroma", "Fat"]
SQUARE = [[0, 0], [100, 0], [100, 100], [0, 100], [0, 0]]
HOLE = [[25, 25], [75, 25], [75, 75], [25, 75], [25, 25]]


def _feature(geometry, name="Tumor", as_string=False):
    cls = name if as_string else {"name": name, "color": [200, 0, 0]}
    return {"type": "Feature", "geometry": geometry, "properties": {"objectType": "annotation",
                                                                    "classification": cls}}


def _write(tmp_path, content, name="S1.geojson"):
    path = tmp_path / name
    path.write_text(json.dumps(content))
    return path


def test_qupath_export_shapes_give_the_same_regions(tmp_path):
    """FeatureCollection, a plain Feature list (QuPath's default) and one Feature; a
    class as {name: ...} or as a string."""
    feature = _feature({"type": "Polygon", "coordinates": [SQUARE, HOLE]})
    shapes = [{"type": "FeatureCollection", "features": [feature]}, [feature], feature,
              [_feature({"type": "Polygon", "coordinates": [SQUARE, HOLE]}, as_string=True)]]
    for i, content in enumerate(shapes):
        regions = geojson.read_annotations(_write(tmp_path, content, f"S{i}.geojson"), CLASSES)
        assert len(regions) == 1
        assert regions[0].name == "Tumor" and len(regions[0].holes) == 1
        np.testing.assert_array_equal(regions[0].outer, np.asarray(SQUARE, float))


def test_holes_and_multipolygons_label_tiles(tmp_path):
    """Two 100 px squares (MultiPolygon) of tumour, the first with a 50 px hole; tile
    centres (grid 1) inside the hole are not tumour, area cover (grid 4) counts the hole."""
    second = [[[200, 0], [300, 0], [300, 100], [200, 100], [200, 0]]]
    content = [_feature({"type": "MultiPolygon", "coordinates": [[SQUARE, HOLE], second]})]
    regions = geojson.read_annotations(_write(tmp_path, content), CLASSES)
    assert len(regions) == 2
    # tiles of 50 px: (25, 25) lies inside the hole, (0, 0) in the ring, (200, 0) in the second square,
    # (120, 0) between the squares
    coords = np.array([[25, 25], [0, 0], [200, 0], [120, 0]])
    centre = geojson.tile_labels(regions, CLASSES, coords, 50, grid=1, min_overlap=0.5)
    assert centre.tolist() == [geojson.UNLABELLED, 0, 0, geojson.UNLABELLED]
    cover = geojson.class_cover(regions, CLASSES, coords, 50, grid=4)
    # the tile at (25, 25) spans the hole (25..75) exactly: no point of its 4 x 4 grid is tumour
    assert cover[:, 0].tolist() == [0.0, 0.75, 1.0, 0.0]
    # the tile at (0, 0): 12 of its 16 points lie outside the hole (the hole covers its lower-right quarter)
    area = geojson.tile_labels(regions, CLASSES, coords, 50, grid=4, min_overlap=0.8)
    assert area.tolist() == [geojson.UNLABELLED, geojson.UNLABELLED, 0, geojson.UNLABELLED]


def test_cover_fraction_matches_the_exact_area(tmp_path):
    """Cover on a fine point grid converges to the exact overlap area of a triangle."""
    triangle = [[0, 0], [200, 0], [0, 200], [0, 0]]
    regions = geojson.read_annotations(_write(tmp_path, [_feature({"type": "Polygon", "coordinates": [triangle]})]),
                                       CLASSES)
    cover = geojson.class_cover(regions, CLASSES, np.array([[0, 0]]), 100, grid=32)
    # the tile [0,100]^2 below the line x + y = 200 is fully covered; [100,200]x[0,100] half
    assert cover[0, 0] == pytest.approx(1.0, abs=1e-9)
    cover = geojson.class_cover(regions, CLASSES, np.array([[100, 0]]), 100, grid=32)
    assert cover[0, 0] == pytest.approx(0.5, abs=0.02)


def test_overlapping_classes_take_the_larger_cover(tmp_path):
    stroma = [[0, 0], [100, 0], [100, 30], [0, 30], [0, 0]]
    content = [_feature({"type": "Polygon", "coordinates": [SQUARE]}, "Tumor"),
               _feature({"type": "Polygon", "coordinates": [stroma]}, "Stroma")]
    regions = geojson.read_annotations(_write(tmp_path, content), CLASSES)
    labels = geojson.tile_labels(regions, CLASSES, np.array([[0, 0]]), 100, grid=4, min_overlap=0.5)
    assert labels.tolist() == [0]  # tumour covers all, stroma a quarter
    tumour = geojson.tumour_labels(np.array([0, 1, 2, -1]), CLASSES, ["Tumor"])
    assert tumour.tolist() == [1, 0, 0, -1]


def test_unknown_class_is_refused_naming_file_feature_and_key(tmp_path):
    content = [_feature({"type": "Polygon", "coordinates": [SQUARE]}), _feature(
        {"type": "Polygon", "coordinates": [SQUARE]}, "Lymphocytes")]
    with pytest.raises(InputTableError) as error:
        geojson.read_annotations(_write(tmp_path, content), CLASSES, sample="S1")
    message = str(error.value)
    assert "S1.geojson" in message and "'S1'" in message and "feature 1" in message
    assert "'Lymphocytes'" in message and "tumour_regions.classes" in message


def test_unclassified_and_non_area_features_are_refused(tmp_path):
    unclassified = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [SQUARE]}, "properties": {}}
    with pytest.raises(InputTableError, match="has no class"):
        geojson.read_annotations(_write(tmp_path, [unclassified]), CLASSES)
    point = _feature({"type": "Point", "coordinates": [5, 5]})
    with pytest.raises(InputTableError, match="'Point' has no area"):
        geojson.read_annotations(_write(tmp_path, [point]), CLASSES)
    with pytest.raises(InputTableError, match="FeatureCollection"):
        geojson.read_annotations(_write(tmp_path, {"type": "Polygon", "coordinates": [SQUARE]}), CLASSES)


def test_coordinates_outside_the_slide_are_refused(tmp_path):
    big = [[0, 0], [5000, 0], [5000, 80], [0, 80], [0, 0]]
    path = _write(tmp_path, [_feature({"type": "Polygon", "coordinates": [big]})])
    geojson.read_annotations(path, CLASSES, width=5000, height=100)  # on the edge: fine
    with pytest.raises(InputTableError) as error:
        geojson.read_annotations(path, CLASSES, width=1000, height=100, sample="S1")
    message = str(error.value)
    assert "x 0..5000" in message and "1000 x 100" in message and "level-0" in message


def test_annotation_naming_an_unknown_slide_is_refused(tmp_path):
    (tmp_path / "S1.geojson").write_text("[]")
    (tmp_path / "S2.geojson").write_text("[]")
    assert geojson.annotated_samples(tmp_path, ["S1", "S2", "S3"]) == ["S1", "S2"]
    (tmp_path / "S9.geojson").write_text("[]")
    with pytest.raises(InputTableError) as error:
        geojson.annotated_samples(tmp_path, ["S1", "S2", "S3"])
    assert "S9.geojson" in str(error.value) and "tumour_regions.annotations" in str(error.value)
    with pytest.raises(InputTableError, match="does not exist"):
        geojson.annotated_samples(tmp_path / "missing", ["S1"])


def test_tumour_classes_must_be_known_and_leave_a_normal_class():
    with pytest.raises(ConfigError, match="tumour_regions.tumour_classes"):
        tumour_regions.settings({"classes": ["Tumor", "Stroma"], "tumour_classes": ["Tumour"]})
    with pytest.raises(ConfigError, match="normal-tissue class"):
        tumour_regions.settings({"classes": ["Tumor", "Stroma"], "tumour_classes": ["Tumor", "Stroma"]})


def _synthetic_slides(seed=0, n_slides=6, n=80, dim=8):
    rng = np.random.default_rng(seed)
    slides = {}
    for s in range(n_slides):
        labels = rng.integers(-1, 2, size=n)
        features = rng.normal(size=(n, dim)) + 1.5 * (labels == 1)[:, None] * np.linspace(1, 0, dim)
        slides[f"S{s}"] = (features.astype(np.float32), labels)
    return slides


def test_classifier_is_sklearn_logistic_regression_and_deterministic():
    settings = tumour_regions.settings({"max_tiles_per_slide": 50, "cv_folds": 3})
    slides = _synthetic_slides()
    fitted = classifier.fit(slides, settings)
    again = classifier.fit(slides, settings)
    np.testing.assert_array_equal(fitted["coef"], again["coef"])
    assert fitted["intercept"] == again["intercept"]
    # reference: the same tiles, standardised, in sklearn directly
    x, y, groups = classifier.training_set(slides, 50, settings["seed"])
    assert (np.bincount(pd.factorize(groups)[0]) <= 50).all()
    z = (x - x.mean(0)) / x.std(0)
    ref = LogisticRegression(C=settings["C"], class_weight="balanced", max_iter=5000).fit(z, y)
    np.testing.assert_allclose(fitted["coef"], ref.coef_[0], rtol=1e-6, atol=1e-8)
    features = np.concatenate([f for f, _ in slides.values()])
    expected = ref.predict_proba((features - x.mean(0)) / x.std(0))[:, 1]
    np.testing.assert_allclose(classifier.probability(fitted, features), expected, rtol=1e-5, atol=1e-6)
    assert 0.8 < fitted["cv_auc"] <= 1.0
    table = fitted["slides"]
    assert table["n_tumour"].sum() == sum(int((lab == 1).sum()) for _, lab in slides.values())


def test_cross_validation_holds_out_whole_slides():
    """The CV AUC equals a hand-made GroupKFold by slide with sklearn."""
    from sklearn.model_selection import GroupKFold

    settings = tumour_regions.settings({"cv_folds": 3})
    slides = _synthetic_slides(seed=3)
    fitted = classifier.fit(slides, settings)
    x, y, groups = classifier.training_set(slides, settings["max_tiles_per_slide"], settings["seed"])
    z = (x - x.mean(0)) / x.std(0)
    oof = np.zeros(len(y))
    for train, test in GroupKFold(n_splits=3).split(z, y, groups):
        oof[test] = LogisticRegression(C=settings["C"], class_weight="balanced", max_iter=5000).fit(
            z[train], y[train]).predict_proba(z[test])[:, 1]
    assert fitted["cv_auc"] == pytest.approx(roc_auc_score(y, oof), abs=1e-9)


def test_classifier_without_normal_tiles_is_refused():
    slides = {"S1": (np.zeros((4, 3), np.float32), np.array([1, 1, -1, 1]))}
    with pytest.raises(InputTableError, match="0 normal"):
        classifier.fit(slides, tumour_regions.settings({}))


def test_stores_round_trip(tmp_path):
    fitted = classifier.fit(_synthetic_slides(), tumour_regions.settings({}))
    write_classifier_store(tmp_path / "c.h5", fitted, {"threshold": 0.5, "code_version": "x", "params": "{}"})
    model = read_classifier_store(tmp_path / "c.h5")
    np.testing.assert_array_equal(model.coef, fitted["coef"])
    assert model.samples == sorted(_synthetic_slides()) and model.composition is None
    fitted["composition"] = classifier.fit_composition(_synthetic_slides(), ["Normal", "Tumor"],
                                                       tumour_regions.settings({}))
    write_classifier_store(tmp_path / "c.h5", fitted, {"threshold": 0.5})
    model = read_classifier_store(tmp_path / "c.h5")
    assert model.composition["classes"] == ["Normal", "Tumor"]
    np.testing.assert_array_equal(model.composition["coef"], fitted["composition"]["coef"])
    slides = {"S1": SlideTumour(np.array([[0, 0], [10, 0]]), np.array([0.2, 0.9], np.float32), 10.0, 5.0)}
    slides["S2"] = SlideTumour(np.array([[0, 0]]), np.array([0.5], np.float32), 10.0, 5.0,
                               np.array([[0.25, 0.75]], np.float32))
    write_tumour_tiles(tmp_path / "t.h5", slides, {"threshold": 0.5})
    back = read_tumour_tiles(tmp_path / "t.h5").slides["S1"]
    np.testing.assert_array_equal(back.probability, slides["S1"].probability)
    assert back.composition is None
    np.testing.assert_array_equal(read_tumour_tiles(tmp_path / "t.h5", ["S2"]).slides["S2"].composition,
                                  [[0.25, 0.75]])
    assert back.patch_size_level0 == 10.0 and back.tile_um == 5.0
    with h5py.File(tmp_path / "t.h5") as h5:
        assert h5["slides/S1/coords"].dtype == np.int64


def test_slide_table_and_largest_tumour_choice():
    slides = {"P1-A": SlideTumour(np.zeros((4, 2)), np.array([0.9, 0.8, 0.1, 0.2], np.float32), 1.0, 100.0),
              "P1-B": SlideTumour(np.zeros((3, 2)), np.array([0.9, 0.9, 0.9], np.float32), 1.0, 100.0),
              "P2-A": SlideTumour(np.zeros((2, 2)), np.array([0.1, 0.2], np.float32), 1.0, 100.0),
              "P2-B": SlideTumour(np.zeros((2, 2)), np.array([0.1, 0.3], np.float32), 1.0, 100.0)}
    table = tumour_regions.slide_table(slides, {s: s[:2] for s in slides}, 0.5).set_index("sample")
    assert table.loc["P1-A", "n_tumour_tiles"] == 2 and table.loc["P1-B", "n_tumour_tiles"] == 3
    assert table.loc["P1-B", "tumour_area_mm2"] == pytest.approx(3 * 0.01)
    # P1: the slide with 3 tumour tiles; P2: no tumour on either -> the first by name
    assert table.index[table["selected"]].tolist() == ["P1-B", "P2-A"]


def _store(path, features, tile_um=100.0):
    with h5py.File(path, "w") as h5:
        h5.create_dataset("features", data=features.astype(np.float32))
        coords = h5.create_dataset("coords", data=np.zeros((len(features), 2), np.int64))
        coords.attrs["patch_size_level0"] = 200.0
        h5.attrs["tile_um"] = tile_um
        h5.attrs["sample"] = path.stem


def test_tile_pool_keeps_tumour_tiles_only_and_is_unchanged_without(tmp_path):
    rng = np.random.default_rng(1)
    features = rng.normal(size=(30, 4)).astype(np.float32)
    _store(tmp_path / "S1.h5", features)
    _store(tmp_path / "S2.h5", -np.abs(features))  # classifier calls none tumour: all tiles kept
    model = {"coef": np.array([1.0, 0, 0, 0]), "intercept": 0.0, "feature_mean": np.zeros(4),
             "feature_sd": np.ones(4)}
    paths = {"S1": str(tmp_path / "S1.h5"), "S2": str(tmp_path / "S2.h5")}
    patients = {"S1": "P1", "S2": "P2"}
    plain = gene_models.load_tile_pool(paths, patients, None, 0)
    assert plain.tiles_per_sample == [30, 30]
    pool = gene_models.load_tile_pool(paths, patients, None, 0, (model, 0.5))
    n_tumour = int((features[:, 0] >= 0).sum())
    assert pool.tiles_per_sample == [n_tumour, 30]
    np.testing.assert_array_equal(pool.features[:n_tumour], features[features[:, 0] >= 0])
    capped = gene_models.load_tile_pool(paths, patients, 5, 0, (model, 0.5))
    assert capped.tiles_per_sample == [5, 5]
    assert (capped.features[:5, 0] >= 0).all()


def test_demo_annotations_reproduce_the_planted_tumour_map(tmp_path):
    """The demo's QuPath-style files, read back, label tiles as the planted map says:
    tile-centre labels equal the planted compartment of the centre cell."""
    from emo.demo.annotations import geojson_for, tile_tumour_fraction

    rng = np.random.default_rng(5)
    labels = np.zeros((30, 40), np.uint8)
    labels[3:27, 4:36] = rng.integers(1, 6, size=(24, 32))
    labels[10:20, 10:20] = 1  # a tumour block with a stroma hole
    labels[13:16, 13:16] = 2
    truth = {"labels": labels, "um_per_px": np.array(8.0), "mpp": np.array(0.5)}  # 16 level-0 px per cell
    for as_list in (False, True):
        path = _write(tmp_path, geojson_for(truth, as_list), f"demo{int(as_list)}.geojson")
        names = ["Tumor", "Stroma", "Immune cells", "Fat", "Necrosis"]
        regions = geojson.read_annotations(path, names, width=40 * 16, height=30 * 16)
        assert any(r.holes for r in regions if r.name == "Tumor")
        cells = np.argwhere(labels > 0)
        coords = cells[:, ::-1] * 16  # one tile per cell, x = column
        got = geojson.tile_labels(regions, names, coords, 16, grid=1, min_overlap=0.5)
        np.testing.assert_array_equal(got, labels[cells[:, 0], cells[:, 1]].astype(int) - 1)
    share = tile_tumour_fraction(truth, np.array([[10 * 16, 10 * 16]]), 10 * 16)
    assert share[0] == pytest.approx(91 / 100)  # the block minus its 3 x 3 hole
    assert np.isnan(tile_tumour_fraction(truth, np.array([[0, 0]]), 3 * 16)[0])  # glass only
    from emo.demo.annotations import tile_compartment_fraction
    from emo.demo.design import COMPARTMENTS

    assert tile_compartment_fraction(truth, np.array([[10 * 16, 10 * 16]]), 10 * 16, "stroma")[0] == pytest.approx(0.09)
    coords = np.array([[4 * 16, 3 * 16], [20 * 16, 5 * 16]])  # tissue tiles: the compartments' shares sum to 1
    total = sum(tile_compartment_fraction(truth, coords, 6 * 16, c) for c in COMPARTMENTS)
    np.testing.assert_allclose(total, 1.0)


def test_tumour_options_need_the_stage():
    from emo.workflow.plan import _tumour_option

    config = {"tumour_regions": {"enabled": False}, "gene_models": {"tile_selection": "tumour"},
              "predictions": {"patient_slides": "all"}}
    with pytest.raises(ConfigError, match="'gene_models.tile_selection' is 'tumour'.*tumour_regions.enabled"):
        _tumour_option(config, ("gene_models", "tile_selection"), "tumour")
    assert _tumour_option(config, ("predictions", "patient_slides"), "largest_tumour") is False
    config["tumour_regions"]["enabled"] = True
    assert _tumour_option(config, ("gene_models", "tile_selection"), "tumour") is True


def test_composition_classifier_is_multinomial_sklearn():
    rng = np.random.default_rng(7)
    n, dim = 300, 6
    labels = rng.integers(-1, 3, size=n)
    centres = rng.normal(scale=2.0, size=(3, dim))
    features = rng.normal(size=(n, dim)) + np.where(labels[:, None] >= 0, centres[np.maximum(labels, 0)], 0)
    slides = {"S1": (features[:150].astype(np.float32), labels[:150]),
              "S2": (features[150:].astype(np.float32), labels[150:])}
    settings = tumour_regions.settings({})
    fitted = classifier.fit_composition(slides, ["Tumor", "Stroma", "Fat", "Necrosis"], settings)
    assert fitted["classes"] == ["Tumor", "Stroma", "Fat"]  # Necrosis has no labelled tile
    x, y, _ = classifier.training_set(slides, settings["max_tiles_per_slide"], settings["seed"])
    z = (x - x.mean(0)) / x.std(0)
    ref = LogisticRegression(C=settings["C"], class_weight="balanced", max_iter=5000).fit(z, y)
    probs = classifier.composition_probabilities(fitted, features)
    np.testing.assert_allclose(probs, ref.predict_proba((features - x.mean(0)) / x.std(0)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-6)


def test_two_class_composition_matches_the_binary_model():
    slides = _synthetic_slides(seed=2)
    settings = tumour_regions.settings({})
    binary = classifier.fit(slides, settings)
    # class 0 = normal, 1 = tumour: the softmax of two classes is the binary logistic model
    two = classifier.fit_composition(slides, ["Normal", "Tumor"], settings)
    features = np.concatenate([f for f, _ in slides.values()])
    np.testing.assert_allclose(classifier.composition_probabilities(two, features)[:, 1],
                               classifier.probability(binary, features), rtol=1e-5, atol=1e-6)


def test_composition_entropy_and_table():
    assert classifier.composition_entropy(np.array([1.0, 0, 0])) == 0.0
    assert classifier.composition_entropy(np.array([0.25] * 4)) == pytest.approx(1.0)
    p = np.array([0.5, 0.3, 0.2])
    assert classifier.composition_entropy(p) == pytest.approx(-(p * np.log(p)).sum() / np.log(3))
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]], np.float32)
    slides = {"S1": SlideTumour(np.zeros((4, 2)), np.zeros(4, np.float32), 1.0, 1.0, probs)}
    table = tumour_regions.composition_table(slides, {"S1": "P1"}, ["Tumor", "Stroma", "Fat"]).iloc[0]
    assert (table["fraction_tumor"], table["fraction_stroma"], table["fraction_fat"]) == (0.5, 0.25, 0.25)
    assert tumour_regions.fraction_column("Immune cells") == "fraction_immune_cells"
    assert table["composition_entropy"] == pytest.approx(classifier.composition_entropy(np.array([0.5, 0.25, 0.25])))
