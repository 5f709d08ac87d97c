"""Kaplan-Meier, log-rank and Cox PH of emo.survival (lifelines) against R's survival
package on the GBSG2 breast-cancer data shipped with lifelines (rel. tol. 1e-6)."""

import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from emo import survival

RSCRIPT = shutil.which("Rscript")

R_CODE = r"""
suppressMessages(library(survival))
args <- commandArgs(trailingOnly = TRUE)
d <- read.delim(args[1])
out <- args[2]
fit <- survfit(Surv(time, cens) ~ 1, data = d, conf.type = "log-log")
times <- c(100, 365, 730, 1000, 1500, 2000)
s <- summary(fit, times = times)
km <- data.frame(time = times, surv = s$surv, lower = s$lower, upper = s$upper)
write.table(km, paste0(out, "_km.tsv"), sep = "\t", row.names = FALSE)
sd <- survdiff(Surv(time, cens) ~ horTh, data = d)
write.table(data.frame(chisq = sd$chisq, p = pchisq(sd$chisq, 1, lower.tail = FALSE)),
            paste0(out, "_logrank.tsv"), sep = "\t", row.names = FALSE)
cf <- coxph(Surv(time, cens) ~ age + tsize + pnodes + horth01, data = d, ties = "efron",
            control = coxph.control(eps = 1e-12, iter.max = 100))
sm <- summary(cf)$coefficients
cx <- data.frame(covariate = rownames(sm), coef = sm[, "coef"], se = sm[, "se(coef)"], p = sm[, "Pr(>|z|)"],
                 concordance = unname(cf$concordance["concordance"]))
write.table(cx, paste0(out, "_cox.tsv"), sep = "\t", row.names = FALSE)
"""


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    if RSCRIPT is None:
        pytest.skip("Rscript not installed (apt-get install r-base-core r-cran-survival)")
    check = subprocess.run([RSCRIPT, "-e", "library(survival)"], capture_output=True)
    if check.returncode != 0:
        pytest.skip("R package 'survival' not installed")
    from lifelines.datasets import load_gbsg2

    data = load_gbsg2()
    data["horth01"] = (data["horTh"] == "yes").astype(int)
    tmp = tmp_path_factory.mktemp("r_survival")
    data.to_csv(tmp / "gbsg2.tsv", sep="\t", index=False)
    (tmp / "ref.R").write_text(R_CODE)
    subprocess.run([RSCRIPT, str(tmp / "ref.R"), str(tmp / "gbsg2.tsv"), str(tmp / "out")], check=True,
                   capture_output=True)
    return data, {name: pd.read_csv(tmp / f"out_{name}.tsv", sep="\t") for name in ("km", "logrank", "cox")}


def _at(curve: pd.DataFrame, column: str, times) -> np.ndarray:
    """Right-continuous step function value at the given times."""
    idx = np.searchsorted(curve["time"].to_numpy(), times, side="right") - 1
    return curve[column].to_numpy()[idx]


def test_kaplan_meier_matches_r(reference):
    data, ref = reference
    curve = survival.kaplan_meier(data["time"].to_numpy(), data["cens"].to_numpy())
    times = ref["km"]["time"].to_numpy()
    np.testing.assert_allclose(_at(curve, "survival", times), ref["km"]["surv"], rtol=1e-6)
    # lifelines' CI is the log(-log) transform of Greenwood's variance, R's conf.type = "log-log".
    np.testing.assert_allclose(_at(curve, "ci_lower", times), ref["km"]["lower"], rtol=1e-6)
    np.testing.assert_allclose(_at(curve, "ci_upper", times), ref["km"]["upper"], rtol=1e-6)
    assert curve["at_risk"].iloc[0] == len(data)


def test_logrank_matches_r_survdiff(reference):
    data, ref = reference
    result = survival.logrank(data["time"], data["cens"], data["horTh"])
    assert result["chisq"] == pytest.approx(ref["logrank"]["chisq"].iloc[0], rel=1e-6)
    assert result["p"] == pytest.approx(ref["logrank"]["p"].iloc[0], rel=1e-6)


def test_cox_matches_r_coxph(reference):
    data, ref = reference
    covariates = ["age", "tsize", "pnodes", "horth01"]
    rows, facts = survival.cox(data.rename(columns={"time": "survival_time", "cens": "survival_event"}), covariates)
    r = ref["cox"].set_index("covariate").loc[covariates]
    np.testing.assert_allclose(rows["coef"], r["coef"], rtol=1e-6)
    np.testing.assert_allclose(rows["se"], r["se"], rtol=1e-6)
    np.testing.assert_allclose(rows["p"], r["p"], rtol=1e-6)
    np.testing.assert_allclose(rows["hazard_ratio"], np.exp(r["coef"]), rtol=1e-6)
    assert facts["concordance"] == pytest.approx(r["concordance"].iloc[0], rel=1e-6)
    assert facts["n"] == len(data) and facts["events"] == int(data["cens"].sum())
