"""Helpers shared by the Slurm, incremental-rerun and reproducibility tests.

* ``dry_run_jobs``: run ``snakemake -n`` and parse the job blocks it prints into
  :class:`PlannedJob` records (rule, wildcards, outputs, resources, reason), so tests
  can assert *which* jobs a change schedules, classified by rule name.
* ``copy_workspace``: copy a finished run (outputs, ``.snakemake`` metadata, mtimes)
  so a test can edit inputs without touching the shared session run.
* ``static_config``: turn a demo workspace into a "realistic user" one: the generated
  demo tables and slides become plain inputs (``demo.enabled: false``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO_ROOT

SMALL_CONFIG = "config/test/config.yaml"
GPU_RULES = ("extract_features", "train_gene_chunk", "predict_slide")
# Rules that depend on one slide (wildcard `sample`).
PER_SLIDE_RULES = ("tile_slide", "extract_features", "predict_slide")
_JOB_HEAD = re.compile(r"^(local)?(?:rule|checkpoint) (\w+):\s*$")


@dataclasses.dataclass
class PlannedJob:
    rule: str
    wildcards: dict[str, str]
    outputs: list[str]
    resources: dict[str, str]
    reason: str
    local: bool = False

    @property
    def sample(self) -> str | None:
        return self.wildcards.get("sample")


def _split_kv(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in re.split(r",\s*(?=[A-Za-z_][\w]*=)", text.strip()):
        if "=" in part:
            key, value = part.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def parse_jobs(text: str) -> list[PlannedJob]:
    """Job blocks of Snakemake's console output (dry run or real run)."""
    jobs: list[PlannedJob] = []
    current: dict | None = None
    for line in text.splitlines():
        head = _JOB_HEAD.match(line)
        if head:
            current = {"rule": head.group(2), "wildcards": {}, "outputs": [], "resources": {}, "reason": "",
                       "local": bool(head.group(1))}
            jobs.append(current)  # type: ignore[arg-type]
            continue
        if current is None:
            continue
        stripped = line.strip()
        if not line.startswith("    ") or not stripped:
            current = None if not line.startswith(" ") else current
            continue
        key, _, value = stripped.partition(": ")
        if key == "wildcards":
            current["wildcards"] = _split_kv(value)
        elif key == "output":
            current["outputs"] = [v.strip() for v in value.split(",")]
        elif key == "resources":
            current["resources"] = _split_kv(value)
        elif key == "reason":
            current["reason"] = value
    return [PlannedJob(**j) for j in jobs]  # type: ignore[arg-type]


def snakemake(workdir: Path, *args: str, snakefile: Path | None = None, env: dict | None = None,
              timeout: int = 600, check: bool = True) -> subprocess.CompletedProcess:
    """Run snakemake on ``snakefile`` (default: the repository's) in ``workdir``, bounded
    by ``timeout -s KILL`` (a hung snakemake ignores SIGTERM while jobs are out)."""
    exe = Path(sys.executable).parent / "snakemake"
    cmd = ["timeout", "-s", "KILL", str(timeout), str(exe if exe.exists() else "snakemake"),
           "-s", str(snakefile or REPO_ROOT / "Snakefile"), "-d", str(workdir), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env or dict(os.environ),
                            timeout=timeout + 30)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}): {' '.join(cmd)}\n"
                             f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-12000:]}")
    return result


def dry_run_jobs(workdir: Path, config: Path, *extra: str, snakefile: Path | None = None) -> list[PlannedJob]:
    result = snakemake(workdir, "--configfile", str(config), "-n", *extra, snakefile=snakefile)
    return parse_jobs(result.stdout + "\n" + result.stderr)


def remove_locks(workdir: Path) -> None:
    """Clear what a killed snakemake leaves behind (locks, incomplete markers)."""
    for name in ("locks", "incomplete"):
        shutil.rmtree(Path(workdir) / ".snakemake" / name, ignore_errors=True)


def jobs_by_rule(jobs: list[PlannedJob]) -> dict[str, list[PlannedJob]]:
    out: dict[str, list[PlannedJob]] = {}
    for job in jobs:
        out.setdefault(job.rule, []).append(job)
    return out


def describe(jobs: list[PlannedJob]) -> str:
    return "\n".join(f"  {j.rule} {j.wildcards} ({j.reason})" for j in jobs) or "  (no jobs)"


