"""config ``slide_batches``: the per-slide stages run several slides per job.

Batching must change only how work is packed into jobs, never a result: the batched
tile, feature and prediction stores are compared with the per-slide ones of the
session's finished small demo (``small_demo_run``)."""

from __future__ import annotations

import shutil

import pytest
import yaml

from emo.errors import ConfigError
from emo.sheets import load_sample_sheet, slide_batches
from slurm_fixtures import SMALL_CONFIG, copy_workspace, dry_run_jobs, finished_demo, output_difference, parse_jobs, \
    snakemake

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
    assert slide_batches(samples, 0) == {}
    assert set(slide_batches(samples[:3], 50)) <= {f"batch{i:02d}" for i in range(50)}  # empty batches left out
    with pytest.raises(ConfigError, match="slide_batches"):
        slide_batches(samples, -1)


@pytest.fixture(scope="module")
def batched_workspace(request, tmp_path_factory):
    """A copy of the finished small demo switched to ``slide_batches: 5``."""
    workdir = copy_workspace(finished_demo(request), tmp_path_factory.mktemp("batches") / "ws")
    config_path = workdir / "config/test/batched.yaml"
    config = yaml.safe_load((workdir / SMALL_CONFIG).read_text())
    config["slide_batches"] = N_BATCHES
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    sheet = load_sample_sheet(workdir / config["samples"], cohorts=config["cohorts"].keys())
    _restamp_as_batched(workdir)
    return workdir, config_path, slide_batches(sheet.index, N_BATCHES)


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
    assert len(batches) == N_BATCHES


@pytest.mark.slow
def test_batched_stores_equal_per_slide_stores(batched_workspace):
    """Remove one batch's tile and feature stores and another batch's predictions; the
    batched jobs rebuild them equal to the per-slide run (all but the ``created`` stamp)."""
    workdir, config_path, batches = batched_workspace
    names = sorted(batches, key=lambda b: len(batches[b]))
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
