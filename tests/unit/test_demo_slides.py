"""Demo slides: Aperio SVS readable by OpenSlide, pyramid, mpp, determinism, QC artefacts."""

from __future__ import annotations

import numpy as np
import openslide
import pytest
from scipy import ndimage

from emo.demo import design, layout, render, slides

# Small slides, every QC artefact switched on, so the tests are fast.
SMALL = {"slide_size_um": [1300, 900], "pen_fraction": 1.0, "blur_fraction": 1.0,
         "patients": {"TCGA": 6, "ABIM": 3}, "two_slide_fraction": 0.0}


def _sample_with_mpp(cfg, mpp):
    for sample in design.sample_names(cfg):
        if design.slide_spec(cfg, sample).mpp == mpp:
            return sample
    raise AssertionError(f"no sample at mpp {mpp}")


@pytest.fixture(scope="module")
def small_slides(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_slides")
    cfg = design.settings(SMALL)
    made = {}
    for mpp in (0.5, 0.25):
        sample = _sample_with_mpp(cfg, mpp)
        slides.make_slide(cfg, sample, out / f"{sample}.svs", out / f"{sample}.npz")
        made[mpp] = (sample, out / f"{sample}.svs", out / f"{sample}.npz")
    return cfg, made


@pytest.mark.parametrize("mpp", [0.5, 0.25])
def test_svs_opens_as_aperio_pyramid(small_slides, mpp):
    cfg, made = small_slides
    sample, svs, npz = made[mpp]
    slide = openslide.OpenSlide(str(svs))
    assert slide.properties["openslide.vendor"] == "aperio"
    assert float(slide.properties[openslide.PROPERTY_NAME_MPP_X]) == pytest.approx(mpp)
    assert float(slide.properties[openslide.PROPERTY_NAME_MPP_Y]) == pytest.approx(mpp)
    assert slide.properties[openslide.PROPERTY_NAME_OBJECTIVE_POWER] == ("40" if mpp == 0.25 else "20")
    assert slide.level_count >= 3
    width, height = slide.dimensions
    assert width != height
    truth = np.load(npz)
    assert (width, height) == (int(truth["level0_width"]), int(truth["level0_height"]))
    spec = design.slide_spec(cfg, sample)
    assert width * mpp == pytest.approx(spec.width_um, abs=mpp)
    downsamples = slide.level_downsamples
    assert all(b > a for a, b in zip(downsamples, downsamples[1:]))
    region = np.asarray(slide.read_region((0, 0), slide.level_count - 1,
                                          slide.level_dimensions[-1]).convert("RGB"))
    assert region.std() > 5  # not blank


def test_truth_file_contents(small_slides):
    cfg, made = small_slides
    _, svs, npz = made[0.5]
    truth = np.load(npz)
    labels = truth["labels"]
    assert labels.dtype == np.uint8 and labels.max() <= len(design.COMPARTMENTS)
    assert float(truth["um_per_px"]) == cfg["truth_um_per_px"]
    assert labels.shape[1] * float(truth["um_per_px"]) == pytest.approx(
        int(truth["level0_width"]) * float(truth["mpp"]), abs=float(truth["um_per_px"]))
    fractions = truth["fractions"]
    assert fractions.sum() == pytest.approx(1.0)
    counts = np.bincount(labels[labels > 0], minlength=6)[1:]
    np.testing.assert_allclose(counts / counts.sum(), fractions, atol=0.03)
    assert list(truth["compartments"]) == list(design.COMPARTMENTS)
    assert truth["pen"].any() and truth["blur"].any()


def test_pixels_deterministic():
    cfg = design.settings(SMALL)
    sample = design.sample_names(cfg)[0]
    a = render.render(layout.make_layout(design.slide_spec(cfg, sample)), cfg["render_um_per_px"])
    b = render.render(layout.make_layout(design.slide_spec(cfg, sample)), cfg["render_um_per_px"])
    np.testing.assert_array_equal(a, b)
    other = render.render(layout.make_layout(design.slide_spec(design.settings({**SMALL, "seed": 7}), sample)),
                          cfg["render_um_per_px"])
    assert a.shape != other.shape or not np.array_equal(a, other)


def test_written_slide_pixels_identical(small_slides, tmp_path):
    cfg, made = small_slides
    sample, svs, npz = made[0.5]
    slides.make_slide(cfg, sample, tmp_path / "again.svs", tmp_path / "again.npz")
    a, b = openslide.OpenSlide(str(svs)), openslide.OpenSlide(str(tmp_path / "again.svs"))
    for level in range(a.level_count):
        size = a.level_dimensions[level]
        np.testing.assert_array_equal(np.asarray(a.read_region((0, 0), level, size)),
                                      np.asarray(b.read_region((0, 0), level, size)))
    assert (tmp_path / "again.npz").read_bytes() == npz.read_bytes()


def _compartment_pixels(cfg, sample):
    lay = layout.make_layout(design.slide_spec(cfg, sample))
    image = render.render(lay, cfg["render_um_per_px"]).astype(float)
    factor = int(layout.FINE_UM / cfg["render_um_per_px"])
    labels = np.repeat(np.repeat(lay.labels, factor, 0), factor, 1)
    pen = np.repeat(np.repeat(lay.pen, factor, 0), factor, 1)
    blur = np.repeat(np.repeat(lay.blur, factor, 0), factor, 1)
    return lay, image, labels, pen, blur


@pytest.mark.slow
def test_compartments_look_different_and_artefacts_present():
    cfg = design.settings({**SMALL, "patients": {"TCGA": 12}})
    stats = {}
    checked = {"pen": 0, "blur": 0}
    for sample in design.sample_names(cfg)[:6]:
        lay, image, labels, pen, blur = _compartment_pixels(cfg, sample)
        grey = image.mean(axis=2)
        clean = ~pen & ~blur
        for code, name in enumerate(("background",) + design.COMPARTMENTS):
            sel = (labels == code) & clean
            if sel.sum() > 5000:
                stats.setdefault(name, []).append((grey[sel].mean(), image[..., 2][sel].mean() - image[..., 1][sel].mean()))
        if pen.any():
            ink = image[pen & (labels == 0)]
            if len(ink):
                # blue or green ink: the red channel is absorbed most
                assert ink[:, 0].mean() < ink[:, 1:].max(axis=1).mean() - 20
                checked["pen"] += 1
        if blur.any():
            lap = ndimage.laplace(grey)
            inner = ndimage.binary_erosion(blur, iterations=20) & (labels > 0)
            sharp = (labels > 0) & ~ndimage.binary_dilation(blur, iterations=20) & ~pen
            if inner.sum() > 1000 and sharp.sum() > 1000:
                assert lap[inner].var() < 0.5 * lap[sharp].var()
                checked["blur"] += 1
    assert checked["pen"] >= 1 and checked["blur"] >= 1, checked
    mean = {k: np.mean([v[0] for v in vals]) for k, vals in stats.items()}
    assert mean["background"] > 230
    assert mean["fat"] > mean["stroma"]
    assert mean["lymphocytes"] < mean["stroma"] and mean["tumour"] < mean["stroma"]
    assert mean["necrosis"] > mean["tumour"]


def _tumour_od(site_stain=(1.0, 1.0), grade=0.5, seed=5):
    """Mean optical density (R, G, B) of the tumour texture, and its haematoxylin-rich share."""
    tex = render.textures(np.random.default_rng(seed), 1.0, site_stain, grade)[design.LABELS["tumour"]]
    od = -np.log10((tex.astype(np.float64) + 1) / 256)
    return od.reshape(-1, 3).mean(0), float((od[..., 0] > 0.6).mean())


def test_site_stain_and_tumour_grade_change_the_pixels():
    base, base_dark = _tumour_od()
    more_h, _ = _tumour_od(site_stain=(1.3, 1.0))
    more_e, _ = _tumour_od(site_stain=(1.0, 1.3))
    # haematoxylin absorbs red and green (OD_H), eosin almost only green (OD_E)
    assert more_h[0] > base[0] + 0.03 and more_e[1] > base[1] + 0.03
    assert more_e[0] - base[0] < 0.5 * (more_h[0] - base[0])
    _, low_dark = _tumour_od(grade=0.0)
    _, high_dark = _tumour_od(grade=1.0)
    assert high_dark > low_dark * 1.3, (low_dark, high_dark)   # larger, denser nuclei
