"""Incremental reruns: what ``snakemake -n`` schedules after a realistic change to a
finished small-demo workspace (a copy of the session's run, ``small_demo_run``).

For sheet and table edits the workspace is made "realistic" first: the generated demo
tables and slides become plain user inputs (``demo.enabled: false``), so the demo
generator cannot confound (it would also refuse a sheet that differs from its design).
Rerun triggers are Snakemake's defaults (mtime, params, input, software-env, code),
spelled out in profiles/default; library code reaches the params through
``code_version``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from slurm_fixtures import (PER_SLIDE_RULES, SMALL_CONFIG, copy_workspace, describe, dry_run_jobs,
                            finished_demo, jobs_by_rule, repo_copy, static_config)

pytestmark = pytest.mark.slow

TRAINING_RULES = ("train_gene_chunk", "train_ridge", "slide_model_train")


@pytest.fixture(scope="session")
def demo_base(request, tmp_path_factory):
    """A copy of the finished small demo (outputs, metadata, mtimes)."""
    return copy_workspace(finished_demo(request), tmp_path_factory.mktemp("incremental") / "base")


@pytest.fixture
def workspace(demo_base, tmp_path):
    """A fresh copy with the small config unchanged (the demo tables are up to date, so
    the demo generator does not rerun)."""
    workdir = copy_workspace(demo_base, tmp_path / "ws")
    return workdir, workdir / SMALL_CONFIG


@pytest.fixture
def static_workspace(workspace):
    """As ``workspace``, with the demo generator switched off so the sample sheet and
    tables can be edited like a user's (heterogeneity.traits spelled out: its params
    change once, so heterogeneity jobs may rerun; the tests allow that)."""
    workdir, _ = workspace
    return workdir, static_config(workdir)


def _config(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _sheet(workdir: Path, config: dict) -> tuple[Path, pd.DataFrame]:
    path = workdir / config["samples"]
    return path, pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment="#")


def _copy_slide(workdir: Path, slide: str, new_sample: str) -> str:
    """Copy a slide file (or slide folder) under a new name next to it; returns the sheet value."""
    src = Path(slide) if Path(slide).is_absolute() else workdir / slide
    dest = src.with_name(new_sample + "".join(src.suffixes))
    (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest)
    return str(dest) if Path(slide).is_absolute() else str(dest.relative_to(workdir))


def _add_slide(workdir: Path, config: dict, template_sample: str, new_sample: str, **overrides) -> None:
    path, sheet = _sheet(workdir, config)
    row = sheet[sheet["sample"] == template_sample].iloc[0].copy()
    row["sample"] = new_sample
    row["slide"] = _copy_slide(workdir, row["slide"], new_sample)
    for key, value in overrides.items():
        if key not in sheet.columns:
            sheet[key] = ""
            row[key] = ""
        row[key] = value
    sheet = pd.concat([sheet, row.to_frame().T], ignore_index=True)
    sheet.to_csv(path, sep="\t", index=False)


def _samples_of_role(config: dict, sheet: pd.DataFrame, role: str) -> list[str]:
    cohorts = [c for c, spec in config["cohorts"].items() if spec["role"] == role]
    return sorted(sheet.loc[sheet["cohort"].isin(cohorts), "sample"])


def _assert_per_slide_only(jobs, sample: str, rules=PER_SLIDE_RULES) -> None:
    by_rule = jobs_by_rule(jobs)
    for rule in rules:
        got = sorted(j.sample for j in by_rule.get(rule, []))
        assert got == [sample], f"{rule}: expected only {sample}, got {got}\n{describe(jobs)}"


def test_finished_copy_is_up_to_date(workspace):
    workdir, config = workspace
    jobs = dry_run_jobs(workdir, config)
    assert [j for j in jobs if not j.local] == [], f"a copied, finished workspace reruns:\n{describe(jobs)}"


def test_new_external_slide_runs_only_its_jobs(static_workspace):
    workdir, config_path = static_workspace
    config = _config(config_path)
    _, sheet = _sheet(workdir, config)
    template = _samples_of_role(config, sheet, "external")[0]
    _add_slide(workdir, config, template, "NEWEXT-1")
    jobs = dry_run_jobs(workdir, config_path)
    _assert_per_slide_only(jobs, "NEWEXT-1")
    rules = set(jobs_by_rule(jobs))
    assert not rules & set(TRAINING_RULES), f"an external slide retrains:\n{describe(jobs)}"
    assert "patient_predictions" in rules, describe(jobs)
    assert not {"training_expression"} & rules, describe(jobs)


def test_new_training_patient_retrains_without_retiling_others(static_workspace):
    workdir, config_path = static_workspace
    config = _config(config_path)
    _, sheet = _sheet(workdir, config)
    reference = next(c for c, spec in config["cohorts"].items() if spec.get("reference"))
    template = sorted(sheet.loc[sheet["cohort"] == reference, "sample"])[0]
    template_patient = sheet.loc[sheet["sample"] == template, "patient"].iloc[0]
    new_patient = "NEWTRAIN-P1"
    # expression: one more patient column (a copy of the template patient's values)
    expr_path = workdir / config["cohorts"][reference]["expression"]
    sep = "," if expr_path.suffix == ".csv" else "\t"
    expr = pd.read_csv(expr_path, sep=sep)
    expr[new_patient] = expr[template_patient]
    expr.to_csv(expr_path, sep=sep, index=False)
    if config.get("clinical") and (workdir / config["clinical"]).is_file():
        clinical_path = workdir / config["clinical"]
        clinical = pd.read_csv(clinical_path, sep="\t", dtype=str, keep_default_na=False)
        row = clinical[clinical["patient"] == template_patient].iloc[0].copy()
        row["patient"] = new_patient
        pd.concat([clinical, row.to_frame().T]).to_csv(clinical_path, sep="\t", index=False)
    _add_slide(workdir, config, template, "NEWTRAIN-1", patient=new_patient, split="train")
    jobs = dry_run_jobs(workdir, config_path)
    _assert_per_slide_only(jobs, "NEWTRAIN-1", rules=("tile_slide", "extract_features"))
    assert "train_gene_chunk" in jobs_by_rule(jobs), f"a new training patient does not retrain:\n{describe(jobs)}"


def test_tiling_parameter_reruns_tiling_onward(workspace):
    workdir, config_path = workspace
    config = _config(config_path)
    config["tiling"]["min_sharpness"] = float(config["tiling"].get("min_sharpness", 20.0)) + 1.0
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    _, sheet = _sheet(workdir, config)
    jobs = dry_run_jobs(workdir, config_path)
    by_rule = jobs_by_rule(jobs)
    for rule in ("tile_slide", "extract_features"):
        assert sorted(j.sample for j in by_rule.get(rule, [])) == sorted(sheet["sample"]), (rule, describe(jobs))
    assert any("params" in j.reason.lower() for j in by_rule["tile_slide"]), describe(by_rule["tile_slide"])


def test_statistics_threshold_reruns_only_statistics(workspace):
    workdir, config_path = workspace
    config = _config(config_path)
    selection = config.setdefault("statistics", {}).setdefault("selection", {})
    selection["min_r2"] = float(selection.get("min_r2", 0.2)) / 2
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    # `all` only collects targets (a localrule running no code), so it is not work.
    jobs = [j for j in dry_run_jobs(workdir, config_path) if not j.local and j.rule != "all"]
    assert jobs, "changing statistics.selection.min_r2 reruns nothing"
    # model_comparison: the heads' statistics on every model's predictions, beside the heads';
    # pathway enrichment ranks genes by validation.tsv; the report's headline numbers read
    # comparison.tsv: all downstream of the statistics by design
    others = [j for j in jobs if not j.rule.startswith(("gene_statistics", "model_comparison"))
              and j.rule not in ("pathway_enrichment", "headline_numbers")]
    assert not others, f"a statistics threshold reruns non-statistics jobs:\n{describe(others)}"


@pytest.mark.parametrize("module, rule, untouched", [
    ("stats/core.py", "gene_statistics_validation", ("tile_slide", "extract_features", "train_gene_chunk")),
    # tiles are upstream of everything but the expression tables and splits
    ("tiling.py", "tile_slide", ("training_expression", "prepare_expression", "patient_splits")),
])
def test_library_change_reruns_rules_that_import_it(workspace, tmp_path, module, rule, untouched):
    workdir, config_path = workspace
    snakefile = repo_copy(tmp_path / "code")
    before = [j for j in dry_run_jobs(workdir, config_path, snakefile=snakefile) if not j.local]
    assert before == [], f"the unchanged code copy already reruns:\n{describe(before)}"
    source = tmp_path / "code" / "scripts" / "emo" / module
    source.write_text(source.read_text() + "\n# a library edit\n")
    jobs = dry_run_jobs(workdir, config_path, snakefile=snakefile)
    by_rule = jobs_by_rule(jobs)
    assert rule in by_rule, f"editing emo/{module} does not rerun {rule}:\n{describe(jobs)}"
    assert any("param" in j.reason.lower() for j in by_rule[rule]), describe(by_rule[rule])
    assert not set(untouched) & set(by_rule), f"editing emo/{module} reruns unrelated rules:\n{describe(jobs)}"


def _work(jobs):
    """Jobs that run code: `all` only collects targets (a localrule)."""
    return [j for j in jobs if not j.local and j.rule != "all"]


def _changed_params(jobs) -> set[str]:
    """Rules scheduled because their own params (settings or code version) changed, as
    opposed to jobs downstream of them (reason: updated input files)."""
    return {j.rule for j in jobs if "param" in j.reason.lower()}


def test_spatial_setting_reruns_exactly_the_rules_that_use_it(workspace):
    """spatial.fdr reaches the spatial models and figures through their params; it used to
    be read from the config inside the scripts, so editing it reran nothing."""
    workdir, config_path = workspace
    config = _config(config_path)
    config["spatial"]["fdr"] = float(config["spatial"].get("fdr", 0.05)) / 2
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    jobs = _work(dry_run_jobs(workdir, config_path))
    # headline_numbers counts the probes significant at spatial.fdr for the report
    assert _changed_params(jobs) == {"spatial_models", "spatial_figures", "headline_numbers"}, describe(jobs)
    # downstream of the models' table only (the overlays draw it); ROIs and their
    # predictions are upstream and stay
    others = [j for j in jobs if j.rule not in ("spatial_models", "spatial_figures", "spatial_overlay",
                                                "headline_numbers")]
    assert not others, f"spatial.fdr reruns rules that do not use it:\n{describe(others)}"


@pytest.mark.parametrize("module, by_params, scheduled", [
    # covariates.py: the ER+/ER- models and both survival models (HTI, composition entropy)
    # adjust for clinical covariates
    # (the report's headline numbers read the survival tables)
    ("covariates.py", {"gene_statistics_er_models", "heterogeneity_survival", "composition_entropy_survival"},
     {"gene_statistics_er_models", "heterogeneity_survival", "composition_entropy_survival", "headline_numbers"}),
    # lme.py is imported by the spatial library, so every spatial rule's script reaches it.
    # spatial_rois is a checkpoint: until it has rerun, a dry run cannot list the per-slide
    # ROI jobs and shows the rules after it as downstream of it, not by their own params.
    ("lme.py", {"spatial_rois"}, {"spatial_rois", "spatial_models", "spatial_figures", "headline_numbers"}),
])
def test_library_change_reruns_exactly_its_importers(workspace, tmp_path, module, by_params, scheduled):
    """The code version of each rule is its script's import closure: an edit reruns the
    rules whose script reaches the module, by params, and no other rule."""
    workdir, config_path = workspace
    snakefile = repo_copy(tmp_path / "code")
    source = tmp_path / "code" / "scripts" / "emo" / module
    source.write_text(source.read_text() + "\n# a library edit\n")
    jobs = _work(dry_run_jobs(workdir, config_path, snakefile=snakefile))
    assert _changed_params(jobs) == by_params, f"editing emo/{module}:\n{describe(jobs)}"
    assert {j.rule for j in jobs} == scheduled, f"editing emo/{module}:\n{describe(jobs)}"
