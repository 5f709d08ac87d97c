"""HTI groups, patient/slide selection, the survival rule's tables, and the log-rank test's
power and size on simulated cohorts with and without a planted HTI-survival link."""

import numpy as np
import pandas as pd
import pytest

from emo import survival
from emo.errors import InputTableError
from heterogeneity_fixtures import simulate_survival


def test_hti_groups_thresholds():
    hti = pd.Series([0.1, 0.3, 0.5, 0.51, 0.7, 0.9])
    assert survival.hti_groups(hti).tolist() == ["low", "low", "low", "high", "high", "high"]
    lung = survival.hti_groups(hti, high_threshold=0.7, low_threshold=0.3)
    assert lung.tolist()[:2] == ["low", "low"] and lung.tolist()[-1] == "high"
    assert lung.isna().tolist() == [False, False, True, True, True, False]
    with pytest.raises(ValueError):
        survival.hti_groups(hti, high_threshold=0.3, low_threshold=0.7)


def test_one_slide_per_patient_takes_first_sorted_sample():
    slides = pd.DataFrame({"patient": ["p1", "p1", "p2"], "sample": ["p1-DX2", "p1-DX1", "p2-DX1"],
                           "hti": [0.9, 0.1, 0.5]})
    chosen = survival.one_slide_per_patient(slides)
    assert chosen["sample"].tolist() == ["p1-DX1", "p2-DX1"]


def test_covariates_encoded_and_dropped():
    data = pd.DataFrame({"age": [50, 60, 70], "er": ["positive", "negative", ""], "her2": ["negative"] * 3})
    out, kept, dropped = survival.prepare_covariates(data, ["age", "er", "her2", "nodes_positive"])
    assert kept == ["age", "er"]
    assert out["er"].tolist()[:2] == [1.0, 0.0] and np.isnan(out["er"].iloc[2])
    assert any(d.startswith("her2: constant") for d in dropped)
    assert any(d.startswith("nodes_positive: absent") for d in dropped)


def _log_rank_p(n, log_hr, seed):
    rng = np.random.default_rng(seed)
    hti = rng.uniform(0, 1, n)
    time, event = simulate_survival(hti, log_hr, seed=seed + 1)
    group = survival.hti_groups(pd.Series(hti)).to_numpy()
    return survival.logrank(time, event, group)["p"]


def test_planted_link_is_detected():
    # HR exp(3) across the HTI range on 150 patients, the scale of the demo's test + OOD set.
    assert _log_rank_p(150, 3.0, seed=11) < 1e-3


@pytest.mark.slow
def test_no_link_rejected_at_nominal_rate():
    p = np.array([_log_rank_p(80, 0.0, seed=1000 + i) for i in range(300)])
    rate = float((p < 0.05).mean())
    print(f"log-rank rejection rate under no link: {rate:.3f} (nominal 0.05, 300 simulations)")
    # Binomial(300, 0.05): sd 0.0126; accept +-3 sd.
    assert 0.012 <= rate <= 0.088


def _hti_table(n, seed, log_hr=2.5):
    rng = np.random.default_rng(seed)
    patients = [f"P{i:03d}" for i in range(n)]
    hti = rng.uniform(0, 1, n)
    table = pd.DataFrame({"sample": [f"{p}-S1" for p in patients], "patient": patients, "hti": hti,
                          "hti_continuous": np.clip(hti + rng.normal(0, 0.05, n), 0, 1),
                          "survival_eligible": rng.random(n) < 0.8})
    time, event = simulate_survival(hti, log_hr, seed=seed)
    clinical = pd.DataFrame({"patient": patients, "survival_time": time, "survival_event": event,
                             "age": rng.normal(60, 10, n).round(), "er": rng.choice(["positive", "negative"], n),
                             "her2": "negative"})
    return table, clinical


