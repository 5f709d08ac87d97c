"""emo.headline: the report's headline numbers are cells of the result tables (nothing
recomputed), a switched-off stage is a "not run" row naming its key, and the landing text
is valid reStructuredText that Snakemake's Jinja pass leaves alone."""

from __future__ import annotations

import copy
import math

import pandas as pd
import pytest
from docutils.core import publish_parts
from jinja2 import Environment

from emo import headline
from emo.settings import load

ENCODER = "enc"


def _tsv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return str(path)


@pytest.fixture()
def tables(tmp_path):
    t = tmp_path
    return {
        "tiling": _tsv(t / "summary.tsv", [{"sample": "s1", "candidates": 10, "accepted": 7},
                                           {"sample": "s2", "candidates": 5, "accepted": 0},
                                           {"sample": "s3", "candidates": 9, "accepted": 9}]),
        "models": _tsv(t / "comparison.tsv", [
            {"model": m, "n_genes": 57, "validation_n_bh_below_0.05": k, "validation_median_spearman": r,
             "n_selected": s, "test_n_tested": s, "test_n_validated": v}
            for m, k, r, s, v in (("emo", 20, 0.41, 12, 9), ("ridge", 18, 0.38, 10, 7),
                                  ("colour_texture", 3, math.nan, 0, 0))]),
        "spatial": _tsv(t / "probes.tsv", [
            {"probe": "MKI67", "coefficient": 0.8, "ci_low": 0.5, "ci_high": 1.1, "padj": 0.001},
            {"probe": "CD3E", "coefficient": 0.3, "ci_low": -0.1, "ci_high": 0.7, "padj": 0.2},
            {"probe": "ESR1", "coefficient": math.nan, "ci_low": math.nan, "ci_high": math.nan,
             "padj": math.nan}]),
        "spatial_ki67": _tsv(t / "ki67.tsv", [{"probe": "proliferation_score", "coefficient": 1.5, "ci_low": 1.0,
                                               "ci_high": 2.0, "padj": 3e-5}]),
        "cox": _tsv(t / "cox.tsv", [
            {"covariate": "hti", "hazard_ratio": 4.2, "hr_lower": 1.5, "hr_upper": 11.0, "p": 0.004, "n": 40,
             "events": 12},
            {"covariate": "age", "hazard_ratio": 1.0, "hr_lower": 0.9, "hr_upper": 1.1, "p": 0.8, "n": 40,
             "events": 12}]),
        "logrank": _tsv(t / "logrank.tsv", [{"p": 0.01, "n_high": 15, "n_low": 25, "events_high": 8,
                                             "events_low": 4}]),
        "entropy_cox": _tsv(t / "entropy_cox.tsv", [
            {"covariate": "composition_entropy", "hazard_ratio": 7.5, "hr_lower": 2.0, "hr_upper": 28.0, "p": 0.002,
             "n": 38, "events": 11}]),
        "entropy_logrank": _tsv(t / "entropy_logrank.tsv", [{"p": 0.03, "n_high": 19, "n_low": 19,
                                                             "events_high": 7, "events_low": 4}]),
        "fusion": _tsv(t / "fusion_summary.tsv", [
            {"target": "basal", "set": "cv", "metric": "pr_auc", "best_unimodal": "expression",
             "best_unimodal_value": 0.92, "best_fusion": "late", "best_fusion_value": 0.89, "difference": -0.03,
             "image_value": 0.69},
            {"target": "basal", "set": "cv", "metric": "f1", "best_unimodal": "expression",
             "best_unimodal_value": 0.8, "best_fusion": "late", "best_fusion_value": 0.7, "difference": -0.1,
             "image_value": 0.5}]),
        "classifiers": _tsv(t / "metrics.tsv", [
            {"label": "er", "set": "validation", "level": "patient", "metric": "auc", "value": 0.7, "ci_lower": 0.5,
             "ci_upper": 0.9, "n": 11},
            {"label": "er", "set": "test", "level": "patient", "metric": "auc", "value": 0.85, "ci_lower": 0.7,
             "ci_upper": 1.0, "n": 11},
            {"label": "er", "set": "test", "level": "tile", "metric": "auc", "value": 0.6, "ci_lower": 0.55,
             "ci_upper": 0.65, "n": 2200},
            {"label": "pam50", "set": "validation", "level": "patient", "metric": "auc_ovr", "value": 0.9,
             "ci_lower": 0.8, "ci_upper": 1.0, "n": 11},
            {"label": "pam50", "set": "validation", "level": "patient", "metric": "top1_accuracy", "value": 0.55,
             "ci_lower": 0.3, "ci_upper": 0.8, "n": 11}]),
    }


def _value(table, measure):
    return float(table.set_index("measure").loc[measure, "value"])


