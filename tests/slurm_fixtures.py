"""Helpers shared by the Slurm, incremental-rerun and reproducibility tests.

* ``dry_run_jobs``: run ``snakemake -n`` and parse the job blocks it prints into
  :class:`PlannedJob` records (rule, wildcards, inputs, outputs, resources, reason), so tests
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
import sys
from pathlib import Path

import h5py
import numpy as np
import yaml

from workflow_runner import REPO_ROOT, snakemake  # noqa: F401  (re-exported for the Slurm tests)

SMALL_CONFIG = "config/test/config.yaml"
GPU_RULES = ("extract_features", "train_gene_chunk", "predict_slide", "slide_model_train",
             "slide_model_predict")
# GPU rules of optional stages the small demo does not run (cnn_finetune.enabled: false).
OPTIONAL_GPU_RULES = ("cnn_finetune_gene",)
# Rules that depend on one slide (wildcard `sample`).
PER_SLIDE_RULES = ("tile_slide", "extract_features", "predict_slide")
TEXT_SUFFIXES = (".tsv", ".json", ".csv", ".txt")
IGNORED_ATTRS = {"created"}  # the one documented field that differs between reruns
_JOB_HEAD = re.compile(r"^(local)?(?:rule|checkpoint) (\w+):\s*$")


@dataclasses.dataclass
class PlannedJob:
    rule: str
    wildcards: dict[str, str]
    outputs: list[str]
    resources: dict[str, str]
    reason: str
    local: bool = False
    inputs: list[str] = dataclasses.field(default_factory=list)

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
            current = {"rule": head.group(2), "wildcards": {}, "outputs": [], "inputs": [], "resources": {},
                       "reason": "", "local": bool(head.group(1))}
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
        elif key == "input":
            current["inputs"] = [v.strip() for v in value.split(",")]
        elif key == "resources":
            current["resources"] = _split_kv(value)
        elif key == "reason":
            current["reason"] = value
    return [PlannedJob(**j) for j in jobs]  # type: ignore[arg-type]


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


def finished_demo(request) -> Path:
    """The finished small-demo workspace: the session's ``small_demo_run``, or, for
    development, an existing finished run named by ``EMO_FINISHED_SMALL_DEMO`` (tests
    only copy it, never change it)."""
    existing = os.environ.get("EMO_FINISHED_SMALL_DEMO")
    if existing:
        return Path(existing)
    return request.getfixturevalue("small_demo_run")


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
    demo = config.setdefault("demo", {})
    demo["enabled"] = False
    # settings the demo provided implicitly become explicit (as a user would write them)
    heterogeneity = config.get("heterogeneity") or {}
    if heterogeneity.get("traits") is None and demo.get("heterogeneity_traits"):
        heterogeneity["traits"] = list(demo["heterogeneity_traits"])
        config["heterogeneity"] = heterogeneity
    tumour = config.get("tumour_regions") or {}
    if tumour.get("enabled") and tumour.get("annotations") is None:  # the demo's annotation files
        tumour["annotations"] = f"{demo.get('out_dir', 'data/demo')}/annotations"
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


# -- part of the small demo on the Slurm test cluster (one run per test session) -------
RUN_TIMEOUT_S = 900  # hard bound (timeout -s KILL) for the Slurm run
_SLURM_RUN: dict = {}


@dataclasses.dataclass
class SlurmRun:
    workdir: Path            # copy of the finished small demo, partly recomputed on Slurm
    originals: dict          # relative path -> copy of the file from the local run
    jobs: list               # Slurm's records of the submitted jobs (scontrol show job)
    console: str             # snakemake's console output
    profile: dict            # the test profile used
    sample: str              # the slide whose jobs were recomputed


def slurm_targets(workdir: Path, config: dict) -> tuple[str, list[str], list[str]]:
    """What the Slurm run recomputes in a finished demo workspace: one external slide's
    tiles, features and predictions, one gene chunk's model, and two CPU aggregates
    that nothing requested depends on (so the run stays at six jobs, GPU and CPU
    rules alike). Returns (slide, files to delete, targets)."""
    import pandas as pd

    sheet = pd.read_csv(workdir / config["samples"], sep="\t", dtype=str, keep_default_na=False, comment="#")
    external = [c for c, spec in config["cohorts"].items() if spec["role"] == "external"]
    sample = sorted(sheet.loc[sheet["cohort"].isin(external), "sample"])[0]
    encoder = config["features"]["encoder"]
    models = workdir / "results" / "models" / encoder
    chunk = sorted(p.stem for p in models.glob("chunk_*.pt"))[0]
    prediction = f"results/predictions/{encoder}/slides/{sample}.h5"
    chunk_files = sorted(str(p.relative_to(workdir)) for p in models.glob(f"{chunk}.*"))
    delete = [f"results/tiles/{sample}.h5", f"results/features/{encoder}/{sample}.h5", prediction,
              *chunk_files, "results/splits/patients.tsv", "results/expression/prepared.h5"]
    targets = [prediction, f"results/models/{encoder}/{chunk}.pt", "results/splits/patients.tsv",
               "results/expression/prepared.h5"]
    return sample, delete, targets


def run_demo_on_slurm(small_demo_run: Path, tmp_path_factory) -> SlurmRun:
    """Recompute part of the finished small demo (see ``slurm_targets``) on a fresh
    single-node Slurm cluster through the test profile.

    Once per session (cached here, so several test modules share it). The cluster is
    stopped and Snakemake locks cleared before returning, also when the run fails;
    Snakemake is bounded by ``timeout -s KILL``."""
    import pytest

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
    workdir = copy_workspace(small_demo_run, base / "wd")
    config_path = workdir / SMALL_CONFIG
    config = yaml.safe_load(config_path.read_text())
    sample, delete, targets = slurm_targets(workdir, config)
    originals = {}
    for rel in delete:
        keep = base / "originals" / rel
        keep.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(workdir / rel, keep)
        originals[rel] = keep
        (workdir / rel).unlink()
    profile_dir = write_test_profile(base / "profile", REPO_ROOT)
    cluster = SlurmCluster(base / "cluster", cpus=16, memory_mb=262144, gpus=1, gpu_type="tgpu")
    try:
        cluster.start()
        env = cluster.env()
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
        env.setdefault("OMP_NUM_THREADS", "1")
        result = snakemake(workdir, "--configfile", str(config_path), "--profile", str(profile_dir),
                           *targets, env=env, timeout=RUN_TIMEOUT_S, check=False)
        jobs = cluster.jobs()
        if result.returncode != 0:
            slurm_logs = sorted((workdir / "logs" / "slurm").rglob("*.log"), key=lambda p: p.stat().st_mtime)
            tails = "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-3000:]}" for p in slurm_logs[-3:])
            _SLURM_RUN["error"] = (f"Slurm run failed ({result.returncode}; 137 = killed after {RUN_TIMEOUT_S} s)\n"
                                   f"{result.stderr[-8000:]}\n{tails}\n{cluster.diagnostics()}")
            pytest.fail(_SLURM_RUN["error"])
        profile = yaml.safe_load((profile_dir / "config.yaml").read_text())
        _SLURM_RUN["result"] = SlurmRun(workdir, originals, jobs, result.stdout + result.stderr, profile, sample)
        return _SLURM_RUN["result"]
    finally:
        cluster.stop()
        remove_locks(workdir)


# -- comparing outputs of two runs -----------------------------------------------------------
def normalise(value, workdir: Path):
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value.replace(str(workdir.resolve()), "<WORKDIR>").replace(str(workdir), "<WORKDIR>")
    if isinstance(value, np.ndarray) and value.dtype.kind in "OSU":
        return [normalise(v, workdir) for v in value.tolist()]
    return value


def _h5_contents(path: Path, workdir: Path) -> dict:
    contents = {}

    def visit(name, obj):
        attrs = {k: normalise(v, workdir) for k, v in obj.attrs.items() if k not in IGNORED_ATTRS}
        if isinstance(obj, h5py.Dataset):
            data = obj[()]
            contents[name] = ("dataset", str(obj.dtype), obj.shape, normalise(data, workdir), attrs)
        else:
            contents[name] = ("group", attrs)

    with h5py.File(path, "r") as handle:
        contents["/"] = ("group", {k: normalise(v, workdir) for k, v in handle.attrs.items()
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


def h5_differences(path_a: Path, wd_a: Path, path_b: Path, wd_b: Path) -> list[str]:
    a, b = _h5_contents(path_a, wd_a), _h5_contents(path_b, wd_b)
    if a.keys() != b.keys():
        return [f"objects differ: {sorted(set(a) ^ set(b))}"]
    return [name for name in sorted(a) if not _equal(a[name], b[name])]


def _torch_equal(a, b) -> bool:
    import torch

    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if a.is_floating_point():  # NaN (e.g. unused epochs of a training curve) equals NaN
            return bool(torch.equal(torch.isnan(a), torch.isnan(b))
                        and torch.equal(torch.nan_to_num(a), torch.nan_to_num(b)))
        return torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_torch_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_torch_equal(x, y) for x, y in zip(a, b))
    return _equal(a, b)



def output_difference(path_a: Path, wd_a: Path, path_b: Path, wd_b: Path) -> str | None:
    """None if two outputs are equal (text: byte-identical after replacing the working
    directory; HDF5: datasets and attributes equal except ``created``; torch: tensors
    equal), else a short description. Other files (figures) are not compared, nor measured
    timings (``training_cost.tsv``: CPU and wall seconds of the slide models' training,
    as emo.workflow.compare skips them)."""
    if path_a.name == "training_cost.tsv":
        return None
    if path_a.suffix in TEXT_SUFFIXES:
        same = normalise(path_a.read_bytes(), wd_a) == normalise(path_b.read_bytes(), wd_b)
        return None if same else "contents differ"
    if path_a.suffix == ".h5":
        diffs = h5_differences(path_a, wd_a, path_b, wd_b)
        return f"objects differ: {diffs[:5]}" if diffs else None
    if path_a.suffix == ".pt":
        import torch

        state_a = torch.load(path_a, map_location="cpu", weights_only=False)
        state_b = torch.load(path_b, map_location="cpu", weights_only=False)
        return None if _torch_equal(state_a, state_b) else "model state differs"
    return None
