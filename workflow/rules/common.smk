# Shared helpers for every stage file (config and sample-sheet validation, paths,
# code versions). Included first by the Snakefile.

import math
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

# The library lives in scripts/emo; make it importable while the DAG is built.
SCRIPTS_DIR = Path(workflow.basedir) / "scripts"
sys.path.insert(0, str(SCRIPTS_DIR))

from emo.workflow.code_versions import script_code_version  # noqa: E402
from emo.sheets import load_sample_sheet, slide_batches  # noqa: E402
from emo.splits import assign_splits, samples_in_splits  # noqa: E402

validate(config, schema="../schemas/config.schema.yaml")

SAMPLES = load_sample_sheet(config["samples"], cohorts=config["cohorts"].keys())
SAMPLE_NAMES = sorted(SAMPLES.index)
ENCODER = config["features"]["encoder"]

# Patient splits are a pure function of the sheet and the config, known when the DAG is
# built (docs/gene_models.md): the training rules depend only on train/tune slides.
SPLITS_CFG = config["splits"]
COHORT_ROLES = {name: c["role"] for name, c in config["cohorts"].items()}
SPLITS_SEED = int(SPLITS_CFG.get("seed", 20210801))
PATIENT_SPLITS = assign_splits(SAMPLES, COHORT_ROLES, SPLITS_SEED, SPLITS_CFG.get("proportions"))
# The slides the models train on (train + tune), sorted; gene_models.smk trains on them.
MODEL_SAMPLES = samples_in_splits(SAMPLES, PATIENT_SPLITS, ("train", "tune"))

# config `slide_batches`: {batch: samples} when the per-slide stages run several slides per
# job (rules <stage>_<batch>), {} for one job per slide (docs/configuration.md). The
# slides models train on ("train" batches) never share a batch with the others ("eval").
_model_samples = set(MODEL_SAMPLES)
SLIDE_BATCHES = slide_batches(SAMPLE_NAMES, int(config.get("slide_batches", 0)),
                              groups={s: "train" if s in _model_samples else "eval" for s in SAMPLE_NAMES})


def script_path(name):
    """Path of an entry script, relative to the rule files (Snakemake convention)."""
    return f"../../scripts/{name}"


def script_version(name):
    """Code version of an entry script: its source and its emo import closure, so a
    library edit reruns exactly the rules whose script reaches the edited module."""
    return script_code_version(SCRIPTS_DIR / name)


def slide_path(wildcards):
    return SAMPLES.loc[wildcards.sample, "slide"]


def slide_paths(samples):
    return [SAMPLES.loc[s, "slide"] for s in samples]


def sample_mpps(samples):
    """{sample: the sheet's mpp override or None} (per-slide and batched rules alike)."""
    return {s: sample_mpp(s) for s in samples}


def sample_mpp(sample):
    """The sheet's mpp override for a sample, or None."""
    value = SAMPLES.loc[sample, "mpp"]
    return float(value) if value != "" else None


def samples_in(cohort_role=None):
    """Samples, optionally restricted to cohorts with the given role."""
    if cohort_role is None:
        return SAMPLE_NAMES
    return [s for s in SAMPLE_NAMES if config["cohorts"][SAMPLES.loc[s, "cohort"]]["role"] == cohort_role]


def log_path(rule_name, *wildcard_names):
    """logs/{rule}/{wc1}_{wc2}.log (wildcards kept as Snakemake patterns)."""
    stem = "_".join(f"{{{w}}}" for w in wildcard_names) or rule_name
    return f"logs/{rule_name}/{stem}.log"


def benchmark_path(rule_name, *wildcard_names):
    stem = "_".join(f"{{{w}}}" for w in wildcard_names) or rule_name
    return f"benchmarks/{rule_name}/{stem}.tsv"
