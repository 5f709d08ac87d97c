"""Settings come from the config schema only (emo.settings), and the configuration page
is generated from it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from emo import settings
from emo.errors import ConfigError
from emo.workflow import config_docs

REPO = Path(__file__).resolve().parents[2]
SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())


def test_configuration_page_is_generated_from_the_current_schema():
    page = (REPO / "docs/configuration.md").read_text()
    assert page == config_docs.render(), "docs/configuration.md is stale: run `make docs`"


def test_every_schema_key_has_a_description():
    missing = []

    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            assert isinstance(sub, dict), f"{path}{key}: not a mapping (a YAML flow-mapping comma?)"
            assert all(v is not None for k, v in sub.items() if k != "default"), f"{path}{key}: a null entry (unquoted comma?)"
            if sub.get("type") == "object" and "properties" in sub:
                walk(sub, f"{path}{key}.")
            elif isinstance(sub.get("additionalProperties"), dict) and "properties" in sub["additionalProperties"]:
                walk(sub["additionalProperties"], f"{path}{key}.<name>.")
            elif "description" not in sub:
                missing.append(f"{path}{key}")
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and "properties" in extra:
            walk(extra, f"{path}<name>.")

    walk(SCHEMA, "")
    assert not missing, f"schema keys without a description: {missing}"


@pytest.mark.parametrize("section", ["tiling", "spatial", "statistics", "gene_models", "heterogeneity", "demo"])
def test_stage_defaults_are_the_schema_defaults(section):
    node = SCHEMA["properties"][section]
    values = settings.defaults(section)
    for key, sub in node["properties"].items():
        if "default" in sub:
            assert values[key] == settings.fill_defaults(sub, sub["default"]), f"{section}.{key}"


def test_library_settings_functions_use_the_schema():
    from emo import spatial, tiling
    from emo.gene_models import TrainConfig
    from emo.trait_classifiers import HeadConfig

    assert tiling.tiling_params(None) == settings.defaults("tiling")
    assert spatial.spatial_settings({"fdr": 0.1})["fdr"] == 0.1
    assert spatial.spatial_settings(None)["min_variance"] == SCHEMA["properties"]["spatial"]["properties"][
        "min_variance"]["default"]
    models = SCHEMA["properties"]["gene_models"]["properties"]
    assert TrainConfig.from_config({}).patience == models["patience"]["default"]
    classifier = SCHEMA["properties"]["heterogeneity"]["properties"]["classifier"]["properties"]
    assert HeadConfig.from_config({}).batch_size == classifier["batch_size"]["default"]


def test_section_rejects_unknown_keys_and_bad_values_by_name():
    with pytest.raises(ConfigError, match=r"'tiling.tile_size' is not known \(did you mean 'tile_px'\?\)|"
                                          r"'tiling.tile_size' is not known"):
        settings.section("tiling", {"tile_size": 3})
    with pytest.raises(ConfigError, match="'gene_models.dtype'"):
        settings.section("gene_models", {"dtype": "float16"})


def test_shipped_configs_are_valid():
    for path in ("config/config.yaml", "config/test/config.yaml"):
        completed = settings.load(yaml.safe_load((REPO / path).read_text()))
        assert completed["spatial"]["backend"] in ("lme4", "python"), path
