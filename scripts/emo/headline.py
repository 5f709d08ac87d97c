"""Headline numbers of a run for the landing page of ``snakemake --report``.

Rule ``headline_numbers`` reads the result tables of the stages this run's config
switches on (tiling QC, model comparison, spatial validation, survival, clinical
classifiers) and writes

* ``results/report/headline.tsv`` (+ provenance sidecar): one row per number, with the
  table it was read from; a stage switched off gets one ``not_run`` row naming the
  config key;
* ``results/report/landing.rst``: the report's static landing text
  (``workflow/report/workflow.rst``) followed by those numbers as a table. The
  Snakefile's ``report:`` points at it once it exists (:func:`landing_page`), so the
  landing page of a report built after a run shows that run's numbers.

Nothing here recomputes a statistic: every number is a cell of a result table.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import pandas as pd

from .io import atomic_write_text, write_tsv
from .provenance import write_sidecar

HEADLINE_DIR = "results/report"
HEADLINE_TABLE = f"{HEADLINE_DIR}/headline.tsv"
LANDING_RST = f"{HEADLINE_DIR}/landing.rst"
HEADLINE_COLUMNS = ["section", "measure", "status", "value", "text", "source"]

SECTION_TITLES = {
    "tiling": "Tiling",
    "models": "Gene expression models (validation)",
    "spatial": "Spatial validation (mixed-effects models)",
    "survival": "Heterogeneity and survival",
    "clinical_classifiers": "Clinical classifiers",
    "fusion": "Image + expression fusion",
}
MODEL_NAMES = {
    "emo": "emo per-gene heads",
    "ridge": "ridge baseline (encoder features)",
    "colour_texture": "ridge baseline (colour/texture)",
    "he2rna": "HE2RNA",
    "attention_mil": "attention MIL",
}
# Evaluation sets of the clinical classifiers, most independent first: the headline shows
# the first one a label has.
CLASSIFIER_SETS = ("test", "external", "heldout", "validation")


def headline_sources(config: Mapping, encoder: str, clinical_classifiers_run: bool, survival_entropy: bool = False,
                     fusion_run: bool = False) -> tuple[dict[str, str], dict[str, str]]:
    """The tables the headline reads ({name: path}, those of the stages this config runs)
    and, for each stage it does not run, the reason ({section: text naming the key})."""
    inputs = {"tiling": "results/tiles/qc/summary.tsv",
              "models": f"results/statistics/{encoder}/models/comparison.tsv"}
    not_run: dict[str, str] = {}
    if config["spatial"]["enabled"]:
        inputs["spatial"] = f"results/spatial/{encoder}/probes.tsv"
        if config["spatial"].get("ki67"):
            inputs["spatial_ki67"] = f"results/spatial/{encoder}/ki67.tsv"
    else:
        not_run["spatial"] = "not run (spatial.enabled: false)"
    if not config["heterogeneity"]["enabled"]:
        not_run["survival"] = "not run (heterogeneity.enabled: false)"
    elif not config["survival"]["enabled"]:
        not_run["survival"] = "not run (survival.enabled: false)"
    else:
        inputs["cox"] = f"results/heterogeneity/{encoder}/survival/cox.tsv"
        inputs["logrank"] = f"results/heterogeneity/{encoder}/survival/logrank.tsv"
    if survival_entropy:
        inputs["entropy_cox"] = f"results/heterogeneity/{encoder}/survival/composition_entropy/cox.tsv"
        inputs["entropy_logrank"] = f"results/heterogeneity/{encoder}/survival/composition_entropy/logrank.tsv"
    if clinical_classifiers_run:
        inputs["classifiers"] = f"results/clinical_classifiers/{encoder}/metrics.tsv"
    elif not config["clinical_classifiers"]["enabled"]:
        not_run["clinical_classifiers"] = "not run (clinical_classifiers.enabled: false)"
    else:
        not_run["clinical_classifiers"] = ("not run (no clinical table with a label column: "
                                           "config keys clinical, clinical_classifiers.labels)")
    if fusion_run:
        inputs["fusion"] = f"results/statistics/{encoder}/fusion/summary.tsv"
    elif not config["fusion"]["enabled"]:
        not_run["fusion"] = "not run (fusion.enabled: false)"
    else:
        not_run["fusion"] = "not run (no clinical table: config key clinical)"
    return inputs, not_run


def _read(path: str) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", keep_default_na=True, na_values=[""])


def _num(value, digits: int = 2) -> str:
    """A number for the landing text: NaN reads "n/a", small p-values in e-notation."""
    value = float(value)
    if math.isnan(value):
        return "n/a"
    return f"{value:.{digits}f}"


def _p(value) -> str:
    value = float(value)
    return "n/a" if math.isnan(value) else f"{value:.2g}"


def _row(section, measure, value, text, source, status="ok") -> dict:
    return {"section": section, "measure": measure, "status": status,
            "value": float(value) if value is not None else math.nan, "text": text, "source": source}


def tiling_rows(path: str) -> list[dict]:
    summary = _read(path)
    accepted = summary["accepted"].astype(int)
    return [
        _row("tiling", "slides", len(summary), f"{len(summary)} slides", path),
        _row("tiling", "accepted_tiles", int(accepted.sum()),
             f"{int(accepted.sum())} accepted tiles (median {int(accepted.median()) if len(accepted) else 0} "
             f"per slide; {int((accepted == 0).sum())} slides without any)", path),
    ]


def model_rows(path: str) -> list[dict]:
    rows = []
    for r in _read(path).to_dict("records"):
        name = MODEL_NAMES.get(r["model"], r["model"])
        n_bh = int(r["validation_n_bh_below_0.05"])
        tested, validated = int(r["test_n_tested"]), int(r["test_n_validated"])
        text = (f"{name}: {n_bh} of {int(r['n_genes'])} genes at validation BH < 0.05, median Spearman "
                f"{_num(r['validation_median_spearman'])}; {int(r['n_selected'])} selected, "
                f"{validated} of {tested} replicated in the internal test set")
        rows.append(_row("models", f"{r['model']}:validation_n_bh_below_0.05", n_bh, text, path))
    return rows


def spatial_rows(probes_path: str, fdr: float, ki67_path: str | None = None) -> list[dict]:
    probes = _read(probes_path)
    fitted = probes[probes["padj"].notna()]
    significant = fitted[fitted["padj"] < fdr]
    text = f"{len(significant)} of {len(fitted)} fitted probes significant (likelihood-ratio test, BH < {fdr:g})"
    if len(significant):
        best = significant.sort_values(["padj", "probe"]).iloc[0]
        text += f"; strongest {best['probe']}: coefficient {_num(best['coefficient'])}, padj {_p(best['padj'])}"
    if len(probes) > len(fitted):
        text += f"; {len(probes) - len(fitted)} not fitted"
    rows = [_row("spatial", "probes_significant", len(significant), text, probes_path)]
    if ki67_path:
        ki67 = _read(ki67_path)
        if len(ki67):
            k = ki67.iloc[0]
            rows.append(_row("spatial", "ki67_coefficient", k["coefficient"],
                             f"proliferation score vs ROI Ki67: coefficient {_num(k['coefficient'])} "
                             f"(CI {_num(k['ci_low'])} to {_num(k['ci_high'])}), padj {_p(k['padj'])}", ki67_path))
    return rows


def survival_rows(cox_path: str, logrank_path: str, covariate: str = "hti", label: str = "HTI",
                  measures: tuple[str, str] = ("hti_hazard_ratio", "logrank_p")) -> list[dict]:
    """Cox hazard ratio of the measure and the log-rank p of its high/low groups (the HTI,
    or with ``covariate="composition_entropy"`` the composition entropy)."""
    cox = _read(cox_path)
    hti = cox[cox["covariate"] == covariate]
    rows = []
    if len(hti):
        h = hti.iloc[0]
        others = [c for c in cox["covariate"] if c != covariate]
        adjusted = f", adjusted for {', '.join(others)}" if others else ""
        rows.append(_row("survival", measures[0], h["hazard_ratio"],
                         f"Cox hazard ratio per unit {label} {_num(h['hazard_ratio'])} (CI {_num(h['hr_lower'])} to "
                         f"{_num(h['hr_upper'])}), p {_p(h['p'])}; {int(h['n'])} patients, {int(h['events'])} events"
                         f"{adjusted}", cox_path))
    logrank = _read(logrank_path)
    if len(logrank):
        g = logrank.iloc[0]
        rows.append(_row("survival", measures[1], g["p"],
                         f"log-rank {label} high vs low: p {_p(g['p'])} (n {int(g['n_high'])} / {int(g['n_low'])}, "
                         f"events {int(g['events_high'])} / {int(g['events_low'])})", logrank_path))
    return rows


def classifier_rows(path: str) -> list[dict]:
    metrics = _read(path)
    metrics = metrics[metrics["level"] == "patient"]
    rows = []
    for label in sorted(metrics["label"].unique()):
        m = metrics[metrics["label"] == label]
        chosen = next((s for s in CLASSIFIER_SETS if (m["set"] == s).any()), None)
        if chosen is None:
            continue
        m = m[m["set"] == chosen]
        binary = m[m["metric"] == "auc"]
        if len(binary):
            r, what, measure = binary.iloc[0], "AUC", "auc"
        else:
            top1 = m[m["metric"] == "top1_accuracy"]
            if not len(top1):
                continue
            r, what, measure = top1.iloc[0], "top-1 accuracy", "top1_accuracy"
        text = (f"{label}: {what} {_num(r['value'])} (CI {_num(r['ci_lower'])} to {_num(r['ci_upper'])}), "
                f"{chosen} patients, n {int(r['n'])}")
        rows.append(_row("clinical_classifiers", f"{label}:{chosen}:{measure}", r["value"], text, path))
    return rows


def fusion_rows(path: str) -> list[dict]:
    """Per target: the best fusion model beside the best unimodal one (PR-AUC, cross-validation)."""
    summary = _read(path)
    summary = summary[(summary["metric"] == "pr_auc") & (summary["set"] == "cv")]
    rows = []
    for r in summary.to_dict("records"):
        text = (f"{r['target']}: PR-AUC best fusion ({r['best_fusion']}) {_num(r['best_fusion_value'])} vs best "
                f"unimodal ({r['best_unimodal']}) {_num(r['best_unimodal_value'])}; image only "
                f"{_num(r['image_value'])} (cross-validation)")
        rows.append(_row("fusion", f"{r['target']}:fusion_minus_unimodal_pr_auc", r["difference"], text, path))
    return rows


def headline_table(inputs: Mapping[str, str], not_run: Mapping[str, str], spatial_fdr: float) -> pd.DataFrame:
    """Every headline number, in section order; a switched-off stage is one ``not_run`` row."""
    rows = tiling_rows(inputs["tiling"]) + model_rows(inputs["models"])
    if "spatial" in inputs:
        rows += spatial_rows(inputs["spatial"], spatial_fdr, inputs.get("spatial_ki67"))
    if "cox" in inputs:
        rows += survival_rows(inputs["cox"], inputs["logrank"])
    if "entropy_cox" in inputs:
        rows += survival_rows(inputs["entropy_cox"], inputs["entropy_logrank"], "composition_entropy",
                              "composition entropy",
                              ("composition_entropy_hazard_ratio", "composition_entropy_logrank_p"))
    if "classifiers" in inputs:
        rows += classifier_rows(inputs["classifiers"])
    if "fusion" in inputs:
        rows += fusion_rows(inputs["fusion"])
    for section, reason in not_run.items():
        rows.append(_row(section, "stage", None, reason, "config", status="not_run"))
    order = {name: i for i, name in enumerate(SECTION_TITLES)}
    table = pd.DataFrame(rows, columns=HEADLINE_COLUMNS)
    return table.sort_values("section", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def landing_rst(static_text: str, table: pd.DataFrame) -> str:
    """The static landing text, then the headline numbers as an rst table, one row per
    section. Wrapped in Jinja ``raw`` (Snakemake renders the landing page through Jinja)
    so a name in a table can never be read as a template."""
    lines = [static_text.rstrip(), "", "{% raw %}", "", ".. rubric:: Headline numbers of this run", "",
             "Read from the result tables (each number's table: ``results/report/headline.tsv``, column "
             "``source``); *not run* marks a stage this run's config switches off.", "",
             ".. list-table::", "   :header-rows: 1", "   :widths: 25 75", "", "   * - Stage", "     - Result"]
    for section, rows in table.groupby("section", sort=False):
        lines.append(f"   * - {SECTION_TITLES.get(section, section)}")
        texts = [str(t).replace("\n", " ") for t in rows["text"]]
        if len(texts) == 1:
            lines.append(f"     - {texts[0]}")
        else:
            lines.append(f"     - * {texts[0]}")
            lines += [f"       * {t}" for t in texts[1:]]
    lines += ["", "{% endraw %}", ""]
    return "\n".join(lines)


def write_headline(inputs: Mapping[str, str], not_run: Mapping[str, str], static_text: str, spatial_fdr: float,
                   out_table: str, out_landing: str, code_version: str, params) -> pd.DataFrame:
    """Rule headline_numbers: the table (+ sidecar) and the landing page text
    (``static_text``, workflow/report/workflow.rst's, followed by the numbers)."""
    table = headline_table(inputs, not_run, spatial_fdr)
    write_tsv(table, out_table)
    write_sidecar(out_table, code_version, params, list(inputs.values()))
    atomic_write_text(out_landing, landing_rst(static_text, table))
    return table


def landing_page(static_rst: str | Path, generated: str | Path = LANDING_RST) -> str:
    """The report's landing text: the run's generated page (static text + headline
    numbers) once rule headline_numbers has written it, else the static text. An
    absolute path, as Snakemake's ``report:`` resolves a relative one against the
    Snakefile's folder, not the working directory."""
    generated = Path(generated).resolve()
    return str(generated if generated.is_file() else Path(static_rst).resolve())
