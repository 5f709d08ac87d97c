"""The 40-number colour/texture description of tiles (emo.colour_texture)."""

import numpy as np

from emo.colour_texture import DESCRIPTOR_NAMES, GLCM_LEVELS, N_DESCRIPTORS, _glcm_features, tile_descriptors


def _named(row):
    return dict(zip(DESCRIPTOR_NAMES, row))


def test_stain_and_texture_descriptors_order_tiles_as_their_content():
    rng = np.random.default_rng(0)
    haematoxylin = np.broadcast_to(np.array([70, 60, 150], np.uint8), (128, 128, 3))   # purple nuclei
    eosin = np.broadcast_to(np.array([235, 130, 180], np.uint8), (128, 128, 3))        # pink stroma
    noisy = np.clip(eosin + rng.normal(0, 40, size=eosin.shape), 0, 255).astype(np.uint8)
    white = np.full((128, 128, 3), 245, np.uint8)
    d = tile_descriptors(np.stack([haematoxylin, eosin, noisy, white]))
    assert d.shape == (4, N_DESCRIPTORS) and d.dtype == np.float32 and np.isfinite(d).all()
    h, e, n, w = (_named(r) for r in d)
    assert h["haem_mean"] > e["haem_mean"] and e["eosin_mean"] > h["eosin_mean"]
    assert h["haem_dominant_fraction"] == 1.0 and e["haem_dominant_fraction"] == 0.0
    assert w["white_fraction"] == 1.0 and e["white_fraction"] == 0.0
    assert n["glcm_contrast"] > e["glcm_contrast"] == 0.0 and n["gradient_mean"] > e["gradient_mean"] == 0.0
    assert n["glcm_entropy"] > 1.0 and e["glcm_energy"] == 1.0


def test_glcm_matches_a_direct_count():
    rng = np.random.default_rng(1)
    grey = rng.random((2, 9, 11)).astype(np.float32)
    got = _glcm_features(grey)
    for t in range(2):
        q = np.minimum((grey[t] * GLCM_LEVELS).astype(int), GLCM_LEVELS - 1)
        m = np.zeros((GLCM_LEVELS, GLCM_LEVELS))
        for y in range(q.shape[0]):
            for x in range(q.shape[1]):
                for dy, dx in ((0, 1), (1, 0)):
                    if y + dy < q.shape[0] and x + dx < q.shape[1]:
                        m[q[y, x], q[y + dy, x + dx]] += 1
                        m[q[y + dy, x + dx], q[y, x]] += 1
        p = m / m.sum()
        i, j = np.indices(p.shape)
        np.testing.assert_allclose(got[t, 0], (p * (i - j) ** 2).sum(), rtol=1e-10)
        np.testing.assert_allclose(got[t, 2], (p * p).sum(), rtol=1e-10)


def test_half_resolution_keeps_colour_statistics():
    rng = np.random.default_rng(2)
    tile = rng.integers(0, 256, size=(1, 32, 32, 3), dtype=np.uint8).repeat(8, 1).repeat(8, 2)  # 256 px, blocky
    small = tile[:, ::2, ::2]
    a, b = _named(tile_descriptors(tile)[0]), _named(tile_descriptors(small)[0])
    for key in ("r_mean", "g_sd", "haem_mean", "sat_mean", "white_fraction"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6)
