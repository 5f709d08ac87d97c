"""Shared test fixtures. Stage-specific fixtures live in tests/<stage>_fixtures.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "scripts"))
sys.path.insert(0, str(REPO_ROOT / "tests"))

# Two cores on CI: keep BLAS/torch from oversubscribing when tests run subprocesses.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def snakemake_bin() -> str:
    """The snakemake executable next to the running interpreter (the project venv)."""
    candidate = Path(sys.executable).parent / "snakemake"
    return str(candidate) if candidate.exists() else "snakemake"


def make_workspace(dest: Path, config_rel: str = "config/test/config.yaml") -> Path:
    """A user-like working directory: a copy of config/ and resources/ (the Snakefile
    is run from the repository with ``-s``/``-d``). Returns the config path inside it."""
    import shutil

    dest.mkdir(parents=True, exist_ok=True)
    for folder in ("config", "resources"):
        if (REPO_ROOT / folder).exists():
            shutil.copytree(REPO_ROOT / folder, dest / folder, dirs_exist_ok=True)
    return dest / config_rel


def run_snakemake(workdir: Path, *args: str, timeout: int = 1500, check: bool = True):
    """Run the repository's Snakefile in ``workdir`` with the project's snakemake."""
    import subprocess

    snakemake = Path(sys.executable).parent / "snakemake"
    cmd = [str(snakemake if snakemake.exists() else "snakemake"), "-s", str(REPO_ROOT / "Snakefile"),
           "-d", str(workdir), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}): {' '.join(cmd)}\n"
                             f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-12000:]}")
    return result


@pytest.fixture(scope="session")
def small_demo_run(tmp_path_factory) -> Path:
    """One complete run of the small end-to-end demo (config/test/config.yaml),
    shared by the end-to-end, incremental and reproducibility tests."""
    workdir = tmp_path_factory.mktemp("small_demo")
    config = make_workspace(workdir)
    run_snakemake(workdir, "--configfile", str(config), "--cores", "2")
    return workdir
