"""Shared test fixtures. Library tests are in tests/unit, tests that run or parse the
workflow in tests/workflow; helpers (tests/workflow_runner.py, tests/<stage>_fixtures.py)
sit here, importable from both."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Two cores on CI: keep BLAS/torch from oversubscribing when tests run subprocesses.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from workflow_runner import REPO_ROOT, make_workspace, snakemake  # noqa: E402,F401  (one runner for all tests)


@pytest.fixture(scope="session")
def small_demo_run(tmp_path_factory) -> Path:
    """One complete run of the small end-to-end demo (config/test/config.yaml),
    shared by the end-to-end, incremental and reproducibility tests."""
    workdir = tmp_path_factory.mktemp("small_demo")
    config = make_workspace(workdir)
    snakemake(workdir, "--configfile", str(config), "--cores", "2", timeout=1500)
    return workdir


@pytest.fixture(scope="session")
def small_demo_report(small_demo_run) -> Path:
    """The `snakemake --report` of the small demo run, built once (report.html in the run's
    folder), shared by the report tests (tests/workflow/test_workflow_e2e.py, the headless
    browser test)."""
    report = small_demo_run / "report.html"
    if not report.is_file():
        config = small_demo_run / "config" / "test" / "config.yaml"
        snakemake(small_demo_run, "--configfile", str(config), "--report", report.name, timeout=1200)
    return report