def test_run_survival_tables(tmp_path):
    table, clinical = _hti_table(120, seed=5)
    out = {k: str(tmp_path / f"{k}.tsv") for k in ("patients", "km", "logrank", "cox")}
    out["figure"] = str(tmp_path / "km.png")
    cfg = {"covariates": ["age", "er", "her2", "tumour_size_mm"], "high_threshold": 0.5}
    survival.run_survival(table, clinical, cfg, out, "test", inputs=[])
    patients = pd.read_csv(out["patients"], sep="\t")
    assert set(patients["patient"]) == set(table.loc[table["survival_eligible"], "patient"])
    lr = pd.read_csv(out["logrank"], sep="\t").iloc[0]
    assert lr["n_high"] + lr["n_low"] == len(patients)
    assert lr["n_high"] == (patients["hti"] > 0.5).sum()
    ref = survival.logrank(patients["survival_time"], patients["survival_event"], patients["group"])
    assert lr["chisq"] == pytest.approx(ref["chisq"])
    cox = pd.read_csv(out["cox"], sep="\t")
    assert cox["covariate"].tolist() == ["hti", "age", "er"]
    assert "her2: constant" in cox["dropped_covariates"].iloc[0]
    assert cox.loc[0, "hazard_ratio"] > 1  # planted log-HR 2.5
    km = pd.read_csv(out["km"], sep="\t")
    assert set(km["group"]) == {"high", "low"}
    assert km["survival"].between(0, 1).all() and (km["ci_lower"] <= km["survival"] + 1e-12).all()
    assert (tmp_path / "km.png").stat().st_size > 1000
    # Deterministic: a rerun gives byte-identical tables.
    before = {k: open(v, "rb").read() for k, v in out.items() if k != "figure"}
    survival.run_survival(table, clinical, cfg, out, "test", inputs=[])
    assert before == {k: open(v, "rb").read() for k, v in out.items() if k != "figure"}


def test_missing_survival_columns_named(tmp_path):
    table, clinical = _hti_table(20, seed=1)
    with pytest.raises(InputTableError, match="survival_time"):
        survival.analysis_set(table, clinical.drop(columns="survival_time"), "hti")


@pytest.mark.parametrize("words, fix", [(("dead", "alive"), "recode 'dead' as 1, 'alive' as 0"),
                                        (("deceased", "living"), "recode 'deceased' as 1, 'living' as 0"),
                                        (("yes", "no"), "recode 'yes' as 1, 'no' as 0")])
def test_text_survival_event_is_refused_not_run_on_no_patient(tmp_path, words, fix):
    """Text once became NaN and survival ran on 0 patients with success; now it is refused."""
    table, clinical = _hti_table(20, seed=1)
    clinical["survival_event"] = np.where(clinical["survival_event"] == 1, words[0], words[1])
    out = {k: str(tmp_path / f"{k}.tsv") for k in ("patients", "km", "logrank", "cox")}
    out["figure"] = str(tmp_path / "km.png")
    with pytest.raises(InputTableError) as error:
        survival.run_survival(table, clinical, {"covariates": []}, out, "test", inputs=[])
    message = str(error.value)
    print(message)
    assert "column 'survival_event'" in message and f"{words[0]!r}" in message and f"{words[1]!r}" in message
    assert fix in message and "1 = event" in message and "0 = censored" in message
    assert not (tmp_path / "patients.tsv").exists()


def test_survival_time_must_be_a_number_and_event_0_or_1():
    _, clinical = _hti_table(10, seed=2)
    bad_time = clinical.assign(survival_time=clinical["survival_time"].astype(object))
    bad_time.loc[3, "survival_time"] = "12 months"
    with pytest.raises(InputTableError, match=r"column 'survival_time': 1 value\(s\) .*'12 months' \(patients P003\)"):
        survival.check_survival_columns(bad_time)
    with pytest.raises(InputTableError, match=r"column 'survival_event': .*'2'"):
        survival.check_survival_columns(clinical.assign(survival_event=clinical["survival_event"] + 1))
    # numbers, and empty cells (unknown: the patient is left out), pass
    fine = clinical.assign(survival_event=clinical["survival_event"].astype(float))
    fine.loc[0, "survival_event"] = np.nan
    survival.check_survival_columns(fine)
