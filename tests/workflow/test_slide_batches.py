"""config ``slide_batches``: the per-slide stages run several slides per job.

Batching must change only how work is packed into jobs, never a result: the batched
tile, feature and prediction stores are compared with the per-slide ones of the
session's finished small demo (``small_demo_run``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from emo.errors import ConfigError
from emo.sheets import load_sample_sheet, slide_batches
from slurm_fixtures import SMALL_CONFIG, copy_workspace, describe, dry_run_jobs, finished_demo, output_difference, \
    parse_jobs, snakemake, static_config

ENCODER = "efficientnet_lite0"
N_BATCHES = 5


def test_batches_cover_every_sample_once_and_are_stable_under_growth():
    samples = [f"P{i:03d}-A" for i in range(200)]
    batches = slide_batches(samples, 8)
    flat = [s for members in batches.values() for s in members]
    assert sorted(flat) == sorted(samples) and len(flat) == len(set(flat))
    assert len(batches) == 8 and all(members == sorted(members) for members in batches.values())
    assert max(map(len, batches.values())) < 2.5 * len(samples) / 8  # hash spreads the slides
    grown = slide_batches(samples + [f"NEW{i:02d}-A" for i in range(30)], 8)
    where = {s: b for b, members in grown.items() for s in members}
    assert all(where[s] == b for b, members in batches.items() for s in members), "an existing slide moved"
    groups = {s: "train" if i % 3 == 0 else "eval" for i, s in enumerate(samples)}
    grouped = slide_batches(samples, 8, groups=groups)
    assert all(b.rstrip("0123456789") == groups[s] for b, members in grouped.items() for s in members)
    assert sum(map(len, grouped.values())) == len(samples) and len(grouped) == 16
    assert slide_batches(samples, 0) == {}
    assert set(slide_batches(samples[:3], 50)) <= {f"batch{i:02d}" for i in range(50)}  # empty batches left out
    with pytest.raises(ConfigError, match="slide_batches"):
        slide_batches(samples, -1)


def _switch_to_batches(workdir, config_rel=SMALL_CONFIG):
    """Turn a copy of the finished (per-slide) small demo into a ``slide_batches: 5``
    workspace, file times as a batched run leaves them. Returns (config path, batches)."""
    config = yaml.safe_load((workdir / config_rel).read_text())
    config["slide_batches"] = N_BATCHES
    config_path = workdir / "config/test/batched.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    _restamp_as_batched(workdir)
    return config_path, _pipeline_batches(workdir, config)


def _pipeline_batches(workdir, config, extra_eval=()):
    """The batches the Snakefile forms: training (train/tune) slides apart from the rest."""
    import pandas as pd

    sheet = load_sample_sheet(workdir / config["samples"], cohorts=config["cohorts"].keys())
    splits = pd.read_csv(workdir / "results/splits/patients.tsv", sep="\t").set_index("patient")["split"]
    groups = {s: "train" if splits[p] in ("train", "tune") else "eval" for s, p in sheet["patient"].items()}
    groups.update({s: "eval" for s in extra_eval})
    return slide_batches(groups, N_BATCHES, groups=groups)


@pytest.fixture(scope="module")
def batched_workspace(request, tmp_path_factory):
    workdir = copy_workspace(finished_demo(request), tmp_path_factory.mktemp("batches") / "ws")
    return (workdir, *_switch_to_batches(workdir))


def _restamp_as_batched(workdir):
    """Give the per-slide run the file times a batched run would have left: all slides,
    then all tile stores, then all feature stores, before everything else. (A per-slide
    run interleaves them, so one slide of a batch can be newer than another slide's
    store, which makes the batch out of date by mtime.)"""
    import os

    everything = [p for p in workdir.rglob("*") if p.is_file() and ".snakemake" not in p.parts]
    t0 = min(p.stat().st_mtime for p in everything) - 1000
    stages = [(workdir / "data").rglob("*"), (workdir / "results/tiles").glob("*.h5"),
              (workdir / f"results/features/{ENCODER}").glob("*.h5")]
    for offset, files in enumerate(stages):
        for path in files:
            if path.is_file():
                os.utime(path, (t0 + offset, t0 + offset))


@pytest.mark.slow
def test_dry_run_has_one_job_per_batch_and_stage(batched_workspace, tmp_path):
    """From scratch (outputs removed), each per-slide stage is N_BATCHES jobs, no per-slide rule."""
    workdir, config_path, batches = batched_workspace
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    shutil.copytree(workdir / "config", scratch / "config")
    shutil.copytree(workdir / "resources", scratch / "resources")
    jobs = dry_run_jobs(scratch, scratch / "config/test/batched.yaml")
    rules = [j.rule for j in jobs]
    for stage in ("demo_slide", "tile_slide", "extract_features", "predict_slide"):
        assert sorted(r for r in rules if r.startswith(stage)) == sorted(f"{stage}_{b}" for b in batches), stage
    assert len(batches) == 2 * N_BATCHES  # train and eval groups


@pytest.mark.slow
def test_batched_stores_equal_per_slide_stores(batched_workspace):
    """Remove one batch's tile and feature stores and another batch's predictions; the
    batched jobs rebuild them equal to the per-slide run (all but the ``created`` stamp)."""
    workdir, config_path, batches = batched_workspace
    names = sorted((b for b in batches if len(batches[b]) >= 2), key=lambda b: len(batches[b]))
    store_batch, predict_batch = names[0], names[1]
    saved = workdir.parent / "per_slide"

    def set_aside(rels):
        rels = list(rels)
        for rel in rels:
            (saved / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(workdir / rel, saved / rel)
        return rels

    # Switching a finished per-slide run to batches reruns the per-slide stages (their
    # params change). Only the mtime trigger is kept here (file times restamped by the
    # fixture), so exactly the outputs set aside are rebuilt. Predictions first: rebuilding a
    # training slide's features would (rightly) retrain the models they depend on.
    def rebuild(targets):
        result = snakemake(workdir, *targets, "--configfile", str(config_path), "--cores", "2",
                           "--rerun-triggers", "mtime", timeout=900)
        return sorted(j.rule for j in parse_jobs(result.stdout + "\n" + result.stderr))

    kept = set_aside(f"results/predictions/{ENCODER}/slides/{s}.h5" for s in batches[predict_batch])
    assert rebuild(kept) == [f"predict_slide_{predict_batch}"]
    stores = set_aside([f"results/tiles/{s}.h5" for s in batches[store_batch]]
                       + [f"results/features/{ENCODER}/{s}.h5" for s in batches[store_batch]])
    assert rebuild([r for r in stores if "/features/" in r]) == [f"extract_features_{store_batch}",
                                                                  f"tile_slide_{store_batch}"]
    kept += stores
    for rel in kept:
        difference = output_difference(workdir / rel, workdir, saved / rel, workdir)
        assert difference is None, f"{rel}: {difference}"
    log = (workdir / f"logs/extract_features/{ENCODER}_{store_batch}.log").read_text()
    n = len(batches[store_batch])
    assert f"[{n}/{n}] slide" in log and log.count("weights") == 1, log[-2000:]
    assert (workdir / f"benchmarks/predict_slide/{ENCODER}_{predict_batch}.tsv").is_file()


@pytest.mark.slow
def test_new_slide_reruns_only_its_batch(request, tmp_path):
    """A slide added to the sheet (demo tables used as plain inputs) reruns its own
    batch of each per-slide stage and the aggregates, no other batch, no training (its
    batch holds no training slide, so no training slide's stores are rebuilt)."""
    import pandas as pd

    workdir = copy_workspace(finished_demo(request), tmp_path / "ws")
    static = static_config(workdir)
    config_path, _ = _switch_to_batches(workdir, config_rel=str(static.relative_to(workdir)))
    config = yaml.safe_load(config_path.read_text())
    sheet_path = workdir / config["samples"]
    sheet = pd.read_csv(sheet_path, sep="\t", dtype=str, keep_default_na=False)
    external = [c for c, spec in config["cohorts"].items() if spec["role"] == "external"]
    row = sheet[sheet["cohort"].isin(external)].iloc[0].copy()
    new_sample = "NEWEXT-1"
    source = workdir / row["slide"]
    row["sample"], row["slide"] = new_sample, str(Path(row["slide"]).with_name(f"{new_sample}.svs"))
    shutil.copy2(source, workdir / row["slide"])
    pd.concat([sheet, row.to_frame().T]).to_csv(sheet_path, sep="\t", index=False)
    batch = next(b for b, members in _pipeline_batches(workdir, config, extra_eval=[new_sample]).items()
                 if new_sample in members)

    # mtime only: the switch from the per-slide run to batches changes every job's params
    jobs = dry_run_jobs(workdir, config_path, "--rerun-triggers", "mtime")
    rules = {j.rule for j in jobs}
    per_slide = {r for r in rules if r.startswith(("tile_slide", "extract_features", "predict_slide"))}
    assert per_slide == {f"tile_slide_{batch}", f"extract_features_{batch}", f"predict_slide_{batch}"}, \
        describe(jobs)
    assert "patient_predictions" in rules and not rules & {"train_gene_chunk", "train_ridge"}, describe(jobs)
