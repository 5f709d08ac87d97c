"""The DAG plan (emo.workflow.plan): every DAG-time decision from the config and sheet."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from workflow_runner import make_workspace
from emo.errors import ConfigError, InputTableError, SampleSheetError
from emo.workflow.plan import plan


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A copy of config/ with the small test config; the working directory is the copy
    (relative paths in the config resolve against it, as in a real run)."""
    config_path = make_workspace(tmp_path)
    monkeypatch.chdir(tmp_path)
    return yaml.safe_load(config_path.read_text())


def test_plan_of_the_small_demo(workspace):
    result = plan(workspace)
    sheet = pd.read_csv(workspace["samples"], sep="\t", dtype=str, keep_default_na=False)
    assert result.sample_names == sorted(sheet["sample"])
    # model samples = train + tune slides, and only slides of training cohorts
    assert result.model_samples == sorted(result.train_samples + result.tune_samples)
    roles = {s: workspace["cohorts"][c]["role"] for s, c in zip(sheet["sample"], sheet["cohort"])}
    assert result.model_samples and all(roles[s] == "training" for s in result.model_samples)
    splits = dict(zip(result.patient_splits["patient"], result.patient_splits["split"]))
    assert all(splits[result.sample_patient[s]] == "train" for s in result.train_samples)
    # before the demo generator ran, the genes are the design's
    assert len(result.input_genes) == workspace["demo"]["n_genes"]
    assert len(result.gene_chunks) == math.ceil(len(result.input_genes) / workspace["expression"]["gene_chunk_size"])
    assert result.heterogeneity_traits == workspace["demo"]["heterogeneity_traits"]
    assert result.slide_batches == {}
    # defaults from the schema are filled in
    assert result.config["spatial"]["thumbnail_px"] == 1024


def test_slide_batches_keep_model_slides_apart(workspace):
    result = plan({**workspace, "slide_batches": 3})
    batched = [s for samples in result.slide_batches.values() for s in samples]
    assert sorted(batched) == result.sample_names
    for name, samples in result.slide_batches.items():
        in_model = {s in set(result.model_samples) for s in samples}
        assert in_model == ({True} if name.startswith("train") else {False}), name


@pytest.mark.parametrize("key, value, named", [
    ("slide_batch", 3, "'slide_batch' is not known (did you mean 'slide_batches'?)"),
    ("clinicl", "x.tsv", "'clinicl' is not known (did you mean 'clinical'?)"),
])
def test_unknown_top_level_key_fails_with_its_name(workspace, key, value, named):
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        plan({**workspace, key: value})


def test_unknown_nested_key_and_bad_value_are_named(workspace):
    bad = yaml.safe_load(yaml.safe_dump(workspace))
    bad["spatial"]["fdrr"] = 0.1
    with pytest.raises(ConfigError, match=r"'spatial.fdrr' is not known \(did you mean 'fdr'\?\)"):
        plan(bad)
    bad = yaml.safe_load(yaml.safe_dump(workspace))
    bad["gene_models"]["head"] = "transformer"
    with pytest.raises(ConfigError, match="gene_models.head"):
        plan(bad)


def _existing_slides(config):
    """Stand-in slide files, so the demo's sheet can be used with the demo off (slides then
    have to exist when the DAG is built)."""
    sheet = pd.read_csv(config["samples"], sep="\t", dtype=str)
    for slide in sheet["slide"]:
        Path(slide).parent.mkdir(parents=True, exist_ok=True)
        Path(slide).touch()


def test_genes_come_from_the_reference_matrix(workspace, tmp_path):
    matrix = tmp_path / "ref.tsv"
    pd.DataFrame({"gene": ["Z", "A", "M"], "P1": [1.0, 2.0, 3.0]}).to_csv(matrix, sep="\t", index=False)
    config = yaml.safe_load(yaml.safe_dump(workspace))
    config["cohorts"]["TCGA"]["expression"] = str(matrix)
    assert plan(config).input_genes == ["A", "M", "Z"]
    config["cohorts"]["TCGA"]["expression"] = str(tmp_path / "missing.tsv")
    config["demo"]["enabled"] = False
    _existing_slides(config)
    with pytest.raises(InputTableError, match="missing.tsv"):
        plan(config).gene_chunks


