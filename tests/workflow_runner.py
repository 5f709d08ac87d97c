"""The one way tests run Snakemake: on the repository's Snakefile or on a Snakefile of
some stage files only, in a user-like working directory.

* ``make_workspace``: a working directory with a copy of config/ and resources/.
* ``snakemake``: the project's snakemake as a subprocess, bounded by ``timeout -s KILL``,
  failing with its output when ``check``.
* ``stage_snakefile``: a Snakefile including common.smk and the given stage files only
  (the stage's upstream files are plain inputs).
* ``parsed_rules``: the workflow's rules as Snakemake parsed them (names, params,
  scripts), in-process, for assertions on every rule.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def make_workspace(dest: Path, config_rel: str = "config/test/config.yaml") -> Path:
    """A user-like working directory: a copy of config/ and resources/ (the Snakefile
    is run from the repository with ``-s``/``-d``). Returns the config path inside it."""
    dest.mkdir(parents=True, exist_ok=True)
    for folder in ("config", "resources"):
        shutil.copytree(REPO_ROOT / folder, dest / folder, dirs_exist_ok=True)
    return dest / config_rel


def snakemake(workdir: Path, *args: str, snakefile: Path | None = None, env: dict | None = None,
              timeout: int = 600, check: bool = True) -> subprocess.CompletedProcess:
    """Run snakemake on ``snakefile`` (default: the repository's) in ``workdir``, bounded
    by ``timeout -s KILL`` (a hung snakemake ignores SIGTERM while jobs are out)."""
    cmd = ["timeout", "-s", "KILL", str(timeout), str(SNAKEMAKE if SNAKEMAKE.exists() else "snakemake"),
           "-s", str(snakefile or REPO_ROOT / "Snakefile"), "-d", str(workdir), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env or dict(os.environ),
                            timeout=timeout + 30, cwd=workdir)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}): {' '.join(cmd)}\n"
                             f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-12000:]}")
    return result


def stage_snakefile(dest: Path, *stage_files: str, targets: str | None = None) -> Path:
    """A Snakefile of common.smk plus ``stage_files`` (names under workflow/rules/), with
    a default ``all`` rule collecting ``targets`` (a Python expression, e.g.
    ``heterogeneity_targets()``) when given."""
    rules = REPO_ROOT / "workflow" / "rules"
    lines = [f'include: "{rules / "common.smk"}"'] + [f'include: "{rules / name}"' for name in stage_files]
    if targets:
        lines += ["", "rule all:", f"    input: {targets}", "    default_target: True"]
    path = Path(dest) / "Snakefile"
    path.write_text("\n".join(lines) + "\n")
    return path


def parsed_rules(config: Path, workdir: Path, snakefile: Path | None = None) -> list:
    """The rules of the workflow as parsed with ``config`` in ``workdir`` (Snakemake
    ``Rule`` objects: ``name``, ``params``, ``script``), without building the DAG."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings

    cwd = os.getcwd()
    try:
        with SnakemakeApi(OutputSettings()) as api:
            workflow = api.workflow(resource_settings=ResourceSettings(),
                                    config_settings=ConfigSettings(configfiles=[Path(config)]),
                                    storage_settings=StorageSettings(), workdir=Path(workdir),
                                    snakefile=Path(snakefile or REPO_ROOT / "Snakefile"))
            return list(workflow._workflow.rules)  # parsed, not yet a DAG
    finally:
        os.chdir(cwd)
