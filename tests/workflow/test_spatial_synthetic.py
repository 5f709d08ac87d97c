"""Synthetic ST study with planted and null probes through the whole spatial analysis
(library level, both backends) and through the Snakemake rules."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

import spatial_fixtures as sf
from emo import spatial
from emo.errors import InputTableError
from workflow_runner import snakemake, stage_snakefile

HAVE_R = shutil.which("Rscript") is not None


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return sf.build_study(tmp_path_factory.mktemp("spatial_study"))


def _run(study, backend, **overrides):
    counts = spatial.load_probe_counts(study["counts_path"])
    ki67 = spatial.load_ki67(study["ki67_path"])
    return spatial.run_models(study["roi_preds"], counts, sf.settings(backend=backend, **overrides), ki67=ki67)


@pytest.mark.parametrize("backend", ["python", pytest.param("lme4", marks=[
    pytest.mark.r, pytest.mark.skipif(not HAVE_R, reason="R not installed")])])
def test_planted_probes_significant_null_probes_not(study, backend):
    results = _run(study, backend)
    probes = results.probes.set_index("probe")
    planted = probes.loc[study["planted"]]
    null = probes.loc[study["null"]]
    planted_rate = float((planted["padj"] < 0.05).mean())
    null_rate = float((null["padj"] < 0.05).mean())
    print(f"{backend}: planted significant {planted_rate:.2f} ({len(planted)}), "
          f"null significant {null_rate:.2f} ({len(null)})")
    assert planted_rate == 1.0
    assert null_rate <= 1 / len(null)
    # planted slope is 1: the Wald CIs of the planted probes cover it
    assert ((planted["ci_low"] < 1.0) & (planted["ci_high"] > 1.0)).mean() >= 0.75
    assert set(probes.index) == set(study["planted"]) | set(study["null"])
    # dropped / skipped probes and excluded ROIs are listed with reasons
    dropped = results.dropped.set_index("probe")["reason"]
    assert dropped[sf.LOW_VARIANCE].startswith("variance <") and "no tile predictions" in dropped[sf.MISSING]
    excluded = results.excluded_rois.set_index("roi")["reason"]
    assert "coverage" in excluded["HOLE"] and excluded["NOCOUNTS"] == "no probe counts"
    # the single-ROI slide is kept in the LMM (10 slides) but has no Spearman r
    last = study["samples"][-1]
    assert (probes["n_slides"] == len(study["samples"])).all()
    rows = results.spearman[results.spearman["sample"] == last]
    assert rows["status"].str.startswith("excluded: fewer than").all() and rows["spearman_r"].isna().all()
    # Spearman r of planted probes mostly positive within slides
    planted_r = results.spearman[results.spearman["probe"].isin(study["planted"])]["spearman_r"].dropna()
    assert planted_r.median() > 0.5
    # Ki67: log2 Ki67 ~ proliferation score is planted too
    ki67 = results.ki67.iloc[0]
    print(f"{backend}: Ki67 LMM coefficient {ki67['coefficient']:.3f} p {ki67['p']:.3g}")
    assert ki67["p"] < 0.01 and ki67["ci_low"] < 0.8 < ki67["ci_high"]
    if backend == "lme4":
        # the python backend reproduces lme4 on every probe (10 slides, unbalanced, one single-ROI slide)
        python = _run(study, "python").probes.set_index("probe")
        for key in ("coefficient", "se", "lrt_chi2"):
            np.testing.assert_allclose(python[key], probes.loc[python.index, key], rtol=1e-5, atol=1e-9)


def test_ki67_needs_proliferation_genes_and_positive_values(study):
    from emo.errors import ConfigError

    ki67 = spatial.load_ki67(study["ki67_path"])
    usable = study["roi_preds"].dropna()
    settings = sf.settings(backend="python", proliferation_genes=["MKI67", "NOTAGENE"])
    with pytest.raises(ConfigError, match="spatial.proliferation_genes.*NOTAGENE"):
        spatial.ki67_model(usable, ki67, settings, None)
    zero = ki67.copy()
    zero.loc[zero.index[2], "ki67"] = 0.0
    with pytest.raises(InputTableError, match="ki67_pseudocount"):
        spatial.ki67_model(usable, zero, sf.settings(), None)


def test_counts_for_unknown_roi_and_no_probe_left(study, tmp_path):
    counts = spatial.load_probe_counts(study["counts_path"])
    extra = pd.concat([counts, counts.iloc[[0]].assign(roi="GHOST")], ignore_index=True)
    with pytest.raises(InputTableError, match="ROI 'GHOST' is not in the ROI table"):
        spatial.run_models(study["roi_preds"], extra, sf.settings(backend="python"))
    only_missing = counts[["sample", "roi", *sf.NEGATIVES, sf.MISSING]]
    with pytest.raises(InputTableError, match="no probe left"):
        spatial.run_models(study["roi_preds"], only_missing, sf.settings(backend="python"))


def test_results_are_deterministic(study, tmp_path):
    from emo.io import write_tsv

    first, second = _run(study, "python"), _run(study, "python")
    write_tsv(first.probes, tmp_path / "a.tsv")
    write_tsv(second.probes, tmp_path / "b.tsv")
    assert (tmp_path / "a.tsv").read_bytes() == (tmp_path / "b.tsv").read_bytes()


def test_figures_are_written(study, tmp_path):
    results = _run(study, "python")
    for name, plot, table in [("padj", spatial.plot_padj, results.probes),
                              ("coef", spatial.plot_coefficients, results.probes),
                              ("rho", spatial.plot_spearman, results.spearman)]:
        plot(table, tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 5000
    assert spatial.choose_overlay_probe(results.probes, {}) == "multi-krt"
    assert spatial.choose_overlay_probe(results.probes, {"overlay_probe": "CD8A"}) == "CD8A"


# ---------------------------------------------------------------------------
# Snakemake: the stage's rules on the synthetic study (other stages' outputs pre-made)
# ---------------------------------------------------------------------------

def _write_slide_image(path, width, height):
    import pyvips

    rng = np.random.default_rng(0)
    small = (rng.uniform(150, 240, size=(height // 20, width // 20, 3))).astype(np.uint8)
    image = pyvips.Image.new_from_array(small).resize(20, kernel="nearest")
    image.tiffsave(str(path), tile=True, pyramid=True, compression="jpeg", tile_width=256, tile_height=256)


@pytest.mark.slow
def test_snakemake_spatial_rules(tmp_path):
    import yaml

    wd = tmp_path / "wd"
    study = sf.build_study(wd, n_slides=4, rois_per_slide=6, seed=5, encoder="efficientnet_lite0")
    slides = wd / "slides"
    slides.mkdir()
    sheet = []
    for sample in study["samples"]:
        _write_slide_image(slides / f"{sample}.tiff", int(sf.NX * sf.TILE), int(sf.NY * sf.TILE))
        sheet.append({"sample": sample, "patient": f"P{sample}", "cohort": "ST", "slide": str(slides / f"{sample}.tiff"),
                      "mpp": sf.MPP})
    pd.DataFrame(sheet).to_csv(wd / "samples.tsv", sep="\t", index=False)
    # re-touch the pre-made stores so they are newer than the slides
    for tiles, preds in study["stores"].values():
        tiles.touch()
        preds.touch()
    expression = wd / "expr.tsv"
    pd.DataFrame({"gene": ["CD8A"], **{f"P{s}": [1.0] for s in study["samples"]}}).to_csv(
        expression, sep="\t", index=False)
    config = {
        "samples": "samples.tsv", "cohorts": {"ST": {"expression": "expr.tsv", "role": "training", "reference": True}},
        "tiling": {}, "features": {"encoder": "efficientnet_lite0"}, "expression": {}, "splits": {"seed": 1},
        "predictions": {"tile_genes": "all"},
        "spatial": {**{k: v for k, v in sf.settings().items() if k in (
            "negative_probes", "multi_gene_probes", "probe_gene_map", "min_variance", "min_tile_coverage")},
            "enabled": True, "rois": "rois.tsv", "probe_counts": "probe_counts.tsv", "ki67": "ki67.tsv",
            "backend": "python", "thumbnail_px": 400},
    }
    (wd / "config.yaml").write_text(yaml.safe_dump(config))
    # common.smk + this stage's rule file only (other stages are exercised by the
    # full-workflow tests)
    targets = ["results/spatial/efficientnet_lite0/probes.tsv",
               "results/spatial/efficientnet_lite0/figures/padj.png",
               f"results/spatial/efficientnet_lite0/overlays/{study['samples'][0]}.png"]
    snakefile = stage_snakefile(tmp_path, "spatial_validation.smk")

    def run(*extra):
        return snakemake(wd, "--configfile", str(wd / "config.yaml"), "--cores", "1", "--rerun-triggers", "mtime",
                         *extra, "--", *targets, snakefile=snakefile, check=False)

    out = run()
    assert out.returncode == 0, out.stderr[-4000:]
    res = wd / "results" / "spatial" / "efficientnet_lite0"
    probes = pd.read_csv(res / "probes.tsv", sep="\t")
    assert list(probes.columns[:10]) == ["probe", "n_rois", "n_slides", "coefficient", "se", "ci_low", "ci_high",
                                         "lrt_chi2", "p", "padj"]
    planted = probes[probes["probe"].isin(study["planted"])]
    assert (planted["padj"] < 0.05).all()
    for name in ("spearman.tsv", "dropped_probes.tsv", "ki67.tsv", "ki67_spearman.tsv", "excluded_rois.tsv",
                 "probes.tsv.json"):
        assert (res / name).stat().st_size > 0
    assert (res / "overlays" / f"{study['samples'][0]}.png").stat().st_size > 5000
    # a second run has nothing to do (byte-identical reruns are checked at library level)
    dry = run("-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr
    # an ROI outside its slide fails with a clear message naming slide and ROI
    rois = pd.read_csv(wd / "rois.tsv", sep="\t", dtype=str, keep_default_na=False)
    rois.loc[0, ["shape", "units", "x", "y", "width", "height"]] = ["rect", "px", "1500", "0", "400", "100"]
    rois.to_csv(wd / "rois.tsv", sep="\t", index=False)
    bad = run()
    assert bad.returncode != 0
    sample, roi = rois.loc[0, "sample"], rois.loc[0, "roi"]
    assert f"slide '{sample}', ROI '{roi}'" in bad.stdout + bad.stderr
    assert "config key 'spatial.rois'" in bad.stdout + bad.stderr          # found when the DAG is built
    # genes named in the spatial config but not predicted per tile: error when the DAG is built
    config["predictions"] = {"tile_genes": ["CD8A", "KRT18"]}
    (wd / "config.yaml").write_text(yaml.safe_dump(config))
    early = run("-n")
    assert early.returncode != 0 and "'predictions.tile_genes' lacks" in early.stdout + early.stderr
    assert "KRT19" in early.stdout + early.stderr
