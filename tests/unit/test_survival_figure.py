"""The KM figure's numbers at risk and hazard ratio, checked against direct computations
(lifelines' GBSG2 breast-cancer data)."""

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from lifelines.datasets import load_gbsg2
from PIL import Image

from emo import survival


@pytest.fixture(scope="module")
def gbsg2():
    data = load_gbsg2()
    return pd.DataFrame({"survival_time": data["time"].astype(float) / 30.44, "survival_event": data["cens"],
                         "group": np.where(data["horTh"] == "yes", survival.HIGH, survival.LOW)})


def test_numbers_at_risk_count_patients_still_followed(gbsg2):
    curve = survival.kaplan_meier(gbsg2["survival_time"].to_numpy(), gbsg2["survival_event"].to_numpy())
    times = [0.0, 3.3, 12.0, 24.5, 60.0, 1000.0]
    expected = [int((gbsg2["survival_time"] >= t).sum()) for t in times]
    assert survival.at_risk_at(curve, times, len(gbsg2)) == expected
    assert expected[0] == len(gbsg2) and expected[-1] == 0


def test_group_hazard_ratio_is_lifelines_univariate_cox(gbsg2):
    hazard = survival.group_hazard_ratio(gbsg2, 0.95)
    frame = gbsg2.assign(high=(gbsg2["group"] == survival.HIGH).astype(float)).drop(columns="group")
    reference = CoxPHFitter().fit(frame, "survival_time", "survival_event").summary.loc["high"]
    assert hazard["hr"] == pytest.approx(reference["exp(coef)"], rel=1e-6)
    assert hazard["lower"] == pytest.approx(reference["exp(coef) lower 95%"], rel=1e-6)
    assert hazard["upper"] == pytest.approx(reference["exp(coef) upper 95%"], rel=1e-6)
    assert hazard["hr"] < 1   # hormone therapy protects in GBSG2
    assert survival.group_hazard_ratio(gbsg2.assign(group=survival.LOW), 0.95) is None


def test_km_figure_draws(gbsg2, tmp_path):
    curves = {name: survival.kaplan_meier(part["survival_time"].to_numpy(), part["survival_event"].to_numpy())
              for name, part in gbsg2.groupby("group")}
    path = tmp_path / "km.png"
    survival.plot_km(curves, 0.003, path, "GBSG2 by hormone therapy", survival.group_hazard_ratio(gbsg2, 0.95))
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape[0] > 400 and (image < 128).any()
