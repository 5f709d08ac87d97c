"""Reproducibility: two clean runs of the small demo give byte-identical tables and
identical stores, and every output records its code version and parameters.

The first run is the session's local run (``small_demo_run``); the second is the run
on the Slurm test cluster (tests/test_slurm_cluster.py) where Slurm is available, else
a second local run. So the comparison also covers "same results whichever executor".

Allowed differences (docs/reproducibility.md): the HDF5 ``created`` attribute, and the
working directory itself where an absolute path is recorded (it is replaced by
``<WORKDIR>`` before comparing).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import make_workspace, run_snakemake
from slurm_fixtures import run_demo_on_slurm

pytestmark = pytest.mark.slow

TEXT_SUFFIXES = (".tsv", ".json", ".csv", ".txt")
IGNORED_ATTRS = {"created"}
OUTPUT_DIRS = ("results", "data")


@pytest.fixture(scope="session")
def second_demo_run(request, tmp_path_factory) -> Path:
    try:
        workdir, *_ = run_demo_on_slurm(tmp_path_factory)
        return workdir
    except pytest.skip.Exception:
        workdir = tmp_path_factory.mktemp("small_demo_again")
        config = make_workspace(workdir)
        run_snakemake(workdir, "--configfile", str(config), "--cores", "2")
        return workdir


def _outputs(workdir: Path) -> dict[str, Path]:
    files = {}
    for folder in OUTPUT_DIRS:
        for path in (workdir / folder).rglob("*"):
            if path.is_file():
                files[str(path.relative_to(workdir))] = path
    return files


def _normalise(value, workdir: Path):
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value.replace(str(workdir.resolve()), "<WORKDIR>").replace(str(workdir), "<WORKDIR>")
    if isinstance(value, np.ndarray) and value.dtype.kind in "OSU":
        return [_normalise(v, workdir) for v in value.tolist()]
    return value


def _h5_contents(path: Path, workdir: Path) -> dict:
    contents = {}

    def visit(name, obj):
        attrs = {k: _normalise(v, workdir) for k, v in obj.attrs.items() if k not in IGNORED_ATTRS}
        if isinstance(obj, h5py.Dataset):
            data = obj[()]
            contents[name] = ("dataset", str(obj.dtype), obj.shape, _normalise(data, workdir), attrs)
        else:
            contents[name] = ("group", attrs)

    with h5py.File(path, "r") as handle:
        contents["/"] = ("group", {k: _normalise(v, workdir) for k, v in handle.attrs.items()
                                   if k not in IGNORED_ATTRS})
        handle.visititems(visit)
    return contents


def _equal(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype.kind == "f" or b.dtype.kind == "f":
            return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
        return a.shape == b.shape and np.array_equal(a, b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return a == b


def _h5_differences(path_a: Path, wd_a: Path, path_b: Path, wd_b: Path) -> list[str]:
    a, b = _h5_contents(path_a, wd_a), _h5_contents(path_b, wd_b)
    if a.keys() != b.keys():
        return [f"objects differ: {sorted(set(a) ^ set(b))}"]
    return [name for name in sorted(a) if not _equal(a[name], b[name])]


def test_two_clean_runs_identical(small_demo_run, second_demo_run):
    first, second = _outputs(small_demo_run), _outputs(second_demo_run)
    assert first, "the demo run wrote no outputs"
    assert first.keys() == second.keys(), f"different output files: {sorted(set(first) ^ set(second))}"
    tables = stores = 0
    differing = []
    for rel, path in sorted(first.items()):
        other = second[rel]
        if path.suffix in TEXT_SUFFIXES:
            tables += 1
            text_a = _normalise(path.read_bytes(), small_demo_run)
            text_b = _normalise(other.read_bytes(), second_demo_run)
            if text_a != text_b:
                differing.append(f"{rel}: contents differ")
        elif path.suffix == ".h5":
            stores += 1
            diffs = _h5_differences(path, small_demo_run, other, second_demo_run)
            if diffs:
                differing.append(f"{rel}: {diffs[:5]}")
        elif path.suffix == ".pt":
            import torch

            state_a = torch.load(path, map_location="cpu", weights_only=False)
            state_b = torch.load(other, map_location="cpu", weights_only=False)
            if not _torch_equal(state_a, state_b):
                differing.append(f"{rel}: model state differs")
    assert tables > 0 and stores > 0, (tables, stores)
    assert not differing, "not reproducible:\n" + "\n".join(differing)


def _torch_equal(a, b) -> bool:
    import torch

    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_torch_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_torch_equal(x, y) for x, y in zip(a, b))
    return _equal(a, b)


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
