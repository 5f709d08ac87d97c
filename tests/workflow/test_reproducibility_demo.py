"""Reproducibility: two clean runs of the small demo give byte-identical tables and
identical stores, and every output records its code version and parameters.

The first run is the session's local run (``small_demo_run``, one job per slide), the
second a fresh local run in another directory with the per-slide stages packed into
batches (``slide_batches: 5``): packing work into jobs must change no result, so one
comparison checks both (and the batched run takes half the time on small slides).
(tests/workflow/test_slurm_cluster.py checks that outputs recomputed on Slurm equal the
local ones.)

Allowed differences (docs/reproducibility.md): the HDF5 ``created`` attribute, and the
working directory itself where an absolute path is recorded (it is replaced by
``<WORKDIR>`` before comparing).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest
import yaml

from workflow_runner import make_workspace, snakemake
from slurm_fixtures import TEXT_SUFFIXES, output_difference

pytestmark = pytest.mark.slow

OUTPUT_DIRS = ("results", "data")


BATCHES = 5


@pytest.fixture(scope="session")
def second_demo_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("small_demo_again")
    config = make_workspace(workdir)
    settings = yaml.safe_load(config.read_text())
    assert settings["slide_batches"] == 0, "the first run is meant to be one job per slide"
    settings["slide_batches"] = BATCHES
    config.write_text(yaml.safe_dump(settings, sort_keys=False))
    result = snakemake(workdir, "--configfile", str(config), "--cores", "2", timeout=1500)
    assert "extract_features_train0" in result.stdout + result.stderr, "the second run did not run in batches"
    return workdir


def _outputs(workdir: Path) -> dict[str, Path]:
    files = {}
    for folder in OUTPUT_DIRS:
        for path in (workdir / folder).rglob("*"):
            if path.is_file():
                files[str(path.relative_to(workdir))] = path
    return files


def test_two_clean_runs_identical(small_demo_run, second_demo_run):
    first, second = _outputs(small_demo_run), _outputs(second_demo_run)
    assert first, "the demo run wrote no outputs"
    assert first.keys() == second.keys(), f"different output files: {sorted(set(first) ^ set(second))}"
    tables = stores = 0
    differing = []
    for rel, path in sorted(first.items()):
        tables += path.suffix in TEXT_SUFFIXES
        stores += path.suffix == ".h5"
        difference = output_difference(path, small_demo_run, second[rel], second_demo_run)
        if difference:
            differing.append(f"{rel}: {difference}")
    assert tables > 0 and stores > 0, (tables, stores)
    assert not differing, "not reproducible:\n" + "\n".join(differing)


def test_every_output_records_code_version_and_parameters(small_demo_run):
    missing = []
    for rel, path in sorted(_outputs(small_demo_run).items()):
        if not rel.startswith("results/"):
            continue
        if path.suffix == ".tsv":
            sidecar = Path(str(path) + ".json")
            if not sidecar.is_file():
                missing.append(f"{rel}: no provenance sidecar")
                continue
            payload = json.loads(sidecar.read_text())
            if not payload.get("code_version") or "params" not in payload:
                missing.append(f"{rel}.json: lacks code_version/params")
        elif path.suffix == ".h5":
            with h5py.File(path, "r") as handle:
                attrs = set(handle.attrs)
            if "code_version" not in attrs:
                missing.append(f"{rel}: no code_version attribute")
            if not attrs & {"params", "tiling_params", "settings", "config"}:
                missing.append(f"{rel}: no parameters attribute (params/tiling_params/...)")
    assert not missing, "outputs without provenance:\n" + "\n".join(missing)