def copy_workspace(src: Path, dest: Path) -> Path:
    """Copy a workspace with its outputs and Snakemake metadata, keeping mtimes;
    drops locks and incomplete markers."""
    shutil.copytree(src, dest, symlinks=True, copy_function=shutil.copy2,
                    ignore=shutil.ignore_patterns("locks", "incomplete", "report.html"))
    return dest


def static_config(workdir: Path, config_rel: str = SMALL_CONFIG) -> Path:
    """Write ``config/test/static.yaml``: the small config with the demo generator off,
    its generated tables and slides used as plain inputs. Returns its path."""
    config = yaml.safe_load((workdir / config_rel).read_text())
    config.setdefault("demo", {})["enabled"] = False
    out = workdir / Path(config_rel).with_name("static.yaml")
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


def repo_copy(dest: Path) -> Path:
    """A copy of the code (Snakefile, workflow/, scripts/, profiles/, envs/) that a test
    may edit (e.g. to change a library module) without touching the repository."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO_ROOT / "Snakefile", dest / "Snakefile")
    for folder in ("workflow", "scripts", "profiles", "envs"):
        if (REPO_ROOT / folder).exists():
            shutil.copytree(REPO_ROOT / folder, dest / folder, copy_function=shutil.copy2,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest / "Snakefile"


# -- the small demo on the Slurm test cluster (one run per test session) ----------------
RUN_TIMEOUT_S = 1200  # hard bound (timeout -s KILL) for the whole Slurm run
_SLURM_RUN: dict = {}


def run_demo_on_slurm(tmp_path_factory):
    """Run the small demo from scratch on a fresh single-node Slurm cluster through the
    test profile; returns (workdir, Slurm job records, console output, profile dict).

    Once per session (cached here, so several test modules share it). The cluster is
    stopped and Snakemake locks cleared before returning, also when the run fails;
    Snakemake is bounded by ``timeout -s KILL``."""
    import pytest

    from conftest import make_workspace
    from slurm_cluster import SlurmCluster, missing_requirements, write_test_profile

    if "result" in _SLURM_RUN:
        return _SLURM_RUN["result"]
    if "skip" in _SLURM_RUN:
        pytest.skip(_SLURM_RUN["skip"])
    if "error" in _SLURM_RUN:
        pytest.fail(_SLURM_RUN["error"])
    missing = missing_requirements()
    if missing:
        _SLURM_RUN["skip"] = (f"no Slurm test cluster on this machine (missing {', '.join(missing)}); "
                              "install: apt-get install slurmctld slurmd slurm-client munge")
        pytest.skip(_SLURM_RUN["skip"])
    base = tmp_path_factory.mktemp("slurm")
    workdir = base / "wd"
    config = make_workspace(workdir)
    if not config.exists():
        _SLURM_RUN["skip"] = f"{SMALL_CONFIG} not present"
        pytest.skip(_SLURM_RUN["skip"])
    profile_dir = write_test_profile(base / "profile", REPO_ROOT)
    cluster = SlurmCluster(base / "cluster", cpus=16, memory_mb=262144, gpus=1, gpu_type="tgpu")
    try:
        cluster.start()
        env = cluster.env()
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
        env.setdefault("OMP_NUM_THREADS", "1")
        result = snakemake(workdir, "--configfile", str(config), "--profile", str(profile_dir),
                           env=env, timeout=RUN_TIMEOUT_S, check=False)
        jobs = cluster.jobs()
        if result.returncode != 0:
            slurm_logs = sorted((workdir / "logs" / "slurm").rglob("*.log"), key=lambda p: p.stat().st_mtime)
            tails = "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-3000:]}" for p in slurm_logs[-3:])
            _SLURM_RUN["error"] = (f"Slurm run failed ({result.returncode}; 137 = killed after {RUN_TIMEOUT_S} s)\n"
                                   f"{result.stderr[-8000:]}\n{tails}\n{cluster.diagnostics()}")
            pytest.fail(_SLURM_RUN["error"])
        profile = yaml.safe_load((profile_dir / "config.yaml").read_text())
        _SLURM_RUN["result"] = (workdir, jobs, result.stdout + result.stderr, profile)
        return _SLURM_RUN["result"]
    finally:
        cluster.stop()
        remove_locks(workdir)