def test_heterogeneity_traits_are_checked(workspace):
    config = yaml.safe_load(yaml.safe_dump(workspace))
    config["heterogeneity"]["traits"] = ["MKI67"]
    with pytest.raises(ConfigError, match=r"'heterogeneity.traits': \['MKI67'\] is too short"):
        plan(config)
    config["heterogeneity"]["traits"] = ["MKI67", "PTPRC"]
    config["heterogeneity"]["ensemble_size"] = 9
    with pytest.raises(ConfigError, match="ensemble_size must not exceed"):
        plan(config).heterogeneity_traits
    config["heterogeneity"]["ensemble_size"] = 3
    config["heterogeneity"]["enabled"] = False
    assert plan(config).heterogeneity_traits == []


def test_stage_checks_run_only_for_the_stage_that_reads_them(workspace, tmp_path):
    """A workflow holding only some stage files (a user's own Snakefile, the stage tests)
    is not refused for a stage it does not contain; the stage itself still refuses."""
    config = _own_cohort(workspace, tmp_path, "patient\ter\nP1\tpositive\n")
    config["heterogeneity"]["traits"] = None
    result = plan(config)  # neither check runs here
    with pytest.raises(ConfigError, match="heterogeneity.traits: no traits given"):
        result.heterogeneity_traits
    with pytest.raises(InputTableError, match=r"clinical.tsv .*lacks column\(s\) her2, pam50, pr"):
        result.check_statistics_clinical()


def test_missing_slides_fail_when_the_demo_does_not_make_them(workspace):
    config = yaml.safe_load(yaml.safe_dump(workspace))
    config["demo"]["enabled"] = False
    with pytest.raises(SampleSheetError, match=r"column 'slide': \d+ slide file\(s\) not found"):
        plan(config)


def test_tile_store_per_encoder_geometry(workspace):
    """Each encoder's tile stores: the tiling config's geometry keeps results/tiles/{sample}.h5,
    other geometries (native scale, features.encoder_geometry) get results/tiles/{geometry}/."""
    workspace["features"]["encoder_geometry"] = {"resnet50": {"tile_um": 150.0, "tile_px": 224}}
    result = plan(workspace)
    s = result.sample_names[0]
    assert result.tile_store("efficientnet_lite0", s) == result.tile_store("inception_v3", s) == f"results/tiles/{s}.h5"
    assert result.tile_store("uni", s) == f"results/tiles/112um_224px/{s}.h5"
    assert result.tile_store("conch", s) == f"results/tiles/224um_448px/{s}.h5"
    assert result.tile_store("resnet50", s) == f"results/tiles/150um_224px/{s}.h5"
    assert sorted(result.extra_geometries) == ["112um_224px", "150um_224px", "224um_448px"]
    tiled = result.tiling_params("224um_448px")
    assert (tiled["tile_um"], tiled["tile_px"]) == (224.0, 448)
    others = lambda params: {k: v for k, v in params.items() if k not in ("tile_um", "tile_px")}  # noqa: E731
    assert others(tiled) == others(result.tiling_params()) == others(workspace["tiling"])
    assert result.tiling_params() == result.config["tiling"]
    assert result.feature_geometry("resnet50") == {"tile_um": 150.0, "tile_px": 224,
                                                   "source": "features.encoder_geometry.resnet50"}
    # features.geometry: tiling puts every encoder on the tiling config's stores
    workspace["features"] = {**workspace["features"], "geometry": "tiling", "encoder_geometry": {}}
    flat = plan(workspace)
    assert {flat.tile_store(e, s) for e in ("uni", "conch", "resnet50")} == {f"results/tiles/{s}.h5"}
    assert flat.extra_geometries == {}


def _own_cohort(config, tmp_path, clinical_rows: str, name: str = "clinical.tsv"):
    """The demo's sheet with the demo off, an existing matrix and the given clinical table."""
    config = yaml.safe_load(yaml.safe_dump(config))
    config["demo"]["enabled"] = False
    _existing_slides(config)
    matrix = tmp_path / "expr.tsv"
    pd.DataFrame({"gene": ["A", "B"], "P1": [1.0, 2.0]}).to_csv(matrix, sep="\t", index=False)
    config["cohorts"]["TCGA"]["expression"] = str(matrix)
    config["heterogeneity"]["traits"] = ["A", "B"]
    clinical = tmp_path / name
    clinical.write_text(clinical_rows)
    config["clinical"] = str(clinical)
    return config


