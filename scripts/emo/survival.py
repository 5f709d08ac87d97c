"""Survival by tumour heterogeneity (Levy-Jurgenson et al. 2020): Kaplan-Meier curves and
the log-rank test for high vs low HTI groups, and a Cox proportional-hazards model with
HTI as a continuous covariate plus clinical covariates. All fits use lifelines; the
tests check them against R's ``survival`` package.
"""

from __future__ import annotations

import logging
import math
from typing import Sequence

import numpy as np
import pandas as pd

from . import covariates as covariates_mod
from .errors import InputTableError

log = logging.getLogger("emo")

HIGH, LOW = "high", "low"


def hti_groups(hti: pd.Series, high_threshold: float = 0.5, low_threshold: float | None = None) -> pd.Series:
    """``high`` when HTI > high_threshold, ``low`` when HTI <= low_threshold (defaults to
    high_threshold, the paper's breast split); values in between get NaN (paper's lung
    split uses 0.7 / 0.3)."""
    low_threshold = high_threshold if low_threshold is None else low_threshold
    if low_threshold > high_threshold:
        raise ValueError("survival.low_threshold must not exceed survival.high_threshold")
    group = pd.Series(np.nan, index=hti.index, dtype=object)
    group[hti > high_threshold] = HIGH
    group[hti <= low_threshold] = LOW
    return group


def one_slide_per_patient(slides: pd.DataFrame) -> pd.DataFrame:
    """Keep, per patient, the first slide in sorted sample-name order (the paper used
    the DX1 slide; TCGA's DX1 sorts first)."""
    return (slides.sort_values(["patient", "sample"]).drop_duplicates("patient", keep="first")
            .reset_index(drop=True))


