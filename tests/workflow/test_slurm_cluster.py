"""Jobs of the small demo on a real single-node Slurm cluster (tests/slurm_cluster.py),
submitted through profiles/slurm with tests/slurm/test_profile_overrides.yaml.

A copy of the finished local demo run has one external slide's tiles, features and
predictions, one gene chunk's model and two CPU aggregates deleted; Snakemake recomputes
them on Slurm (six jobs: extract_features, train_gene_chunk and predict_slide on the
GPU partition, tile_slide, patient_splits and prepare_expression on the CPU one).
Where the jobs went is read from Slurm's own records (``scontrol show job``; MinJobAge
keeps finished jobs visible), and the recomputed files must equal the local ones.
"""

from __future__ import annotations

import pytest

from slurm_fixtures import GPU_RULES, finished_demo, output_difference, parse_jobs, run_demo_on_slurm

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _rule_of(comment: str) -> str:
    """The plugin's job comment is rule_<rule> or rule_<rule>_wildcards_<values>."""
    assert comment.startswith("rule_"), comment
    return comment[len("rule_"):].split("_wildcards_")[0]


@pytest.fixture(scope="module")
def demo_run(request):
    return finished_demo(request)


@pytest.fixture(scope="module")
def slurm_run(demo_run, tmp_path_factory):
    return run_demo_on_slurm(demo_run, tmp_path_factory)


def test_jobs_ran_on_slurm_and_completed(slurm_run):
    jobs = slurm_run.jobs
    planned_remote = [j for j in parse_jobs(slurm_run.console) if not j.local]
    assert jobs, "no job reached Slurm"
    assert all(j["JobState"] == "COMPLETED" for j in jobs), [(j["JobId"], j["JobState"]) for j in jobs]
    prefix = slurm_run.profile["slurm-jobname-prefix"] + "_"
    assert all(j["JobName"].startswith(prefix) for j in jobs), [j["JobName"] for j in jobs]
    assert sorted(_rule_of(j["Comment"]) for j in jobs) == sorted(j.rule for j in planned_remote)
    # the plugin's per-job logs, under the profile's slurm-logdir (kept by the test profile)
    logs = list((slurm_run.workdir / slurm_run.profile["slurm-logdir"]).rglob("*.log"))
    assert len(logs) == len(jobs), logs


def test_gpu_rules_on_gpu_partition_cpu_rules_not(slurm_run):
    rules_seen = set()
    for job in slurm_run.jobs:
        rule = _rule_of(job["Comment"])
        rules_seen.add(rule)
        tres = job.get("TresPerJob", "")
        if rule in GPU_RULES:
            assert job["Partition"] == "gpu", (rule, job["Partition"])
            assert tres == "gres:gpu:tgpu:1", (rule, tres)
        else:
            assert job["Partition"] == "cpu", (rule, job["Partition"])
            assert "gpu" not in tres, (rule, tres)
    # the run recomputes one slide and one gene chunk (slurm_targets): its GPU rules, not the slide models'
    ran_gpu = {"extract_features", "train_gene_chunk", "predict_slide"}
    assert ran_gpu <= set(GPU_RULES) and ran_gpu <= rules_seen, ran_gpu - rules_seen
    assert {"tile_slide", "patient_splits", "prepare_expression"} <= rules_seen, rules_seen


def test_memory_and_time_limits_follow_profile(slurm_run):
    checked = 0
    for job in slurm_run.jobs:
        resources = slurm_run.profile["set-resources"].get(_rule_of(job["Comment"]), {})
        if "mem_mb" in resources:
            expected = eval(str(resources["mem_mb"]), {"attempt": 1})  # noqa: S307 - our profile
            assert job["MinMemoryNode"] == f"{expected}M", (job["Comment"], job["MinMemoryNode"])
            checked += 1
        if "runtime" in resources:
            hours, minutes = divmod(int(resources["runtime"]), 60)
            assert job["TimeLimit"].endswith(f"{hours:02d}:{minutes:02d}:00"), (job["Comment"], job["TimeLimit"])
    assert checked == len(slurm_run.jobs)


def test_recomputed_outputs_equal_local_ones(slurm_run, demo_run):
    """The same job gives the same stores and tables on Slurm as locally."""
    differing = {}
    for rel, original in slurm_run.originals.items():
        recomputed = slurm_run.workdir / rel
        assert recomputed.is_file(), f"{rel} was not recomputed"
        difference = output_difference(original, demo_run, recomputed, slurm_run.workdir)
        if difference:
            differing[rel] = difference
    assert not differing, differing
