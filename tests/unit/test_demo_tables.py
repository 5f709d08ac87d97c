"""Demo tables: determinism, planted expression signal, clinical consistency, HTI and
survival, spatial transcriptomics tables."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from scipy import stats
from sklearn.linear_model import LinearRegression

from emo.demo import design, slides, tables

CFG = {"patients": {"TCGA": 40, "CLINSEQ": 20, "ABIM": 14}, "gene_panel": "compact", "n_genes": 60,
       "slide_size_um": [1800, 1300], "st_slides": 4, "two_slide_fraction": 0.1}


@pytest.fixture(scope="module")
def truth_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo_truth")
    cfg = design.settings(CFG)
    paths = []
    for sample in design.sample_names(cfg):
        paths.append(folder / f"{sample}.npz")
        slides.make_truth(cfg, sample, paths[-1])
    return paths


@pytest.fixture(scope="module")
def written(truth_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_tables")
    files = tables.write_tables(CFG, truth_files, out, "testversion")
    return out, files


@pytest.fixture(scope="module")
def data(written):
    out, files = written
    expr = pd.concat([pd.read_csv(files[f"expression_{c}"], sep="\t", index_col="gene") for c in
                      ("TCGA", "CLINSEQ", "ABIM")], axis=1)
    clinical = pd.read_csv(files["clinical"], sep="\t", index_col="patient")
    truth = json.loads(files["truth"].read_text())
    fractions = pd.DataFrame(truth["patients"]).T.loc[expr.columns]
    return expr, clinical, truth, fractions


@pytest.mark.slow  # shares a ~20-90 s fixture (74 truth layouts)
def test_tables_byte_identical_on_rerun(written, truth_files, tmp_path):
    out, files = written
    again = tables.write_tables(CFG, list(reversed(truth_files)), tmp_path, "testversion")
    assert set(again) == set(files)
    assert any(key.startswith("annotation_") for key in files)  # region annotations of some slides
    for key, path in files.items():
        assert again[key].read_bytes() == path.read_bytes(), key
        sidecar = path.with_name(path.name + ".json")
        if key != "truth" and not key.startswith("annotation_"):  # annotations: QuPath-style, no sidecar
            assert json.loads(sidecar.read_text())["code_version"] == "testversion"


@pytest.mark.slow  # shares a ~20-90 s fixture (74 truth layouts)
def test_expression_format(written, data):
    out, files = written
    expr, clinical, truth, _ = data
    cfg = design.settings(CFG)
    for cohort in ("TCGA", "CLINSEQ", "ABIM"):
        table = pd.read_csv(files[f"expression_{cohort}"], sep="\t")
        assert table.columns[0] == "gene"
        assert table["gene"].tolist() == design.gene_names(cfg)
        patients = table.columns[1:].tolist()
        assert patients == sorted(patients) and all(p.startswith(cohort + "-") for p in patients)
        assert len(patients) == CFG["patients"][cohort]
    assert np.isfinite(expr.to_numpy()).all()
    assert set(clinical.index) == set(expr.columns)


@pytest.mark.slow  # shares a ~20-90 s fixture (74 truth layouts)
def test_morphology_genes_follow_driver_fractions_and_null_genes_do_not(data):
    expr, _, truth, fractions = data
    r2 = {}
    for gene, info in truth["genes"].items():
        model = LinearRegression().fit(fractions.to_numpy(), expr.loc[gene].to_numpy())
        r2[gene] = model.score(fractions.to_numpy(), expr.loc[gene].to_numpy())
    morph = [g for g, v in truth["genes"].items() if v["type"] == "morphology"]
    null = [g for g, v in truth["genes"].items() if v["type"] == "null"]
    assert len(morph) >= 10 and len(null) >= 10
    # batch offsets (CLINSEQ) reduce the pooled R²; planted R² is 0.9
    assert np.median([r2[g] for g in morph]) > 0.6
    assert np.median([r2[g] for g in null]) < 0.15
    # a morphology gene tracks its own driver score (linear; within the reference cohort)
    tcga = [p for p in expr.columns if p.startswith("TCGA-")]
    r = {}
    for gene in morph:
        score = tables.driver_score(truth["genes"][gene]["drivers"], fractions.loc[tcga])
        r[gene] = stats.pearsonr(score, expr.loc[gene, tcga]).statistic
    assert min(r.values()) > 0.5 and np.median(list(r.values())) > 0.85, r


@pytest.mark.slow  # shares a ~20-90 s fixture (74 truth layouts)
def test_variance_filter_targets(data):
    expr, _, truth, _ = data
    training = [p for p in expr.columns if p.startswith(("TCGA-", "CLINSEQ-"))]
    variance = expr[training].var(axis=1, ddof=1)
    near = truth["gene_types"]["near_constant"]
    assert len(near) == 3
    assert (variance[near] < 0.01).all()
    assert (variance.drop(near) > 0.01).all()


@pytest.mark.slow  # shares a ~20-90 s fixture (74 truth layouts)
def test_clinseq_batch_offsets(data):
    expr, _, truth, _ = data
    offsets = pd.Series(truth["cohort_offsets"]["CLINSEQ"])
    assert "TCGA" not in truth["cohort_offsets"]
    tcga = expr[[p for p in expr.columns if p.startswith("TCGA-")]]
    clinseq = expr[[p for p in expr.columns if p.startswith("CLINSEQ-")]]
    shift = (clinseq.median(axis=1) - tcga.median(axis=1))[offsets.index]
    assert stats.pearsonr(shift, offsets).statistic > 0.8


@pytest.mark.slow  # shares a ~20-90 s fixture (74 truth layouts)
def test_clinical_consistent(data):
    expr, clinical, truth, _ = data
    for column in ("age", "er", "pr", "her2", "pam50", "tp53", "tumour_size_mm", "nodes_positive",
                   "survival_time", "survival_event"):
        assert column in clinical.columns
    assert set(clinical["er"]) <= {"positive", "negative"}
    assert set(clinical["pam50"]) <= {"LumA", "LumB", "Her2", "Basal", "Normal"}
    assert set(clinical["survival_event"]) <= {0, 1} and (clinical["survival_time"] > 0).all()
    er = clinical.loc[expr.columns, "er"] == "positive"
    assert stats.mannwhitneyu(expr.loc["ESR1", er], expr.loc["ESR1", ~er], alternative="greater").pvalue < 1e-3
    her2 = clinical.loc[expr.columns, "her2"] == "positive"
    assert expr.loc["ERBB2", her2].mean() > expr.loc["ERBB2", ~her2].mean()
    basal = clinical["pam50"] == "Basal"
    assert (clinical.loc[basal, "er"] == "negative").all()


def test_hti_matches_paper_examples():
    both = np.ones((30, 2), dtype=bool)
    assert tables.hti_from_traits(both)[0] == 0.0
    thirds = np.array([[1, 0]] * 10 + [[0, 1]] * 10 + [[1, 1]] * 10 + [[0, 0]] * 7, dtype=bool)
    assert tables.hti_from_traits(thirds)[0] == pytest.approx(1.0)
    p = np.array([0.5, 0.25, 0.25])
    mixed = np.array([[1, 0]] * 20 + [[0, 1]] * 10 + [[1, 1]] * 10, dtype=bool)
    assert tables.hti_from_traits(mixed)[0] == pytest.approx(-(p * np.log(p)).sum() / math.log(3))
    assert tables.hti_from_traits(np.zeros((5, 2), dtype=bool))[0] == 0.0


@pytest.mark.slow  # shares a ~20-90 s fixture (74 truth layouts)
def test_hti_spans_range(data):
    _, _, truth, _ = data
    hti = pd.Series(truth["heterogeneity"]["samples"])
    assert hti.min() >= 0 and hti.max() <= 1
    assert (hti < 0.2).sum() >= 5 and (hti > 0.7).sum() >= 5
    assert truth["heterogeneity"]["traits"] == ["MKI67", "PTPRC"]


def _cox_p(clinical, hti):
    frame = clinical[["survival_time", "survival_event"]].join(hti.rename("hti"))
    fit = CoxPHFitter().fit(frame, "survival_time", "survival_event")
    return float(fit.summary.loc["hti", "p"]), float(fit.summary.loc["hti", "coef"])


@pytest.mark.slow  # shares a ~20-90 s fixture (74 truth layouts)
def test_hti_survival_link_and_switch_off(data, truth_files):
    _, clinical, truth, _ = data
    hti = pd.Series(truth["heterogeneity"]["patients"])
    p, coef = _cox_p(clinical, hti)
    assert p < 0.01 and coef > 1.0
    # the planted entropy link too (HTI and composition entropy are correlated, so the HTI's
    # association only vanishes with both links off)
    entropy = pd.Series(truth["heterogeneity"]["patient_composition_entropy"])
    p_entropy, coef_entropy = _cox_p(clinical, entropy)
    assert p_entropy < 0.01 and coef_entropy > 1.0, (p_entropy, coef_entropy)
    no_link = {"heterogeneity_log_hr": 0.0, "composition_entropy_log_hr": 0.0}
    off = tables.build({**CFG, **no_link}, truth_files)
    clinical_off = off["clinical"].set_index("patient")
    p_off, coef_off = _cox_p(clinical_off, hti)
    assert p_off > 0.05 and abs(coef_off) < coef / 2, (p_off, coef_off)
    # with both log-HRs 0 the event times no longer depend on HTI or entropy at all: they equal
    # the times of the same patients generated with HTI and entropy replaced by any other values
    assert off["truth"]["heterogeneity"]["log_hr"] == 0.0
    shuffled = tables.survival(design.settings({**CFG, **no_link}), hti.sample(frac=1, random_state=0)
                               .set_axis(hti.index), entropy.sample(frac=1, random_state=1).set_axis(entropy.index))
    pd.testing.assert_frame_equal(shuffled.sort_index(), clinical_off[["survival_time", "survival_event"]].sort_index())


@pytest.mark.slow  # shares a ~20-90 s fixture (74 truth layouts)
def test_spatial_tables(written, data):
    out, files = written
    _, _, truth, _ = data
    rois = pd.read_csv(files["rois"], sep="\t", keep_default_na=False)
    counts = pd.read_csv(files["probe_counts"], sep="\t")
    ki67 = pd.read_csv(files["ki67"], sep="\t")
    spatial = truth["spatial"]
    assert len(spatial["slides"]) == CFG["st_slides"]
    assert list(rois.columns) == ["sample", "roi", "shape", "units", "x", "y", "width", "height", "polygon"]
    per_slide = rois.groupby("sample").size()
    assert per_slide.between(6, 10).all() and set(per_slide.index) == set(spatial["slides"])
    assert (rois["shape"] == "polygon").any() and (rois["units"] == "um").any() and (rois["units"] == "px").any()
    poly = rois[rois["shape"] == "polygon"].iloc[0]["polygon"]
    assert len([p.split() for p in poly.split(",")]) >= 3
    assert counts[["sample", "roi"]].equals(rois[["sample", "roi"]]) and ki67[["sample", "roi"]].equals(rois[["sample", "roi"]])
    probes = counts.columns[2:]
    for neg in ("NegProbe-1", "NegProbe-2", "NegProbe-3"):
        assert neg in probes
    assert set(spatial["multi_gene_probes"]) <= set(probes)
    assert "multi-krt" in spatial["multi_gene_probes"]
    genes = set(truth["genes"])
    for probe in set(probes) - set(spatial["multi_gene_probes"]) - set(spatial["negative_probes"]):
        assert probe in genes, probe
    assert ((ki67["ki67"] >= 0) & (ki67["ki67"] <= 1)).all()
    # negative-probe normalised log counts: planted probes follow ROI composition within slides
    neg = counts[list(spatial["negative_probes"])].mean(axis=1)
    comp = pd.DataFrame([spatial["roi_composition"][f"{s}/{r}"] for s, r in zip(counts["sample"], counts["roi"])])

    def within_slide_rho(values, score):
        frame = pd.DataFrame({"v": values, "s": score, "slide": counts["sample"]})
        centred = frame.groupby("slide")[["v", "s"]].transform(lambda x: x - x.mean())
        return stats.spearmanr(centred["v"], centred["s"]).statistic

    planted = [p for p in spatial["planted_probes"] if p in truth["genes"]]
    rho_planted = [within_slide_rho(np.log2(counts[p] / neg), tables.driver_score(truth["genes"][p]["drivers"], comp))
                   for p in planted]
    assert np.median(rho_planted) > 0.5
    rho_null = [within_slide_rho(np.log2(counts[p] / neg), comp["tumour"]) for p in spatial["null_probes"]]
    assert np.median(np.abs(rho_null)) < 0.35
    assert within_slide_rho(ki67["ki67"], comp["tumour"]) > 0.4


def test_tumour_cell_genes_follow_the_grade_not_the_compartments(data):
    expr, _, truth, fractions = data
    cell = [g for g, v in truth["genes"].items() if v["type"] == "tumour_cell"]
    assert len(cell) >= 2, truth["gene_types"]
    tcga = [p for p in expr.columns if p.startswith("TCGA-")]
    grade = pd.Series({p: truth["patient_traits"][p]["tumour_grade"] for p in tcga})
    for gene in cell:
        sign = truth["genes"][gene]["drivers"][design.TUMOUR_GRADE]
        r = stats.pearsonr(sign * grade, expr.loc[gene, tcga]).statistic
        planted = math.sqrt(truth["genes"][gene]["r2"])
        assert r > planted - 0.35, (gene, r, planted)   # 40 patients: sd of r about 0.15
        tumour_share = stats.pearsonr(fractions.loc[tcga, "tumour"], expr.loc[gene, tcga]).statistic
        assert abs(tumour_share) < 0.45, (gene, tumour_share)


def test_synthetic_effect_sizes_are_spread_mostly_weak():
    cfg = design.settings({"gene_panel": "full", "n_genes": 400})
    r2 = np.array([s.r2 for s in design.gene_specs(cfg) if s.type in ("morphology", "tumour_cell")
                   and s.name.startswith("GENE")])
    low, high = cfg["synthetic_r2_range"]
    assert len(r2) >= 40 and r2.min() >= low and r2.max() <= high
    # log-uniform on [0.1, 0.9]: about 68 % below 0.5, 32 % below 0.2
    assert 0.55 < (r2 < 0.5).mean() < 0.8 and (r2 < 0.2).mean() > 0.2
    named = [s.r2 for s in design.gene_specs(cfg) if s.type == "morphology" and not s.name.startswith("GENE")]
    assert set(named) == {cfg["morphology_r2"]}
