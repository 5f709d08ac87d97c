"""DAG-time decisions of the tumour-regions stage (emo.workflow.plan): which slides are
annotated (the demo's, or a folder's {sample}.geojson files), refused annotation folders
and options that need the stage."""

from __future__ import annotations

import pytest
import yaml

from emo.demo.annotations import annotated_samples
from emo.demo.design import settings as demo_settings
from emo.errors import ConfigError, InputTableError
from emo.workflow.plan import plan
from workflow_runner import make_workspace


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    config_path = make_workspace(tmp_path)
    monkeypatch.chdir(tmp_path)
    return yaml.safe_load(config_path.read_text())


def test_demo_annotations_are_planned(workspace):
    result = plan(workspace)
    annotated = result.tumour_annotations
    expected = annotated_samples(demo_settings(workspace["demo"]))
    assert sorted(annotated) == expected and len(expected) >= 2
    assert set(expected) <= set(result.sample_names)
    share = len(expected) / len(result.sample_names)
    assert abs(share - demo_settings(workspace["demo"])["annotated_fraction"]) < 0.05
    assert all(path == f"data/demo_test/annotations/{s}.geojson" for s, path in annotated.items())
    assert not result.tumour_selection and not result.tumour_patient_slides  # the demo keeps all tiles


def test_annotation_folder_of_own_files(workspace, tmp_path):
    folder = tmp_path / "annotations"
    folder.mkdir()
    sample = plan(workspace).sample_names[3]
    (folder / f"{sample}.geojson").write_text("[]")
    workspace["tumour_regions"]["annotations"] = str(folder)
    assert plan(workspace).tumour_annotations == {sample: f"{folder}/{sample}.geojson"}
    (folder / "NOT-A-SLIDE.geojson").write_text("[]")
    with pytest.raises(InputTableError, match="NOT-A-SLIDE.geojson .*name no sample of the sample sheet"):
        plan(workspace).tumour_annotations


def test_stage_without_annotations_or_demo_is_refused(workspace):
    workspace["demo"]["enabled"] = False
    workspace["tumour_regions"]["annotations"] = None
    from emo.workflow.plan import _tumour_annotations

    with pytest.raises(ConfigError, match="'tumour_regions.annotations' is null"):
        _tumour_annotations(workspace | {"tumour_regions": {**workspace["tumour_regions"], "enabled": True,
                                                            "classes": ["Tumor", "Stroma"],
                                                            "tumour_classes": ["Tumor"]}}, ["S1"], {})


def test_tumour_options_are_checked_against_the_stage(workspace):
    workspace["gene_models"]["tile_selection"] = "tumour"
    workspace["predictions"]["patient_slides"] = "largest_tumour"
    result = plan(workspace)
    assert result.tumour_selection and result.tumour_patient_slides
    workspace["tumour_regions"]["enabled"] = False
    with pytest.raises(ConfigError, match="gene_models.tile_selection"):
        plan(workspace).tumour_selection
    assert plan(workspace).tumour_annotations == {}
