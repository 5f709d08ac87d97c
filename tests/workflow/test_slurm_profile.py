"""profiles/slurm and profiles/default: settings, GPU routing, memory per retry attempt,
coverage of every rule, and a dry run that shows where each job of the small demo goes
(no Slurm needed; tests/workflow/test_slurm_cluster.py submits to a real one)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import yaml

from workflow_runner import REPO_ROOT, make_workspace
from slurm_cluster import write_test_profile
from slurm_fixtures import GPU_RULES, OPTIONAL_GPU_RULES, SMALL_CONFIG, dry_run_jobs, snakemake

SLURM_PROFILE = REPO_ROOT / "profiles" / "slurm" / "config.yaml"
DEFAULT_PROFILE = REPO_ROOT / "profiles" / "default" / "config.yaml"
# Rules that only collect targets (run locally, no resources).
TARGET_ONLY = {"all", "demo_cohort"}


def _profile() -> dict:
    return yaml.safe_load(SLURM_PROFILE.read_text())


def _eval_mem(expression, attempt: int) -> float:
    """A profile resource expression as Snakemake evaluates it (attempt, input, threads)."""
    if isinstance(expression, (int, float)):
        return expression
    namespace = {"attempt": attempt, "input": SimpleNamespace(size_mb=100.0), "threads": 1}
    return eval(str(expression), namespace)  # noqa: S307 - our own profile file


def test_slurm_profile_settings():
    profile = _profile()
    assert profile["executor"] == "slurm"
    assert isinstance(profile["jobs"], int) and profile["jobs"] >= 1
    assert isinstance(profile["retries"], int) and profile["retries"] >= 1
    assert profile["slurm-logdir"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,50}", profile["slurm-jobname-prefix"])
    defaults = profile["default-resources"]
    assert defaults["slurm_partition"]
    assert "gpu" not in defaults and "gres" not in defaults
    assert _eval_mem(defaults["mem_mb"], 2) > _eval_mem(defaults["mem_mb"], 1)


def test_gpu_rules_go_to_gpu_partition_with_one_gpu():
    profile = _profile()
    cpu_partition = profile["default-resources"]["slurm_partition"]
    for rule in GPU_RULES + OPTIONAL_GPU_RULES:
        resources = profile["set-resources"][rule]
        assert resources["gpu"] == 1, rule
        assert resources["slurm_partition"] != cpu_partition, rule
        assert "gres" not in resources, f"{rule}: set gpu or gres, not both"
    for rule, resources in profile["set-resources"].items():
        assert not ("gpu" in resources and "gres" in resources), rule
        if rule not in GPU_RULES + OPTIONAL_GPU_RULES:
            assert "gpu" not in resources and "slurm_partition" not in resources, \
                f"{rule}: CPU rules take the default partition"


def test_memory_grows_with_retry_attempt():
    profile = _profile()
    for rule, resources in profile["set-resources"].items():
        assert "mem_mb" in resources, f"{rule}: no mem_mb (retries would not get more memory)"
        first, second, third = (_eval_mem(resources["mem_mb"], a) for a in (1, 2, 3))
        assert 0 < first < second < third, rule


def test_workflow_profile_does_not_override_cluster_settings():
    """profiles/default is loaded with every --profile and wins per key: it must not set
    what the cluster profile sets differently, nor `cores` (which caps every job's
    threads, cluster jobs included)."""
    default = yaml.safe_load(DEFAULT_PROFILE.read_text()) or {}
    slurm = _profile()
    assert "cores" not in default
    clashes = {k for k in default if k in slurm and default[k] != slurm[k]}
    assert not clashes, f"profiles/default overrides profiles/slurm for {sorted(clashes)}"
    assert {"mtime", "params", "input", "code"} <= set(default["rerun-triggers"])


def _workflow_rules(workdir, config) -> set[str]:
    result = snakemake(workdir, "--configfile", str(config), "--list-rules")
    return {line.split()[0] for line in result.stdout.splitlines() if re.match(r"^\w+\s*$", line.strip() or "-")}


@pytest.fixture(scope="module")
def small_workspace(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm_profile")
    config = make_workspace(workdir)
    if not config.exists():
        pytest.skip(f"{SMALL_CONFIG} not present yet")
    return workdir, config


@pytest.mark.slow
def test_profile_lists_every_rule(small_workspace):
    workdir, config = small_workspace
    rules = _workflow_rules(workdir, config)
    listed = set(_profile()["set-resources"])
    stale = listed - rules
    assert not stale, f"profiles/slurm set-resources names rules the workflow lacks: {sorted(stale)}"
    demo_rules = {r for r in rules if r.startswith("demo_")}
    missing = rules - listed - TARGET_ONLY - demo_rules
    assert not missing, (f"rules without an entry in profiles/slurm set-resources (memory per attempt "
                         f"at cohort scale): {sorted(missing)}")


@pytest.mark.slow
def test_dry_run_routes_every_job(small_workspace, tmp_path):
    """Resources of every planned job of the small demo under the (test-)Slurm profile:
    GPU rules on the gpu partition with one GPU of the configured model, all others on
    the cpu partition without a GPU; memory as the profile's expression at attempt 1."""
    workdir, config = small_workspace
    profile_dir = write_test_profile(tmp_path / "profile", REPO_ROOT)
    profile = yaml.safe_load((profile_dir / "config.yaml").read_text())
    jobs = dry_run_jobs(workdir, config, "--profile", str(profile_dir))
    remote = [j for j in jobs if j.rule not in TARGET_ONLY]
    assert remote, "dry run planned no jobs"
    seen = {j.rule for j in remote}
    assert set(GPU_RULES) <= seen, f"GPU rules missing from the small demo DAG: {set(GPU_RULES) - seen}"
    for job in remote:
        res = job.resources
        if job.rule in GPU_RULES or res.get("gpu", "0") not in ("0", ""):
            assert res.get("slurm_partition") == "gpu", (job.rule, res)
            assert res.get("gpu") == "1" and res.get("gpu_model") == "tgpu", (job.rule, res)
        else:
            assert res.get("slurm_partition") == "cpu", (job.rule, res)
            assert res.get("gpu", "0") == "0" and "gres" not in res, (job.rule, res)
        rule_res = profile["set-resources"].get(job.rule)
        if rule_res and "mem_mb" in rule_res:
            assert float(res["mem_mb"]) == _eval_mem(rule_res["mem_mb"], 1), (job.rule, res)