def test_text_survival_coding_is_refused_when_the_dag_is_built(workspace, tmp_path):
    """heterogeneity.smk calls PLAN.check_survival_clinical() at DAG build: text codes (which
    became NaN and let survival run on no patient) fail before any job, naming the column."""
    rows = ("patient\tsurvival_time\tsurvival_event\tpam50\ter\tpr\ther2\n"
            "P1\t10\tdead\tLumA\tpositive\tpositive\tnegative\nP2\t20\talive\tLumA\tpositive\tpositive\tnegative\n")
    config = _own_cohort(workspace, tmp_path, rows)
    result = plan(config)  # the sheet and config are fine
    with pytest.raises(InputTableError) as error:
        result.check_survival_clinical()
    message = str(error.value)
    print(message)
    assert "clinical.tsv (config key 'clinical'), column 'survival_event'" in message
    assert "'dead', 'alive'" in message and "recode 'dead' as 1, 'alive' as 0" in message
    result.check_statistics_clinical()  # the statistics stage does not read survival
    config["survival"]["enabled"] = False
    plan(config).check_survival_clinical()  # survival off: not checked
    config["survival"]["enabled"] = True
    config["heterogeneity"]["enabled"] = False
    # without the HTI, survival by composition entropy (tumour_regions.composition) still reads it
    with pytest.raises(InputTableError, match="column 'survival_event'"):
        plan(config).check_survival_clinical()
    config["survival"]["composition_entropy"] = False
    plan(config).check_survival_clinical()


def test_duplicate_clinical_patients_are_refused_when_the_dag_is_built(workspace, tmp_path):
    rows = ("patient\tsurvival_time\tsurvival_event\tpam50\ter\tpr\ther2\n"
            + "".join(f"{p}\t10\t1\tLumA\tpositive\tpositive\tnegative\n" for p in ("P1", "P2", "P1", "P3", "P2", "P1")))
    result = plan(_own_cohort(workspace, tmp_path, rows))
    for check in (result.check_statistics_clinical, result.check_survival_clinical):
        with pytest.raises(InputTableError) as error:
            check()
        message = str(error.value)
        assert "2 patient(s) appear in more than one row: 'P1' (3 rows), 'P2' (2 rows)" in message
        assert "one row per patient" in message
    print(message)


def test_comma_separated_clinical_table_must_be_tab_separated(workspace, tmp_path):
    rows = "patient,survival_time,survival_event,pam50,er,pr,her2\nP1,10,1,LumA,positive,positive,negative\n"
    result = plan(_own_cohort(workspace, tmp_path, rows))
    for check in (result.check_statistics_clinical, result.check_survival_clinical):
        with pytest.raises(InputTableError, match=r"clinical.tsv \(config key 'clinical'\) is comma-separated "
                                                  r".*must be tab-separated"):
            check()


def test_site_splits_in_the_plan(workspace, tmp_path):
    """splits.by: site: the plan's split table keeps each site in one split; a sheet
    override that splits a site fails when the DAG is built, naming the site."""
    sheet = pd.read_csv(workspace["samples"], sep="\t", dtype=str, keep_default_na=False)
    sheet["site"] = [f"{c}-{int(p.split('-')[-1]) % 4}" for c, p in zip(sheet["cohort"], sheet["patient"])]
    path = tmp_path / "sites.tsv"
    sheet.to_csv(path, sep="\t", index=False)
    config = {**workspace, "samples": str(path), "splits": {**workspace["splits"], "by": "site"}}
    result = plan(config)
    table = result.patient_splits
    training = table[table["cohort"].isin(["TCGA", "CLINSEQ"])]
    assert (training.groupby("site")["split"].nunique() == 1).all()
    assert set(training["split"]) <= {"train", "tune", "validation", "test"}
    assert set(result.train_samples).isdisjoint(result.samples_with_split("test"))
    # the default (by patient) ignores the column: the same splits as without it
    assert plan({**workspace, "samples": str(path)}).patient_splits.equals(plan(workspace).patient_splits)
    site = training["site"].iloc[0]
    first = training[training["site"] == site]
    wrong = "test" if first["split"].iloc[0] != "test" else "train"
    sheet.loc[sheet["patient"] == first["patient"].iloc[0], "split"] = wrong
    sheet.to_csv(path, sep="\t", index=False)
    with pytest.raises(SampleSheetError, match=f"site '{site}' spans splits"):
        plan(config)


