"""The small demo DAG on a real single-node Slurm cluster (tests/slurm_cluster.py),
submitted through profiles/slurm (with tests/slurm/test_profile_overrides.yaml).

Where jobs went is read from Slurm's own records (``scontrol show job``; MinJobAge=300
keeps finished jobs visible): GPU rules on the ``gpu`` partition with one GPU of the
configured model, every other rule on ``cpu`` without a GPU, memory and time limits as
the profile says. The run's outputs are also the second clean run that
tests/test_reproducibility_demo.py compares with the local one.
"""

from __future__ import annotations

import pytest

from slurm_fixtures import GPU_RULES, parse_jobs, run_demo_on_slurm

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _rule_of(comment: str) -> str:
    """The plugin's job comment is rule_<rule> or rule_<rule>_wildcards_<values>."""
    assert comment.startswith("rule_"), comment
    return comment[len("rule_"):].split("_wildcards_")[0]


@pytest.fixture(scope="session")
def slurm_demo_run(tmp_path_factory):
    """(workdir, Slurm job records, snakemake console output, test profile)."""
    return run_demo_on_slurm(tmp_path_factory)


def test_jobs_ran_on_slurm_and_completed(slurm_demo_run):
    workdir, jobs, console, profile = slurm_demo_run
    remote_planned = [j for j in parse_jobs(console) if not j.local]
    assert jobs, "no job reached Slurm"
    assert all(j["JobState"] == "COMPLETED" for j in jobs), [(j["JobId"], j["JobState"]) for j in jobs]
    assert all(j["JobName"].startswith(profile["slurm-jobname-prefix"] + "_") for j in jobs)
    assert len(jobs) == len(remote_planned), (len(jobs), len(remote_planned))
    # the plugin's per-job logs, under the profile's slurm-logdir
    logs = list((workdir / profile["slurm-logdir"]).rglob("*.log"))
    assert len(logs) == len(jobs)


def test_gpu_rules_on_gpu_partition_cpu_rules_not(slurm_demo_run):
    _, jobs, _, profile = slurm_demo_run
    rules_seen = set()
    for job in jobs:
        rule = _rule_of(job["Comment"])
        rules_seen.add(rule)
        tres = job.get("TresPerJob", "")
        if rule in GPU_RULES:
            assert job["Partition"] == "gpu", (rule, job["Partition"])
            assert tres == "gres:gpu:tgpu:1", (rule, tres)
        else:
            assert job["Partition"] == "cpu", (rule, job["Partition"])
            assert "gpu" not in tres, (rule, tres)
    assert set(GPU_RULES) <= rules_seen, set(GPU_RULES) - rules_seen
    assert len(rules_seen - set(GPU_RULES)) >= 3, rules_seen


def test_memory_and_time_limits_follow_profile(slurm_demo_run):
    _, jobs, _, profile = slurm_demo_run
    checked = 0
    for job in jobs:
        resources = profile["set-resources"].get(_rule_of(job["Comment"]), {})
        if "mem_mb" in resources:
            expected = eval(str(resources["mem_mb"]), {"attempt": 1})  # noqa: S307
            assert job["MinMemoryNode"] == f"{expected}M", (job["Comment"], job["MinMemoryNode"])
            checked += 1
        if "runtime" in resources:
            hours, minutes = divmod(int(resources["runtime"]), 60)
            assert job["TimeLimit"].endswith(f"{hours:02d}:{minutes:02d}:00"), (job["Comment"], job["TimeLimit"])
    assert checked >= len(GPU_RULES)