def test_test_profile_is_derived_from_the_real_one(tmp_path):
    profile = yaml.safe_load((write_test_profile(tmp_path, REPO_ROOT) / "config.yaml").read_text())
    real = _profile()
    assert profile["executor"] == "slurm"
    assert profile["slurm-status-command"] == "squeue"  # the test cluster has no slurmdbd
    assert "software-deployment-method" not in profile
    assert profile["default-resources"] == real["default-resources"]
    for rule, resources in real["set-resources"].items():
        derived = profile["set-resources"][rule]
        assert {k: v for k, v in derived.items() if k != "gpu_model"} == resources, rule
        assert ("gpu_model" in derived) == (rule in GPU_RULES + OPTIONAL_GPU_RULES), rule


def test_cluster_config_renders(tmp_path):
    from slurm_cluster import SlurmCluster

    cluster = SlurmCluster(tmp_path, cpus=4, memory_mb=8000, gpus=2, gpu_type="tgpu")
    cluster._write_config()
    conf = (tmp_path / "etc" / "slurm.conf").read_text()
    assert "GresTypes=gpu" in conf and "Gres=gpu:tgpu:2" in conf and "CPUs=4" in conf
    assert "PartitionName=cpu Nodes=localhost Default=YES" in conf
    assert "PartitionName=gpu Nodes=localhost Default=NO" in conf
    assert "{" not in conf, "unfilled template field"
    gres = (tmp_path / "etc" / "gres.conf").read_text()
    assert "File=/dev/null" in gres and "Count=2" in gres
    assert cluster.env()["SLURM_CONF"] == str(tmp_path.resolve() / "etc" / "slurm.conf")


def test_parse_jobs_reads_snakemake_job_blocks():
    from slurm_fixtures import parse_jobs

    text = """rule tile_slide:
    input: data/s1.svs
    output: results/tiles/s1.h5
    jobid: 3
    reason: Params have changed since last execution
    wildcards: sample=s1
    resources: tmpdir=/tmp, mem_mb=8000, slurm_partition=cpu, runtime=60

localrule all:
    input: results/tiles/s1.h5
    jobid: 0
"""
    jobs = parse_jobs(text)
    assert [(j.rule, j.local) for j in jobs] == [("tile_slide", False), ("all", True)]
    assert jobs[0].sample == "s1" and jobs[0].outputs == ["results/tiles/s1.h5"]
    assert jobs[0].resources["mem_mb"] == "8000" and jobs[0].resources["slurm_partition"] == "cpu"
    assert "params" in jobs[0].reason.lower()


def test_slide_batches_are_refused_on_the_cluster_before_any_job(tmp_path):
    """Batched per-slide rules have names the profile's set-resources cannot address, so
    a cluster run with slide_batches > 0 stops before submitting anything, naming the key.
    (No Slurm daemons needed: the refusal comes before the first sbatch.)"""
    config = make_workspace(tmp_path / "wd")
    profile = write_test_profile(tmp_path / "profile", REPO_ROOT)
    result = snakemake(tmp_path / "wd", "--configfile", str(config), "--profile", str(profile),
                       "--config", "slide_batches=2", timeout=300, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "config key 'slide_batches' is 2" in output and "slide_batches: 0" in output, output[-3000:]
    assert "Submitted" not in output and not (tmp_path / "wd" / "logs" / "slurm").exists(), output[-3000:]
    # the same config runs on the cluster with batching off: the dry run plans per-slide jobs
    jobs = dry_run_jobs(tmp_path / "wd", config, "--profile", str(profile), "--config", "slide_batches=0")
    assert {j.rule for j in jobs} >= {"tile_slide", "extract_features"}
