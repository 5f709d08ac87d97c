"""Survival by tissue-composition entropy (the tumour-regions stage's per-slide entropy),
beside the HTI: the measure table's eligibility, the median split, the tables' naming,
the Cox fit against lifelines directly, the DAG-time switch and the demo's planted link."""

import math

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from scipy.stats import entropy as scipy_entropy

from emo import survival
from emo.demo import design, tables
from emo.errors import ConfigError, InputTableError
from emo.workflow import plan as plan_mod
from heterogeneity_fixtures import simulate_survival


def _composition(n, seed, log_hr=3.0):
    rng = np.random.default_rng(seed)
    patients = [f"P{i:03d}" for i in range(n)]
    value = rng.uniform(0.2, 0.95, n)
    composition = pd.DataFrame({"sample": [f"{p}-S1" for p in patients], "patient": patients,
                                "n_tiles": rng.integers(20, 200, n), "fraction_tumour": 0.5,
                                "composition_entropy": value})
    composition.loc[3, "n_tiles"] = 0  # a slide with no classified tile
    time, event = simulate_survival(value, log_hr, seed=seed + 1)
    clinical = pd.DataFrame({"patient": patients, "survival_time": time, "survival_event": event,
                             "age": rng.normal(60, 10, n).round()})
    return composition, clinical


def test_measure_table_leaves_out_training_slides_and_empty_slides():
    composition, _ = _composition(30, seed=1)
    table = survival.entropy_measure_table(composition, ["P000-S1", "P001-S1"])
    assert list(table.columns) == ["sample", "patient", "composition_entropy", "survival_eligible"]
    assert not table.loc[[0, 1, 3], "survival_eligible"].any() and table["survival_eligible"].sum() == 27
    with pytest.raises(InputTableError, match="composition_entropy.*tumour_regions.composition"):
        survival.entropy_measure_table(composition.drop(columns="composition_entropy"), [])


def test_entropy_survival_tables_median_split_and_cox_against_lifelines(tmp_path):
    composition, clinical = _composition(160, seed=7)
    measure = survival.entropy_measure_table(composition, ["P000-S1"])
    out = {k: str(tmp_path / f"{k}.tsv") for k in ("patients", "km", "logrank", "cox")}
    out["figure"] = str(tmp_path / "km.png")
    survival.run_survival(measure, clinical, {"covariates": ["age"], "hti": survival.ENTROPY,
                                              "entropy_threshold": None}, out, "test", inputs=[])
    patients = pd.read_csv(out["patients"], sep="\t")
    assert "composition_entropy" in patients.columns and "hti" not in patients.columns
    assert len(patients) == 158
    median = float(np.median(patients["composition_entropy"]))
    lr = pd.read_csv(out["logrank"], sep="\t").iloc[0]
    assert lr["hti"] == "composition_entropy" and lr["high_threshold"] == pytest.approx(median)
    assert lr["n_high"] == (patients["composition_entropy"] > median).sum() == 79
    assert lr["p"] < 0.01  # planted log-HR 3 across the entropy range
    cox = pd.read_csv(out["cox"], sep="\t").set_index("covariate")
    assert cox.index.tolist() == ["composition_entropy", "age"]
    reference = CoxPHFitter().fit(patients[["survival_time", "survival_event", "composition_entropy", "age"]],
                                  "survival_time", "survival_event").summary
    assert cox.loc["composition_entropy", "coef"] == pytest.approx(reference.loc["composition_entropy", "coef"],
                                                                   abs=1e-6)
    assert cox.loc["composition_entropy", "p"] == pytest.approx(reference.loc["composition_entropy", "p"], rel=1e-5)
    # a fixed threshold is used as given
    survival.run_survival(measure, clinical, {"covariates": [], "hti": survival.ENTROPY, "entropy_threshold": 0.8},
                          out, "test", inputs=[])
    lr = pd.read_csv(out["logrank"], sep="\t").iloc[0]
    assert lr["high_threshold"] == 0.8 and lr["n_high"] == (patients["composition_entropy"] > 0.8).sum()


def _config(composition_entropy, composition=True, enabled=True):
    return {"survival": {"enabled": True, "composition_entropy": composition_entropy},
            "tumour_regions": {"enabled": enabled, "composition": composition}}


def test_dag_switch_follows_the_composition_or_refuses():
    assert plan_mod._survival_entropy(_config(None)) is True
    assert plan_mod._survival_entropy(_config(None, composition=False)) is False
    assert plan_mod._survival_entropy(_config(False)) is False
    with pytest.raises(ConfigError, match="survival.composition_entropy.*tumour_regions.composition"):
        plan_mod._survival_entropy(_config(True, enabled=False))


def test_demo_entropy_and_planted_link():
    fractions = pd.DataFrame([[0.2, 0.2, 0.2, 0.2, 0.2], [1.0, 0, 0, 0, 0], [0.5, 0.3, 0.1, 0.1, 0.0]],
                             index=["a", "b", "c"], columns=list(design.COMPARTMENTS))
    ent = tables.composition_entropy(fractions)
    for patient, row in fractions.iterrows():
        assert ent[patient] == pytest.approx(scipy_entropy(row.to_numpy(), base=5), abs=1e-12)
    # the entropy term moves every patient's event time by exp(-beta_e * (entropy - 0.65)); same draws
    cfg = design.settings({"composition_entropy_log_hr": 4.0, "heterogeneity_log_hr": 0.0})
    hti = pd.Series(0.5, index=ent.index)
    on = tables.survival(cfg, hti, ent)
    off = tables.survival({**cfg, "composition_entropy_log_hr": 0.0}, hti, ent)
    checked = 0
    for patient in ent.index:
        if on.loc[patient, "survival_event"] and off.loc[patient, "survival_event"]:
            checked += 1
            ratio = off.loc[patient, "survival_time"] / on.loc[patient, "survival_time"]
            assert ratio == pytest.approx(math.exp(4.0 * (ent[patient] - 0.65)), rel=1e-3)
    assert checked >= 1