def test_numbers_are_the_tables_cells(tables):
    table = headline.headline_table(tables, {}, spatial_fdr=0.05)
    assert list(table.columns) == headline.HEADLINE_COLUMNS
    assert (table["status"] == "ok").all()
    assert _value(table, "slides") == 3 and _value(table, "accepted_tiles") == 16
    assert _value(table, "emo:validation_n_bh_below_0.05") == 20
    assert _value(table, "ridge:validation_n_bh_below_0.05") == 18
    assert _value(table, "probes_significant") == 1  # MKI67 only; ESR1 not fitted
    assert _value(table, "ki67_coefficient") == 1.5
    assert _value(table, "hti_hazard_ratio") == 4.2 and _value(table, "logrank_p") == 0.01
    assert _value(table, "composition_entropy_hazard_ratio") == 7.5
    assert _value(table, "composition_entropy_logrank_p") == 0.03
    assert _value(table, "basal:fusion_minus_unimodal_pr_auc") == -0.03
    # the most independent set a label has (test before validation), patient level
    assert _value(table, "er:test:auc") == 0.85
    assert _value(table, "pam50:validation:top1_accuracy") == 0.55
    text = "\n".join(table["text"])
    assert "20 of 57 genes at validation BH < 0.05" in text and "9 of 12 replicated" in text
    assert "strongest MKI67" in text and "1 not fitted" in text
    assert "adjusted for age" in text and "median Spearman n/a" in text
    assert "basal: PR-AUC best fusion (late) 0.89 vs best unimodal (expression) 0.92; image only 0.69" in text
    assert "per unit composition entropy 7.50" in text and "log-rank composition entropy high vs low: p 0.03" in text
    sources = dict(zip(table["measure"], table["source"]))
    assert sources["hti_hazard_ratio"] == tables["cox"] and sources["er:test:auc"] == tables["classifiers"]
    # sections in the landing page's order
    assert list(dict.fromkeys(table["section"])) == list(headline.SECTION_TITLES)


def _config(**enabled):
    config = copy.deepcopy(load({"samples": "x.tsv", "cohorts": {"A": {"expression": "a.tsv", "role": "training",
                                                                        "reference": True}}}))
    for key in ("spatial", "heterogeneity", "survival", "clinical_classifiers"):
        config[key]["enabled"] = enabled.get(key, True)
    return config


def test_sources_and_not_run_follow_the_config():
    inputs, not_run = headline.headline_sources(_config(), ENCODER, clinical_classifiers_run=True, fusion_run=True)
    assert set(inputs) >= {"tiling", "models", "cox", "logrank", "classifiers", "fusion"} and not not_run
    assert inputs["models"] == f"results/statistics/{ENCODER}/models/comparison.tsv"
    inputs, not_run = headline.headline_sources(_config(spatial=False, heterogeneity=False, clinical_classifiers=False),
                                                ENCODER, clinical_classifiers_run=False)
    assert set(inputs) == {"tiling", "models"}
    assert not_run == {"spatial": "not run (spatial.enabled: false)",
                       "survival": "not run (heterogeneity.enabled: false)",
                       "clinical_classifiers": "not run (clinical_classifiers.enabled: false)",
                       "fusion": "not run (no clinical table: config key clinical)"}
    _, not_run = headline.headline_sources(_config(survival=False), ENCODER, clinical_classifiers_run=True,
                                           fusion_run=True)
    assert not_run == {"survival": "not run (survival.enabled: false)"}


def test_not_run_rows_and_landing_text(tables):
    inputs = {k: tables[k] for k in ("tiling", "models")}
    not_run = {"spatial": "not run (spatial.enabled: false)", "survival": "not run (survival.enabled: false)"}
    table = headline.headline_table(inputs, not_run, spatial_fdr=0.05)
    rows = table[table["status"] == "not_run"]
    assert list(rows["section"]) == ["spatial", "survival"] and rows["value"].isna().all()
    # Snakemake renders the landing text through Jinja, then docutils
    rst = headline.landing_rst("Static {{ snakemake.config['x'] }} text.", table.assign(
        text=table["text"].where(table["status"] != "ok", table["text"] + " {{ not a template }}")))
    rendered = Environment().from_string(rst).render(snakemake=type("S", (), {"config": {"x": "landing"}}))
    assert "Static landing text." in rendered and "{{ not a template }}" in rendered
    html = publish_parts(rendered, writer="html", settings_overrides={"report_level": 2})["html_body"]
    assert "system-message" not in html  # no rst warning or error
    assert "Headline numbers of this run" in html and "<table" in html
    assert "not run (spatial.enabled: false)" in html and "20 of 57 genes" in html


def test_write_headline_and_landing_page(tables, tmp_path):
    static = tmp_path / "workflow.rst"
    static.write_text("Static landing text.\n")
    out_table, out_landing = tmp_path / "report" / "headline.tsv", tmp_path / "report" / "landing.rst"
    assert headline.landing_page(static, out_landing) == str(static.resolve())
    headline.write_headline(tables, {}, static.read_text(), 0.05, str(out_table), str(out_landing), "abc", {"x": 1})
    assert (tmp_path / "report" / "headline.tsv.json").is_file()
    assert pd.read_csv(out_table, sep="\t").shape[0] >= 10
    assert out_landing.read_text().startswith("Static landing text.")
    assert headline.landing_page(static, out_landing) == str(out_landing.resolve())
