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
