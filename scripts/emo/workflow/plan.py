"""The DAG plan: every decision the workflow makes when the DAG is built, in one place.

``common.smk`` calls :func:`plan` once with the loaded config and sample sheet; the rule
files only read the :class:`Plan`'s fields. Everything here is a pure function of the
config, the sample sheet and (for the gene list) the reference expression matrix's
gene column, so a dry run shows what a real run will do, and the plan is unit-tested
without Snakemake.

Checks that need only the config and the sheet run here too, so a bad config fails
before any job starts, with the key at fault named. Checks of one stage's settings run
when that stage's rule file reads them (``PLAN.gene_chunks``, ``PLAN.heterogeneity_traits``,
``PLAN.check_statistics_clinical()``, ``PLAN.check_survival_clinical()``, ``PLAN.check_clinical_classifiers()``), so a workflow built from some of the stage files
(a user's own Snakefile, the stage tests) checks only the stages it holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from .. import settings as emo_settings
from ..errors import ConfigError, InputTableError
from ..expression import chunk_ids, read_gene_column, reference_cohort
from ..sheets import load_sample_sheet, resolve_slide_paths, slide_batches
from ..splits import assign_splits, samples_in_splits

# Bytes of one float32 tile-feature row times the copies training keeps (raw, standardised,
# minibatch), for the memory estimate of a gene-chunk job.
_FEATURE_DIM_ESTIMATE = 1280


@dataclass(frozen=True)
class Plan:
    """DAG-time decisions (docs/architecture.md). Lists are sorted; dicts map sample or
    batch names to values."""

    config: dict                      # the config completed with the schema's defaults
    samples: pd.DataFrame             # the sample sheet, indexed by sample
    sample_names: list[str]
    sample_patient: dict[str, str]
    encoder: str
    cohort_roles: dict[str, str]
    splits_seed: int
    patient_splits: pd.DataFrame      # patient, cohort, split, split_source, n_slides
    train_samples: list[str]
    tune_samples: list[str]
    model_samples: list[str]          # train + tune: the slides models are fitted on
    slide_batches: dict[str, list[str]]
    reference_cohort: str
    used_cohorts: list[str]           # cohorts with a patient in the sheet
    training_store_patients: pd.DataFrame
    training_store_cohorts: list[str]
    expression_paths: dict[str, str]
    demo: dict = field(default_factory=dict)

    # ---------------------------------------------------------------- per sample
    def slide(self, sample: str) -> str:
        return str(self.samples.loc[sample, "slide"])

    def mpp(self, sample: str) -> float | None:
        """The sheet's mpp override, or None (read from the slide)."""
        value = self.samples.loc[sample, "mpp"]
        return float(value) if value != "" else None

    def mpps(self, samples) -> dict[str, float | None]:
        return {s: self.mpp(s) for s in samples}

    def samples_with_split(self, *splits: str) -> list[str]:
        return samples_in_splits(self.samples, self.patient_splits, splits)

    def section(self, name: str) -> dict:
        return self.config[name]

    # ---------------------------------------------------------------- gene models
    @cached_property
    def input_genes(self) -> list[str]:
        """The genes the models are trained on (the reference matrix's gene column)."""
        return _input_genes(self.config, self.reference_cohort, self.demo)

    @cached_property
    def gene_chunks(self) -> list[str]:
        return chunk_ids(len(self.input_genes), self.config["expression"]["gene_chunk_size"])

    # ---------------------------------------------------------------- stage checks
    @cached_property
    def heterogeneity_traits(self) -> list[str]:
        """The heterogeneity stage's traits ([] when the stage is disabled), checked."""
        return _heterogeneity_traits(self.config)

    def check_statistics_clinical(self) -> None:
        """An existing clinical table has the columns the statistics stage uses."""
        _check_clinical(self.config)

    def check_survival_clinical(self) -> None:
        """With heterogeneity and survival enabled, an existing clinical table has one row
        per patient and numeric survival columns (emo.survival.check_survival_columns)."""
        _check_survival_clinical(self.config)

    @cached_property
    def clinical_classifiers_run(self) -> bool:
        """The clinical-classifier stage runs: enabled, config key clinical set (the table is
        optional; without it there is nothing to classify) and, with ``labels: null``, an
        existing table holding at least one label column (a table of survival columns only
        gives no classifier; a listed label's absent column is refused instead)."""
        return _clinical_classifiers_run(self.config)

    @cached_property
    def headline_sources(self) -> tuple[dict[str, str], dict[str, str]]:
        """The result tables the report's headline numbers read (rule headline_numbers,
        emo.headline) and, per stage this config does not run, the reason."""
        from ..headline import headline_sources

        return headline_sources(self.config, self.encoder, self.clinical_classifiers_run, self.survival_entropy,
                                self.fusion_run)

    def check_clinical_classifiers(self) -> None:
        """Configured labels are known and an existing clinical table has their columns
        (emo.classifiers.clinical)."""
        _check_clinical_classifiers(self.config)

    @cached_property
    def fusion_run(self) -> bool:
        """The image + expression fusion stage runs: enabled and config key clinical set
        (its targets come from the clinical table)."""
        return bool(self.config["fusion"]["enabled"] and self.config.get("clinical"))

    def check_fusion(self) -> None:
        """Configured fusion targets are known, the attention heads divide the token width,
        and an existing clinical table has the targets' columns (emo.classifiers.fusion)."""
        _check_fusion(self.config, self.fusion_run)

    @cached_property
    def ki67_column(self) -> str | None:
        """Config statistics.ki67_column (None: the Ki67 rule is off), checked against an
        existing clinical table (a table the run generates is checked by the job)."""
        return _ki67_column(self.config)

    @cached_property
    def clinical_mapping_params(self) -> dict:
        """Params of the rules that read the clinical table: ``{"clinical_mapping": ...}``,
        or {} without a mapping (so the rules' params, and their outputs, stay as they were)."""
        mapping = _clinical_mapping(self.config)
        return {"clinical_mapping": mapping} if mapping["columns"] or mapping["values"] else {}

    @cached_property
    def survival_entropy(self) -> bool:
        """Survival is also analysed by the tumour-regions stage's composition entropy
        (config survival.composition_entropy; null = whenever the composition is computed)."""
        return _survival_entropy(self.config)

    # ---------------------------------------------------------------- tumour regions
    @cached_property
    def tumour_annotations(self) -> dict[str, str]:
        """{sample: annotation file} of the slides the tumour classifier trains on ({} when
        the stage is disabled), checked (docs/tumour_regions.md)."""
        return _tumour_annotations(self.config, self.sample_names, self.demo)

    @cached_property
    def tumour_selection(self) -> bool:
        """gene_models.tile_selection: tumour (checked: needs the tumour-regions stage)."""
        return _tumour_option(self.config, ("gene_models", "tile_selection"), "tumour")

    @cached_property
    def tumour_patient_slides(self) -> bool:
        """predictions.patient_slides: largest_tumour (checked likewise)."""
        return _tumour_option(self.config, ("predictions", "patient_slides"), "largest_tumour")

    # ---------------------------------------------------------------- features
    def feature_weights(self, encoder: str) -> list[str]:
        """The encoder's weights file as a rule input ([] for weights bundled in the job's
        Python environment, resolved there). A missing file raises ConfigError naming
        features.weights when the DAG is built."""
        from ..encoders import ENCODERS, configured_weights, resolve_weights

        configured = configured_weights(encoder, self.config["features"])
        if configured is None and ENCODERS[encoder].bundled:
            return []
        return [str(resolve_weights(encoder, configured))]

    def feature_mem_mb(self, encoder: str) -> int:
        """Memory of an extraction job: the encoder's estimate + batches in flight (uint8
        and float copies) + DataLoader workers, unless features.mem_mb is set."""
        from ..encoders import ENCODERS

        features = self.config["features"]
        if features["mem_mb"]:
            return int(features["mem_mb"])
        spec = ENCODERS[encoder]
        return int(spec.mem_mb + features["batch_size"] * spec.input_px ** 2 * 3 * 4 * 8 // 2**20
                   + 500 * features["num_workers"])

    # ---------------------------------------------------------------- tile geometry per encoder
    def tile_geometry(self, encoder: str):
        """The tile geometry of ``encoder``'s feature store (docs/features.md, "Scale")."""
        from ..encoders import encoder_geometry

        return encoder_geometry(encoder, self.config["features"], self.config["tiling"])[0]

    def geometry_source(self, encoder: str) -> str:
        """Where the encoder's geometry comes from: native, tiling or features.encoder_geometry.<encoder>."""
        from ..encoders import encoder_geometry

        return encoder_geometry(encoder, self.config["features"], self.config["tiling"])[1]

    @cached_property
    def extra_geometries(self) -> dict:
        """{name: Geometry} of every registry encoder's geometry that differs from the tiling
        config's: the stores of rule geometry_tile_slide, results/tiles/{name}/{sample}.h5."""
        from ..encoders import encoder_names, tiling_geometry

        base = tiling_geometry(self.config["tiling"])
        out: dict = {}
        for encoder in encoder_names():
            geometry = self.tile_geometry(encoder)
            if geometry == base:
                continue
            if out.get(geometry.name, geometry) != geometry:  # the name rounds tile_um to 6 digits
                raise ConfigError(f"config key features.encoder_geometry: geometries {out[geometry.name]} and "
                                  f"{geometry} share the tile-store name {geometry.name!r}; round tile_um")
            out[geometry.name] = geometry
        return out

    def tile_store(self, encoder: str, sample: str) -> str:
        """The tile store ``encoder``'s features (and everything drawn from them) use."""
        geometry = self.tile_geometry(encoder)
        if geometry.name in self.extra_geometries:
            return f"results/tiles/{geometry.name}/{sample}.h5"
        return f"results/tiles/{sample}.h5"

    def tiling_params(self, geometry_name: str | None = None) -> dict:
        """The tiling settings of a tile store: the tiling config, with tile_um / tile_px of
        geometry ``geometry_name`` (one of extra_geometries) if given."""
        tiling = dict(self.config["tiling"])
        if geometry_name is not None:
            geometry = self.extra_geometries[geometry_name]
            tiling.update(tile_um=geometry.tile_um, tile_px=geometry.tile_px)
        return tiling

    def feature_geometry(self, encoder: str) -> dict:
        """params.geometry of extract_features: the geometry the tile store must have and
        where it comes from (a change reruns extraction)."""
        geometry = self.tile_geometry(encoder)
        return {"tile_um": geometry.tile_um, "tile_px": geometry.tile_px, "source": self.geometry_source(encoder)}

    @property
    def feature_threads(self) -> int:
        features = self.config["features"]
        return int(features["threads"] or features["num_workers"] + 1)

    @property
    def gene_chunk_mem_mb(self) -> int:
        """Memory of a gene-chunk job: the training tile pool (raw + standardised copies)
        plus the heads' state, unless gene_models.mem_mb is set."""
        models = self.config["gene_models"]
        if models["mem_mb"]:
            return int(models["mem_mb"])
        tiles = len(self.model_samples) * (models["max_tiles_per_slide"] + models["tune_tiles_per_slide"])
        return int(1500 + tiles * _FEATURE_DIM_ESTIMATE * 4 * 3 // 2**20)

    @property
    def ridge_mem_mb(self) -> int:
        return int(2000 + len(self.model_samples) * _FEATURE_DIM_ESTIMATE * 8 * 4 / 2**20)


    # ---------------------------------------------------------------- cnn fine-tuning
    @cached_property
    def cnn_finetune_genes(self) -> list[str]:
        """The genes of ``cnn_finetune.genes`` (sorted) when the stage is enabled, else [].
        Each must be a gene of the reference expression matrix (checked here, when the
        DAG is built; the variance filter is checked by the job)."""
        section = self.config["cnn_finetune"]
        if not section["enabled"]:
            return []
        genes = sorted(section["genes"])
        if not genes:
            raise ConfigError("config key cnn_finetune.genes is empty but cnn_finetune.enabled is true: "
                              "list the genes to fine-tune (e.g. [ESR1, MKI67]) or set enabled: false")
        known = set(self.input_genes)
        unknown = [g for g in genes if g not in known]
        if unknown:
            raise ConfigError(f"config key cnn_finetune.genes: {unknown[:5]} not in the reference cohort's expression "
                              f"matrix ({self.expression_paths.get(self.reference_cohort, '')}); check the symbols")
        return genes

    @property
    def cnn_finetune_settings(self) -> dict:
        """``cnn_finetune`` without the stage switch, gene list and job resources: the
        settings a job computes with (its params; changing a resource reruns nothing)."""
        return {k: v for k, v in self.config["cnn_finetune"].items()
                if k not in ("enabled", "genes", "gpu", "threads", "mem_mb", "runtime")}

    @cached_property
    def cnn_finetune_predict_samples(self) -> list[str]:
        """Slides the fine-tuned models predict (``cnn_finetune.predict_splits``)."""
        return self.samples_with_split(*self.config["cnn_finetune"]["predict_splits"])


def _input_genes(config: Mapping, reference: str, demo: Mapping) -> list[str]:
    """Sorted genes of the reference cohort's matrix; before the demo generator has written
    it, the demo design's genes (the same list)."""
    path = Path(config["cohorts"][reference]["expression"])
    if path.is_file():
        return read_gene_column(path)
    if demo.get("enabled"):
        from ..demo.design import gene_names

        return sorted(gene_names(demo))
    raise InputTableError(f"expression matrix {path} of reference cohort {reference!r} does not exist; the gene "
                          "chunks are built from it (config key 'cohorts.<name>.expression')")


def _heterogeneity_traits(config: Mapping) -> list[str]:
    """Configured traits; null takes demo.heterogeneity_traits when the demo is enabled."""
    het = config["heterogeneity"]
    if not het["enabled"]:
        return []
    traits = het["traits"]
    if traits is None and config["demo"]["enabled"]:
        traits = config["demo"]["heterogeneity_traits"]
    if not traits:
        raise ConfigError(
            "config heterogeneity.traits: no traits given; list two or more genes of the expression matrix "
            "(e.g. [MKI67, FOXA1]) or set heterogeneity.enabled: false")
    traits = [str(t) for t in traits]
    if len(set(traits)) != len(traits) or len(traits) < 2:
        raise ConfigError(f"config heterogeneity.traits: {traits} must hold at least two distinct genes")
    if het["ensemble_size"] > het["rounds"]:
        raise ConfigError("config heterogeneity.ensemble_size must not exceed heterogeneity.rounds")
    tile_genes = config["predictions"]["tile_genes"]
    if het["continuous"]["source"] == "predictions" and isinstance(tile_genes, list):
        missing = [t for t in traits if t not in tile_genes]
        if missing:
            raise ConfigError(
                f"config heterogeneity.continuous.source is 'predictions' but predictions.tile_genes lacks "
                f"{missing}; add them there or set heterogeneity.continuous.source: classifier")
    return traits


def _tumour_annotations(config: Mapping, sample_names: list[str], demo: Mapping) -> dict[str, str]:
    """Annotated slides: the {sample}.geojson files of tumour_regions.annotations; with
    annotations null and the demo enabled, the demo's (written by demo_tables)."""
    section = config["tumour_regions"]
    if not section["enabled"]:
        return {}
    from ..tumour_regions import geojson, settings

    settings(section)  # tumour_classes within classes
    folder = section["annotations"]
    if folder is None:
        if not demo:
            raise ConfigError("config key 'tumour_regions.annotations' is null; give the folder of the "
                              "{sample}.geojson region annotations (QuPath export) or set tumour_regions.enabled: false")
        from ..demo.annotations import annotated_samples

        folder = f"{demo['out_dir']}/annotations"
        samples = annotated_samples(demo)
    else:
        samples = geojson.annotated_samples(folder, sample_names)
    if not samples:
        raise ConfigError(f"config key 'tumour_regions.annotations': no {{sample}}.geojson file in {folder}; the "
                          "tumour classifier needs annotated slides")
    return {s: f"{folder}/{s}.geojson" for s in samples}


def _tumour_option(config: Mapping, key: tuple[str, str], value: str) -> bool:
    on = config[key[0]][key[1]] == value
    if on and not config["tumour_regions"]["enabled"]:
        raise ConfigError(f"config key '{key[0]}.{key[1]}' is {value!r}, which needs the tumour-region classifier; "
                          "set tumour_regions.enabled: true (with tumour_regions.annotations) or "
                          f"{key[0]}.{key[1]}: all")
    return on


def _check_stain(config: Mapping) -> None:
    stain = config["stain_normalisation"]
    if stain["method"] == "macenko" and not Path(stain["reference"]).is_file():
        raise ConfigError(
            f"stain_normalisation.reference: {stain['reference']} does not exist (relative paths resolve "
            "against the working directory); copy resources/macenko_reference.json there or give an absolute path")


def check_spatial_samples(samples, sample_names, sheet_path: str, where: str) -> None:
    """ROI slides must be in the sample sheet (they need tiles and predictions)."""
    unknown = sorted(set(samples) - set(sample_names))
    if unknown:
        raise InputTableError(
            f"{where}: slide(s) {', '.join(unknown[:5])} are not in the sample sheet {sheet_path}; "
            "add them to the sheet (they need tiles and predictions) or remove their ROIs")


def check_rois_inside_slides(rois: pd.DataFrame, sheet: pd.DataFrame, where: str) -> None:
    """Every ROI lies inside its slide (level-0 size, mpp for µm ROIs from the sheet or
    the slide): each ROI slide is opened once, before any job, so an ROI off its slide is
    not found only after tiling, features, training and prediction."""
    from ..slides import check_slide
    from ..spatial import check_roi_inside, roi_vertices_px

    for sample, group in rois.groupby("sample", sort=True):
        mpp = sheet.loc[sample, "mpp"] if "mpp" in sheet.columns else ""
        info = check_slide(sample, sheet.loc[sample, "slide"], float(mpp) if mpp != "" else None)
        for roi in group.to_dict("records"):
            try:
                check_roi_inside(sample, roi["roi"], roi_vertices_px(roi, info.mpp), info.level0_width,
                                 info.level0_height)
            except InputTableError as error:
                raise InputTableError(f"{where}: {error}") from None


def _check_spatial(config: Mapping, sample_names: list[str], sheet: pd.DataFrame | None = None) -> None:
    spatial = config["spatial"]
    if not spatial["enabled"]:
        return
    for key in ("rois", "probe_counts"):
        if not spatial[key]:
            raise ConfigError(f"config key 'spatial.{key}' is required when 'spatial.enabled' is true")
    if not spatial["negative_probes"]:
        raise ConfigError("config key 'spatial.negative_probes' is empty; list the negative-control "
                          "probe columns of the probe-count table")
    from ..spatial import load_rois, required_genes

    # An existing ROI table is validated now (early, clear errors); a generated one (the
    # demo's) by the spatial_rois checkpoint.
    if Path(spatial["rois"]).is_file():
        rois = load_rois(spatial["rois"])
        check_spatial_samples(rois["sample"], sample_names, config["samples"], f"ROI table {spatial['rois']}")
    tile_genes = config["predictions"]["tile_genes"]
    if isinstance(tile_genes, list):
        missing = [g for g in required_genes(spatial) if g not in tile_genes]
        if missing:
            raise ConfigError(
                f"config key 'predictions.tile_genes' lacks {', '.join(missing)}, needed by "
                "'spatial.multi_gene_probes' / 'spatial.probe_gene_map' / 'spatial.proliferation_genes' (with "
                "'spatial.ki67'); add them to predictions.tile_genes or set it to 'all'")
    # last: it opens the ROI slides (the checks above need no file)
    if Path(spatial["rois"]).is_file() and sheet is not None and not config["demo"]["enabled"]:
        check_rois_inside_slides(load_rois(spatial["rois"]), sheet,
                                 f"ROI table {spatial['rois']} (config key 'spatial.rois')")


def _clinical_mapping(config: Mapping) -> dict:
    """Config key clinical_mapping, checked against the pipeline column names the config uses."""
    from ..stats.inputs import check_clinical_mapping, clinical_column_names

    return check_clinical_mapping(config.get("clinical_mapping"), clinical_column_names(config))


def _check_clinical(config: Mapping) -> None:
    """An existing clinical table must have the columns the configured statistics use."""
    path = config.get("clinical")
    if not path or not Path(path).is_file():
        return
    from ..stats import settings as statistics_settings
    from ..stats.inputs import check_clinical_columns, read_clinical

    stats = statistics_settings(config["statistics"])
    needed = {"pam50", "er"} | {c for c in stats["markers"].values() if c != "proliferation"}
    check_clinical_columns(read_clinical(path, _clinical_mapping(config)).columns, sorted(needed), path)


def _ki67_column(config: Mapping) -> str | None:
    column = config["statistics"]["ki67_column"]
    if column is None:
        return None
    path = config.get("clinical")
    if not path:
        raise ConfigError(f"config key 'statistics.ki67_column' is {column!r} but no clinical table is configured "
                          "(config key 'clinical'); set one or set statistics.ki67_column: null")
    if Path(path).is_file():
        from ..stats.inputs import read_clinical

        columns = read_clinical(path, _clinical_mapping(config)).columns
        if column not in columns:
            raise ConfigError(f"config key 'statistics.ki67_column' is {column!r} but the clinical table {path} "
                              f"has no such column (columns: {', '.join(map(str, columns))}); add the IHC Ki67 "
                              "column, map it with clinical_mapping, or set statistics.ki67_column: null")
    return column


def _survival_entropy(config: Mapping) -> bool:
    wanted = config["survival"]["composition_entropy"]
    computed = config["tumour_regions"]["enabled"] and config["tumour_regions"]["composition"]
    if not config["survival"]["enabled"] or wanted is False:
        return False
    if wanted and not computed:
        raise ConfigError("config key 'survival.composition_entropy' is true, but the composition entropy is computed "
                          "only with tumour_regions.enabled: true and tumour_regions.composition: true (and tissue-class "
                          "annotations); enable them or set survival.composition_entropy: null")
    return bool(computed)


def _check_survival_clinical(config: Mapping) -> None:
    """An existing clinical table is fit for the survival analysis when it will run. A
    table the run generates (the demo's) is checked by the survival job itself."""
    if not ((config["heterogeneity"]["enabled"] and config["survival"]["enabled"]) or _survival_entropy(config)):
        return
    path = config.get("clinical")
    if not path or not Path(path).is_file():
        return
    from ..stats.inputs import read_clinical
    from ..survival import check_survival_columns

    check_survival_columns(read_clinical(path, _clinical_mapping(config)),
                           f"clinical table {path} (config key 'clinical')")


def _clinical_classifiers_run(config: Mapping) -> bool:
    cfg = config["clinical_classifiers"]
    path = config.get("clinical")
    if not (cfg["enabled"] and path):
        return False
    if cfg["labels"] is not None or not Path(path).is_file():
        return True
    from ..classifiers.clinical import LABELS, label_classes
    from ..stats.inputs import read_clinical

    columns = set(read_clinical(path, _clinical_mapping(config)).columns)
    return any(label_classes(label, cfg)[0] in columns for label in LABELS)


def _check_clinical_classifiers(config: Mapping) -> None:
    """An existing clinical table holds the configured labels' columns (the stage runs
    when config key clinical is set). A table the run generates (the demo's) is checked
    by the job."""
    from ..classifiers.clinical import label_classes, resolve_labels

    cfg = config["clinical_classifiers"]
    for label in cfg["labels"] or []:
        label_classes(label, cfg)
    path = config.get("clinical")
    if not (_clinical_classifiers_run(config) and Path(path).is_file()):
        return
    from ..stats.inputs import read_clinical

    resolve_labels(cfg, read_clinical(path, _clinical_mapping(config)).columns,
                   f"clinical table {path} (config key 'clinical')")


def _check_fusion(config: Mapping, runs: bool) -> None:
    from ..classifiers.fusion import check_targets, target_spec
    from ..errors import ConfigError

    cfg = config["fusion"]
    for target in cfg["targets"]:
        target_spec(target, cfg)
    attention = cfg["cross_attention"]
    if attention["dim"] % attention["heads"]:
        raise ConfigError(f"config key 'fusion.cross_attention.heads': {attention['heads']} heads do not divide "
                          f"dim {attention['dim']}; choose heads dividing fusion.cross_attention.dim")
    if cfg["attention_figure_target"] is not None and cfg["attention_figure_target"] not in cfg["targets"]:
        raise ConfigError(f"config key 'fusion.attention_figure_target': {cfg['attention_figure_target']!r} is not "
                          f"one of fusion.targets {list(cfg['targets'])}")
    path = config.get("clinical")
    if not (runs and Path(path).is_file()):
        return
    from ..stats.inputs import read_clinical

    check_targets(cfg, read_clinical(path, _clinical_mapping(config)).columns,
                  f"clinical table {path} (config key 'clinical')")


def plan(config: Mapping[str, Any], sheet: pd.DataFrame | None = None) -> Plan:
    """The plan of one workflow run. ``config`` is validated and completed with the
    schema's defaults; ``sheet`` (default: read ``config['samples']``) is validated."""
    config = emo_settings.load(config)
    _clinical_mapping(config)  # a bad clinical_mapping fails now, naming the key, before the sheet is read
    if sheet is None:
        sheet = load_sample_sheet(config["samples"], cohorts=config["cohorts"].keys())
        # slides exist up front unless the demo generator makes them in this run
        sheet = resolve_slide_paths(sheet, config["samples"], require_existing=not config["demo"]["enabled"])
    sample_names = sorted(sheet.index)
    cohort_roles = {name: c["role"] for name, c in config["cohorts"].items()}
    seed = int(config["splits"]["seed"])
    patient_splits = assign_splits(sheet, cohort_roles, seed, config["splits"]["proportions"],
                                   by=config["splits"]["by"], site_source=config["splits"]["site_source"])
    model_samples = samples_in_splits(sheet, patient_splits, ("train", "tune"))
    model_set = set(model_samples)
    batches = slide_batches(sample_names, int(config["slide_batches"]),
                            groups={s: "train" if s in model_set else "eval" for s in sample_names})
    reference = reference_cohort(config["cohorts"])
    training_patients = patient_splits[patient_splits["cohort"].map(cohort_roles).eq("training")
                                       & patient_splits["split"].isin(["train", "tune", "validation"])]
    demo = {}
    if config["demo"]["enabled"]:
        from ..demo import design as demo_design

        demo = demo_design.settings(config["demo"])
        demo_design.check_cohorts(demo, config["cohorts"])
        demo_design.check_sheet(demo, sheet, config["samples"])
    _check_stain(config)
    _check_spatial(config, sample_names, sheet)
    from ..encoders import get_spec

    get_spec(config["features"]["encoder"])  # an unknown encoder fails now, naming features.encoder
    return Plan(
        config=config,
        samples=sheet,
        sample_names=sample_names,
        sample_patient={s: str(sheet.loc[s, "patient"]) for s in sample_names},
        encoder=config["features"]["encoder"],
        cohort_roles=cohort_roles,
        splits_seed=seed,
        patient_splits=patient_splits,
        train_samples=samples_in_splits(sheet, patient_splits, ("train",)),
        tune_samples=samples_in_splits(sheet, patient_splits, ("tune",)),
        model_samples=model_samples,
        slide_batches=batches,
        reference_cohort=reference,
        used_cohorts=sorted(set(patient_splits["cohort"])),
        training_store_patients=training_patients,
        training_store_cohorts=sorted(set(training_patients["cohort"])),
        expression_paths={name: c["expression"] for name, c in config["cohorts"].items()},
        demo=demo,
    )


def split_records(table: pd.DataFrame) -> list[dict]:
    """patient / cohort / split rows as plain dicts (rule params must be plain data)."""
    return table[["patient", "cohort", "split"]].to_dict("records")