def test_clinical_classifier_labels_are_checked_against_an_existing_table(workspace, tmp_path):
    config = _own_cohort(workspace, tmp_path, "patient\ter\tpam50\nP1\tpositive\tLumA\n")
    config["clinical_classifiers"] = {"labels": ["er", "tp53"]}
    result = plan(config)
    assert result.clinical_classifiers_run
    with pytest.raises(InputTableError, match=r"label\(s\) \['tp53'\] listed in config key 'clinical_classifiers.labels'"):
        result.check_clinical_classifiers()
    config["clinical_classifiers"] = {"labels": None}
    plan(config).check_clinical_classifiers()
    del config["clinical"]
    assert not plan(config).clinical_classifiers_run  # the clinical table is optional: no stage without it
    # a table without any label column (survival only) gives no classifier, unless labels are listed
    config = _own_cohort(workspace, tmp_path, "patient\tsurvival_time\tsurvival_event\nP1\t3\t1\n", "surv.tsv")
    assert not plan(config).clinical_classifiers_run
    plan(config).check_clinical_classifiers()
    config["clinical_classifiers"] = {"labels": ["er"]}
    assert plan(config).clinical_classifiers_run
    with pytest.raises(InputTableError, match=r"label\(s\) \['er'\]"):
        plan(config).check_clinical_classifiers()


def test_fusion_targets_and_heads_are_checked_when_the_dag_is_built(workspace, tmp_path):
    config = _own_cohort(workspace, tmp_path, "patient\ter\tpam50\nP1\tpositive\tLumA\n")
    config["fusion"] = {"targets": ["pam50:Basal", "her2"]}
    result = plan(config)
    assert result.fusion_run
    with pytest.raises(InputTableError, match=r"column\(s\) \['her2'\] of the targets in config key 'fusion.targets'"):
        result.check_fusion()
    config["fusion"] = {"targets": ["pam50", "er"], "cross_attention": {"dim": 10, "heads": 4}}
    with pytest.raises(ConfigError, match="fusion.cross_attention.heads"):
        plan(config).check_fusion()
    config["fusion"] = {"targets": ["pam50", "er"]}
    plan(config).check_fusion()
    del config["clinical"]
    assert not plan(config).fusion_run


def _own_cohort_with_rois(tmp_path, rois: list[dict]) -> dict:
    """A one-slide user cohort (a real SVS, 2220 x 2967 px at 0.499 µm/px) with an ROI table."""
    from external_slides import cmu_small_region

    pd.DataFrame({"sample": ["S1"], "patient": ["P1"], "cohort": ["HOSPITAL"],
                  "slide": [str(cmu_small_region())]}).to_csv(tmp_path / "samples.tsv", sep="\t", index=False)
    pd.DataFrame({"gene": ["A", "B"], "P1": [1.0, 2.0]}).to_csv(tmp_path / "expression.tsv", sep="\t", index=False)
    pd.DataFrame(rois).to_csv(tmp_path / "rois.tsv", sep="\t", index=False)
    pd.DataFrame({"sample": ["S1"], "roi": ["r1"], "NegProbe": [1]}).to_csv(tmp_path / "counts.tsv", sep="\t",
                                                                          index=False)
    return {"samples": str(tmp_path / "samples.tsv"), "demo": {"enabled": False},
            "cohorts": {"HOSPITAL": {"expression": str(tmp_path / "expression.tsv"), "role": "training",
                                     "reference": True}},
            "heterogeneity": {"enabled": False},
            "spatial": {"enabled": True, "rois": str(tmp_path / "rois.tsv"), "probe_counts": str(tmp_path / "counts.tsv"),
                        "negative_probes": ["NegProbe"], "ki67": None},
            "predictions": {"tile_genes": "all"}}


@pytest.mark.parametrize("roi, inside", [
    ({"x": 100, "y": 100, "width": 500, "height": 500, "units": "px"}, True),
    ({"x": 2000, "y": 100, "width": 500, "height": 500, "units": "px"}, False),   # past the right edge
    ({"x": 100, "y": 100, "width": 1000, "height": 1000, "units": "um"}, True),   # 2004 px at 0.499 µm/px
    ({"x": 100, "y": 100, "width": 1500, "height": 1500, "units": "um"}, False),  # 3006 px: past both edges
])
def test_roi_off_its_slide_is_refused_before_any_job(tmp_path, roi, inside):
    config = _own_cohort_with_rois(tmp_path, [{"sample": "S1", "roi": "r1", "shape": "rect", **roi}])
    if inside:
        plan(config)
        return
    with pytest.raises(InputTableError, match=r"config key 'spatial.rois'.*slide 'S1', ROI 'r1'.*2220 x 2967 px"):
        plan(config)
