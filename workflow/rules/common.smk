# Shared by every stage file: the config completed from the schema, the sample sheet and
# the DAG plan (emo.workflow.plan: splits, model samples, slide batches, gene chunks,
# traits), plus path and code-version helpers. Included first by the Snakefile. The
# stage files compute nothing themselves; they read PLAN.

import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

# The library lives in scripts/emo; make it importable while the DAG is built. Found from
# this file's location (workflow/rules/), so a user's own Snakefile elsewhere that
# includes the rule files still finds it.
SCRIPTS_DIR = Path(workflow.current_basedir).parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS_DIR))

from emo.workflow.code_versions import script_code_version  # noqa: E402
from emo.workflow.plan import plan, split_records  # noqa: E402

# Validated against workflow/schemas/config.schema.yaml (an unknown key fails here, named)
# and completed with its defaults, in place, so every rule sees the same values.
PLAN = plan(config)
config.update(PLAN.config)

# Wildcards shared by the stages: a sample name (as the sample sheet allows) and an
# encoder are one path component; rules narrow them further where they can.
wildcard_constraints:
    sample=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    encoder=r"[^/]+",


SAMPLES = PLAN.samples
SAMPLE_NAMES = PLAN.sample_names
ENCODER = PLAN.encoder
# config slide_batches: {batch: samples} when the per-slide stages run several slides per
# job, {} for one job per slide (docs/configuration.md).
SLIDE_BATCHES = PLAN.slide_batches



def refuse_cluster_batches():
    """Called by the Snakefile's onstart (the executor is known only then, before any job
    is submitted): slide batches are local-only.

    A batch is a rule of its own (Snakemake fixes a rule's outputs when the rule is
    defined), named <stage>_<batch>: a cluster profile's set-resources, keyed by rule
    name, cannot reach it. Batching only saves per-job start-up, which matters for small
    demo slides on a workstation, not for real slides on a cluster."""
    if SLIDE_BATCHES and not workflow.local_exec:
        from emo.errors import ConfigError

        raise ConfigError(
            f"config key 'slide_batches' is {config['slide_batches']}, but this run submits jobs to a cluster "
            "executor, where batched per-slide jobs would bypass the profile's per-rule resources. Set "
            "slide_batches: 0 (e.g. --config slide_batches=0) for cluster runs")


def script_path(name):
    """Path of an entry script, relative to the rule files (Snakemake convention)."""
    return f"../../scripts/{name}"


def script_version(name):
    """Code version of an entry script: its source and its emo import closure, so a
    library edit reruns exactly the rules whose script reaches the edited module."""
    return script_code_version(SCRIPTS_DIR / name)


def slide_path(wildcards):
    return PLAN.slide(wildcards.sample)


def encoder_tile_store(wildcards):
    """The tile store of slide {sample} at the geometry of encoder {encoder}."""
    return PLAN.tile_store(wildcards.encoder, wildcards.sample)


def per_slide_units(stage):
    """The job units of a per-slide stage: (rule name, samples) pairs, where samples is
    None for the one wildcard rule (one job per slide) or a batch's slide list
    (config slide_batches: one rule per batch, named <stage>_<batch>)."""
    if not SLIDE_BATCHES:
        return [(stage, None)]
    return [(f"{stage}_{batch}", samples) for batch, samples in SLIDE_BATCHES.items()]


def unit_paths(pattern, samples, **fixed):
    """A per-slide path pattern for one unit: the pattern itself ({sample} a wildcard)
    for the per-slide rule, the batch's paths for a batch rule. ``fixed`` fills other
    placeholders; placeholders left as {{name}} stay wildcards."""
    if samples is None:
        return pattern.format(sample="{sample}", **fixed)
    return [pattern.format(sample=s, **fixed) for s in samples]


def unit_samples(samples):
    """params.samples of a unit: the wildcard's slide, or the batch's slides."""
    return (lambda wildcards: [wildcards.sample]) if samples is None else samples


def unit_mpps(samples):
    return (lambda wildcards: PLAN.mpps([wildcards.sample])) if samples is None else PLAN.mpps(samples)


def unit_slides(samples):
    return slide_path if samples is None else [PLAN.slide(s) for s in samples]


def unit_tile_stores(samples):
    """The tile stores of a unit for the encoder of the job (wildcard ``encoder``): each
    encoder reads the stores of its own tile geometry."""
    if samples is None:
        return lambda wildcards: PLAN.tile_store(wildcards.encoder, wildcards.sample)
    return lambda wildcards: [PLAN.tile_store(wildcards.encoder, s) for s in samples]


def unit_log(stage, samples, *wildcard_names):
    """logs/<stage>/<wildcards>.log; a batch's log is named after the batch."""
    if samples is None:
        return log_path(stage, *wildcard_names, "sample")
    batch = next(b for b, s in SLIDE_BATCHES.items() if s is samples)
    return "logs/{}/{}.log".format(stage, "_".join([f"{{{w}}}" for w in wildcard_names] + [batch]))


def unit_benchmark(stage, samples, *wildcard_names):
    return unit_log(stage, samples, *wildcard_names).replace("logs/", "benchmarks/", 1)[:-4] + ".tsv"


def unit_runtime(minutes_per_slide, samples):
    return minutes_per_slide * (1 if samples is None else len(samples))


def log_path(rule_name, *wildcard_names):
    """logs/{rule}/{wc1}_{wc2}.log (wildcards kept as Snakemake patterns)."""
    stem = "_".join(f"{{{w}}}" for w in wildcard_names) or rule_name
    return f"logs/{rule_name}/{stem}.log"


def benchmark_path(rule_name, *wildcard_names):
    stem = "_".join(f"{{{w}}}" for w in wildcard_names) or rule_name
    return f"benchmarks/{rule_name}/{stem}.tsv"
