"""emo.stain: Macenko fit and normalisation checked against a known colour transform."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emo import slides, stain, tiling
from emo.stores import tiles as tile_store
from emo.errors import ConfigError
from tiling_fixtures import HE_REF, TEST_PARAMS, he_concentrations, render, synthetic_slides

REFERENCE = Path(__file__).resolve().parents[2] / "resources" / "macenko_reference.json"
# A different lab/scanner: Ruifrok's haematoxylin, a more purple eosin (unit OD columns).
OTHER = np.array([[0.65, 0.35], [0.70, 0.85], [0.29, 0.40]])
OTHER = OTHER / np.linalg.norm(OTHER, axis=0)


def _cosines(a, b):
    return np.sum(a * b, axis=0) / np.linalg.norm(a, axis=0) / np.linalg.norm(b, axis=0)


def test_reference_file_holds_henorm_values():
    ref = stain.load_reference(REFERENCE)
    np.testing.assert_allclose(ref.stain_matrix, stain.HENORM_REFERENCE["stain_matrix"])
    np.testing.assert_allclose(ref.max_concentrations, stain.HENORM_REFERENCE["max_concentrations"])
    assert (ref.Io, ref.alpha, ref.beta) == (240.0, 1.0, 0.15)


def test_fit_recovers_a_known_stain_matrix():
    conc = he_concentrations(384, 384, 0.5, seed=2)
    image = render(conc, OTHER)
    fitted = stain.fit_stain(image)
    assert (_cosines(fitted.stain_matrix, OTHER) > 0.99).all()       # H first, E second
    ref_fit = stain.fit_stain(render(conc, HE_REF))
    assert (_cosines(ref_fit.stain_matrix, HE_REF) > 0.99).all()


def test_normalisation_undoes_a_known_colour_transform():
    conc = he_concentrations(384, 384, 0.5, seed=4)
    reference = stain.load_reference(REFERENCE)
    source_image = render(conc, OTHER)
    source = stain.fit_stain(source_image)
    normalised = stain.normalise(source_image, source, reference)
    # expected: same concentrations, scaled to the reference maxima, rendered with the reference stains
    truth = stain.fit_stain(render(conc, HE_REF))
    scale = reference.max_concentrations / truth.max_concentrations
    expected = render(conc * scale[:, None, None], reference.stain_matrix)
    tissue = conc.sum(axis=0) > 0.3
    err = np.abs(normalised.astype(float) - expected.astype(float))[tissue]
    before = np.abs(source_image.astype(float) - expected.astype(float))[tissue]
    assert err.mean() < 5.0 and np.median(err) <= 4.0
    assert before.mean() > 20 and err.mean() < before.mean() / 4


def test_reader_applies_the_stored_stain_fit(tmp_path):
    info = slides.check_slide("x40", synthetic_slides()["x40"])
    reference = stain.load_reference(REFERENCE)
    result = tiling.tile_slide(info, TEST_PARAMS, reference, str(REFERENCE))
    assert result.stain is not None and result.stain["n_tiles"] == result.coords.shape[0]
    path = tmp_path / "x40.h5"
    tile_store.write_tile_store(path, tiling.build_store(result, "v", "0"))
    stored = tile_store.read_tile_store(path).stain
    assert stored["method"] == "macenko" and np.asarray(stored["stain_matrix"]).shape == (3, 2)
    raw = tiling.TileReader(info.path, path)
    norm = tiling.TileReader(info.path, path, normalise=True)
    source, ref = stain.from_attrs(stored)
    np.testing.assert_array_equal(norm[0], stain.normalise(raw[0], source, ref))
    # synthetic slides are stained with the reference vectors: normalisation changes little
    assert np.abs(norm[0].astype(int) - raw[0].astype(int)).mean() < 12
    # a store without a stain fit refuses normalise=True
    plain = tmp_path / "plain.h5"
    tile_store.write_tile_store(plain, tiling.build_store(tiling.tile_slide(info, TEST_PARAMS), "v", "0"))
    with pytest.raises(Exception, match="stain_normalisation.method: macenko"):
        tiling.TileReader(info.path, plain, normalise=True)


def test_bad_reference_names_the_config_key(tmp_path):
    with pytest.raises(ConfigError, match="stain_normalisation.reference"):
        stain.load_reference(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"stain_matrix": [[1, 2]], "max_concentrations": [1, 2]}')
    with pytest.raises(ConfigError, match="3x2"):
        stain.load_reference(bad)