def prepare_covariates(data: pd.DataFrame, covariates: Sequence[str]) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Encode the requested clinical covariates (emo.covariates); drop those absent from the
    table, with no values, or constant among the analysed patients. Returns the data with
    encoded columns, the covariates kept and a list of 'name: reason' for the dropped ones."""
    data = data.copy()
    usable, dropped = covariates_mod.screen(data, list(covariates))
    for name, values in usable.items():
        data[name] = values
    return data, list(usable), dropped


def kaplan_meier(time: np.ndarray, event: np.ndarray, level: float = 0.95) -> pd.DataFrame:
    """KM estimate with lifelines' (log(-log), Greenwood) confidence interval at every
    distinct time: time, at_risk, events, censored, survival, ci_lower, ci_upper."""
    from lifelines import KaplanMeierFitter

    fitter = KaplanMeierFitter(alpha=1.0 - level).fit(time, event_observed=event)
    table = fitter.event_table
    ci = fitter.confidence_interval_survival_function_
    frame = pd.DataFrame({
        "time": fitter.survival_function_.index.to_numpy(dtype=float),
        "at_risk": table["at_risk"].to_numpy(),
        "events": table["observed"].to_numpy(),
        "censored": table["censored"].to_numpy(),
        "survival": fitter.survival_function_.iloc[:, 0].to_numpy(),
        "ci_lower": ci.iloc[:, 0].to_numpy(),
        "ci_upper": ci.iloc[:, 1].to_numpy(),
    })
    return frame


def logrank(time: np.ndarray, event: np.ndarray, group: np.ndarray) -> dict:
    """Two-group log-rank (Mantel) test: chi-square, df = 1, p."""
    from lifelines.statistics import logrank_test

    time, event, group = np.asarray(time, float), np.asarray(event, int), np.asarray(group)
    levels = sorted(set(group.tolist()))
    if len(levels) != 2:
        return {"chisq": math.nan, "df": 1, "p": math.nan}
    a, b = group == levels[0], group == levels[1]
    result = logrank_test(time[a], time[b], event_observed_A=event[a], event_observed_B=event[b])
    return {"chisq": float(result.test_statistic), "df": 1, "p": float(result.p_value)}


def cox(data: pd.DataFrame, covariates: Sequence[str], duration: str = "survival_time",
        event: str = "survival_event", level: float = 0.95) -> tuple[pd.DataFrame, dict]:
    """Cox PH (Efron ties, no penalty), complete cases. Returns per-covariate rows
    (coef, se, hazard_ratio, hr_lower, hr_upper, z, p) and model facts (n, events,
    concordance, log_likelihood)."""
    from lifelines import CoxPHFitter

    frame = data[[duration, event, *covariates]].dropna()
    fitter = CoxPHFitter(alpha=1.0 - level)
    fitter.fit(frame, duration_col=duration, event_col=event, fit_options={"precision": 1e-12, "max_steps": 200})
    summary = fitter.summary
    rows = pd.DataFrame({
        "covariate": list(covariates),
        "coef": summary["coef"].to_numpy(),
        "se": summary["se(coef)"].to_numpy(),
        "hazard_ratio": summary["exp(coef)"].to_numpy(),
        "hr_lower": summary[f"exp(coef) lower {round(level * 100)}%"].to_numpy(),
        "hr_upper": summary[f"exp(coef) upper {round(level * 100)}%"].to_numpy(),
        "z": summary["z"].to_numpy(),
        "p": summary["p"].to_numpy(),
    })
    facts = {"n": len(frame), "events": int(frame[event].sum()), "concordance": float(fitter.concordance_index_),
             "log_likelihood": float(fitter.log_likelihood_)}
    return rows, facts


SURVIVAL_CODING = ("survival_time: a number of months (>= 0); survival_event: 1 = event (death) observed, "
                   "0 = censored (alive at last follow-up); leave a cell empty when unknown")
# text codings seen in clinical exports, and the number each stands for
_EVENT_WORDS = {"dead": 1, "deceased": 1, "died": 1, "death": 1, "yes": 1, "true": 1, "event": 1,
                "alive": 0, "living": 0, "censored": 0, "no": 0, "false": 0}


def check_survival_columns(clinical: pd.DataFrame, where: str = "clinical table") -> None:
    """The survival columns exist and are coded as numbers: survival_time >= 0 and
    survival_event 0/1 (empty = unknown, that patient is left out). Text such as
    dead/alive would otherwise become missing and survival run on no patient; the error
    names the column, the offending values and the coding to use. ``where`` names the
    table (path and config key)."""
    for column in ("survival_time", "survival_event"):
        if column not in clinical.columns:
            raise InputTableError(f"{where}: column {column!r} is missing; survival analysis needs "
                                  "survival_time (months) and survival_event (0/1), or set survival.enabled: false")
    for column in ("survival_time", "survival_event"):
        raw = clinical[column]
        text = raw.astype("string").str.strip()
        given = raw.notna() & text.ne("")
        numeric = pd.to_numeric(text.where(given), errors="coerce")
        bad = given & numeric.isna()
        if column == "survival_time":
            bad |= numeric < 0
        else:
            bad |= numeric.notna() & ~numeric.isin([0, 1])
        if not bad.any():
            continue
        values = list(dict.fromkeys(text[bad].tolist()))
        shown = ", ".join(repr(v) for v in values[:6]) + (f" and {len(values) - 6} more" if len(values) > 6 else "")
        patients = clinical["patient"][bad].astype(str).tolist() if "patient" in clinical.columns else []
        who = f" (patients {', '.join(patients[:3])}{' ...' if len(patients) > 3 else ''})" if patients else ""
        hint = ""
        if column == "survival_event":
            mapped = {v: _EVENT_WORDS[v.lower()] for v in values if v.lower() in _EVENT_WORDS}
            if mapped:
                hint = "; recode " + ", ".join(f"{v!r} as {n}" for v, n in mapped.items())
        raise InputTableError(
            f"{where}, column {column!r}: {int(bad.sum())} value(s) are not in the accepted coding: {shown}{who}"
            f"{hint}. Accepted coding: {SURVIVAL_CODING}. Fix the column (or set survival.enabled: false)")


def analysis_set(hti_table: pd.DataFrame, clinical: pd.DataFrame, hti_column: str) -> pd.DataFrame:
    """Eligible slides (never used to train or validate any trait's classifiers), one per
    patient, joined with the clinical table; rows without survival data are dropped. The
    measure is returned in column ``hti`` whatever its source column."""
    check_survival_columns(clinical)
    if hti_column not in hti_table.columns:
        raise InputTableError(f"HTI table has no column {hti_column!r}; set survival.hti to 'hti' or 'hti_continuous'")
    eligible = hti_table[hti_table["survival_eligible"].astype(bool)]
    chosen = one_slide_per_patient(eligible)[["patient", "sample", hti_column]].rename(columns={hti_column: "hti"})
    clinical = clinical.copy()
    clinical["patient"] = clinical["patient"].astype(str)
    merged = chosen.merge(clinical, on="patient", how="left")
    merged["survival_time"] = pd.to_numeric(merged["survival_time"], errors="coerce")
    merged["survival_event"] = pd.to_numeric(merged["survival_event"], errors="coerce")
    merged = merged.dropna(subset=["hti", "survival_time", "survival_event"])
    return merged.sort_values("patient").reset_index(drop=True)


def at_risk_at(curve: pd.DataFrame, times: Sequence[float], n: int) -> list[int]:
    """Patients at risk at each of ``times`` from a Kaplan-Meier table (``at_risk`` at
    each event/censoring time counts those with time >= it; nobody leaves between rows)."""
    out = []
    for t in times:
        later = curve[curve["time"] >= t]
        out.append(n if t <= 0 else int(later["at_risk"].iloc[0]) if len(later) else 0)
    return out


def group_hazard_ratio(grouped: pd.DataFrame, level: float) -> dict | None:
    """Univariate Cox hazard ratio of the high- vs the low-HTI group, with its CI."""
    frame = grouped.assign(high=(grouped["group"] == HIGH).astype(float))
    if frame["high"].nunique() < 2 or frame["survival_event"].sum() == 0:
        return None
    rows, _ = cox(frame, ["high"], level=level)
    row = rows.iloc[0]
    return {"hr": float(row["hazard_ratio"]), "lower": float(row["hr_lower"]), "upper": float(row["hr_upper"]),
            "p": float(row["p"]), "level": level}


def plot_km(curves: dict[str, pd.DataFrame], p_value: float, path, title: str, hazard: dict | None = None,
            measure: str = "HTI") -> None:
    """Kaplan-Meier curves with CI bands, censoring ticks, numbers at risk under the axis
    and, when given, the high-vs-low hazard ratio with its CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {HIGH: "#1f77b4", LOW: "#ff7f0e"}
    fig, (ax, table) = plt.subplots(2, 1, figsize=(6.4, 5.6), gridspec_kw={"height_ratios": [4, 1]}, sharex=True)
    sizes = {}
    for name, curve in curves.items():
        if curve.empty:
            continue
        t = np.concatenate([[0.0], curve["time"].to_numpy()])
        s = np.concatenate([[1.0], curve["survival"].to_numpy()])
        lo = np.concatenate([[1.0], curve["ci_lower"].to_numpy()])
        hi = np.concatenate([[1.0], curve["ci_upper"].to_numpy()])
        sizes[name] = n = int(curve["at_risk"].iloc[0])
        ax.step(t, s, where="post", color=colours.get(name), label=f"{name} {measure} (n={n})")
        ax.fill_between(t, lo, hi, step="post", color=colours.get(name), alpha=0.2, linewidth=0)
        censored = curve[curve["censored"] > 0]
        ax.plot(censored["time"], censored["survival"], linestyle="none", marker="|", markersize=8,
                color=colours.get(name))
    ax.set_ylabel("survival probability")
    ax.set_ylim(0, 1.02)
    lines = [title]
    if p_value == p_value:
        lines.append(f"log-rank p = {p_value:.3g}")
    if hazard is not None:
        lines[-1] += (f"; HR high vs low {hazard['hr']:.2f} "
                      f"({round(hazard['level'] * 100)}% CI {hazard['lower']:.2f}-{hazard['upper']:.2f})")
    ax.set_title("\n".join(lines), fontsize=9)
    ax.legend(loc="lower left", fontsize=8, title="| censored", title_fontsize=7)
    ticks = [t for t in ax.get_xticks() if t >= 0 and t <= ax.get_xlim()[1]]
    table.set_xlim(ax.get_xlim())
    table.set_ylim(-0.5, len(sizes) - 0.5)
    for row, (name, n) in enumerate(sizes.items()):
        for t, count in zip(ticks, at_risk_at(curves[name], ticks, n)):
            table.text(t, row, str(count), ha="center", va="center", fontsize=8, color=colours.get(name))
    table.set_yticks(range(len(sizes)), list(sizes), fontsize=8)
    table.set_title("number at risk", fontsize=8, loc="left")
    table.tick_params(axis="y", length=0)
    for side in ("top", "right", "left"):
        table.spines[side].set_visible(False)
    table.set_xlabel("time (months)")
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


ENTROPY = "composition_entropy"


def entropy_measure_table(composition: pd.DataFrame, training_samples: Sequence[str]) -> pd.DataFrame:
    """The tumour-regions stage's per-slide composition entropy as a survival measure table
    (columns sample, patient, composition_entropy, survival_eligible): slides whose
    annotations trained the composition classifier are not eligible (their classes were
    seen in training), nor slides without a single classified tile."""
    missing = {"sample", "patient", ENTROPY, "n_tiles"} - set(composition.columns)
    if missing:
        raise InputTableError(f"composition table lacks column(s) {sorted(missing)}; it is written by rule "
                              "tumour_tiles with tumour_regions.composition: true")
    table = composition[["sample", "patient", ENTROPY]].copy()
    table["sample"] = table["sample"].astype(str)
    table["patient"] = table["patient"].astype(str)
    table["survival_eligible"] = ~table["sample"].isin(set(training_samples)) & (composition["n_tiles"] > 0)
    return table


def entropy_settings(cfg: dict, values: pd.Series) -> dict:
    """The survival settings for composition entropy: its column, and the high/low split at
    ``survival.entropy_threshold`` (null: the analysed patients' median)."""
    threshold = cfg.get("entropy_threshold")
    threshold = float(np.median(values)) if threshold is None and len(values) else threshold
    return {**cfg, "hti": ENTROPY, "high_threshold": float("nan") if threshold is None else float(threshold),
            "low_threshold": None}


def run_survival(hti_table: pd.DataFrame, clinical: pd.DataFrame, cfg: dict, out: dict[str, str],
                 code_version: str, inputs: Sequence[str]) -> None:
    """Write patients, km, logrank and cox tables and the KM figure.

    ``out`` keys: patients, km, logrank, cox, figure. ``cfg["hti"]`` names the measure's
    column in ``hti_table`` (HTI, continuous HTI or composition entropy); with composition
    entropy the high/low split is ``survival.entropy_threshold`` (null: the median).
    """
    from .io import write_tsv
    from .provenance import write_sidecar

    level = float(cfg.get("ci_level", 0.95))
    hti_column = cfg.get("hti", "hti")
    data = analysis_set(hti_table, clinical, hti_column)
    if hti_column == ENTROPY:
        cfg = entropy_settings(cfg, data["hti"])
    data["group"] = hti_groups(data["hti"], float(cfg.get("high_threshold", 0.5)),
                               cfg.get("low_threshold"))
    log.info("survival: %d eligible patients with survival data; groups %s", len(data),
             data["group"].value_counts().to_dict())
    grouped = data.dropna(subset=["group"])
    curves, km_rows = {}, []
    for name in (HIGH, LOW):
        part = grouped[grouped["group"] == name]
        curves[name] = (kaplan_meier(part["survival_time"].to_numpy(), part["survival_event"].to_numpy(), level)
                        if len(part) else pd.DataFrame(columns=["time", "at_risk", "events", "censored", "survival",
                                                                "ci_lower", "ci_upper"]))
        km_rows.append(curves[name].assign(group=name))
    km_columns = ["group", "time", "at_risk", "events", "censored", "survival", "ci_lower", "ci_upper"]
    km_rows = [frame for frame in km_rows if len(frame)]
    km = pd.concat(km_rows, ignore_index=True)[km_columns] if km_rows else pd.DataFrame(columns=km_columns)
    test = logrank(grouped["survival_time"], grouped["survival_event"], grouped["group"])
    logrank_table = pd.DataFrame([{
        "hti": hti_column, "high_threshold": float(cfg.get("high_threshold", 0.5)),
        "low_threshold": float(cfg["low_threshold"]) if cfg.get("low_threshold") is not None
        else float(cfg.get("high_threshold", 0.5)),
        "n_high": int((grouped["group"] == HIGH).sum()), "n_low": int((grouped["group"] == LOW).sum()),
        "events_high": int(grouped.loc[grouped["group"] == HIGH, "survival_event"].sum()),
        "events_low": int(grouped.loc[grouped["group"] == LOW, "survival_event"].sum()),
        **test}])
    data_cov, kept, dropped = prepare_covariates(data, cfg.get("covariates", []))
    for reason in dropped:
        log.warning("survival: covariate dropped (%s)", reason)
    variables = ["hti", *kept]
    if len(data_cov) >= 2 and data_cov["survival_event"].sum() > 0 and data_cov["hti"].nunique() > 1:
        rows, facts = cox(data_cov, variables, level=level)
    else:
        rows = pd.DataFrame({"covariate": variables})
        for column in ("coef", "se", "hazard_ratio", "hr_lower", "hr_upper", "z", "p"):
            rows[column] = math.nan
        facts = {"n": len(data_cov), "events": int(data_cov["survival_event"].sum()), "concordance": math.nan,
                 "log_likelihood": math.nan}
    for key, value in facts.items():
        rows[key] = value
    rows["dropped_covariates"] = "; ".join(dropped)
    patients = data_cov[["patient", "sample", "hti", "group", "survival_time", "survival_event", *kept]]
    if hti_column == ENTROPY:  # name the measure for what it is (the HTI tables keep `hti`)
        patients = patients.rename(columns={"hti": ENTROPY})
        rows["covariate"] = rows["covariate"].replace({"hti": ENTROPY})
    for key, table in (("patients", patients), ("km", km), ("logrank", logrank_table), ("cox", rows)):
        write_tsv(table, out[key])
        write_sidecar(out[key], code_version, cfg, inputs)
    label = "entropy" if hti_column == ENTROPY else "HTI"
    plot_km(curves, test["p"], out["figure"], f"Survival by {hti_column} ({len(grouped)} patients)",
            group_hazard_ratio(grouped, level), label)
