"""Demo cohort design: committed sample sheets, gene list, config defaults and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from emo.demo import design
from emo.errors import ConfigError
from emo.sheets import load_sample_sheet

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("config_path", ["config/config.yaml", "config/test/config.yaml"])
def test_committed_sheet_equals_design(config_path):
    config = yaml.safe_load((REPO / config_path).read_text())
    cfg = design.settings(config["demo"])
    committed = (REPO / config["samples"]).read_text()
    assert committed == design.sheet_text(cfg), (
        f"{config['samples']} differs from the demo design; regenerate with "
        f"`cd scripts && python -m emo.demo sheet ../{config_path} > ../{config['samples']}`")
    sheet = load_sample_sheet(REPO / config["samples"], cohorts=config["cohorts"].keys())
    assert set(sheet["cohort"]) == set(cfg["patients"])
    assert (sheet["slide"] == cfg["out_dir"] + "/slides/" + sheet["sample"] + ".svs").all()
    for cohort, n in cfg["patients"].items():
        assert sheet.loc[sheet["cohort"] == cohort, "patient"].nunique() == n
    design.check_cohorts(cfg, config["cohorts"])


def test_full_demo_has_about_five_percent_two_slide_patients():
    cfg = design.settings({})
    per_patient = design.sample_sheet(cfg).groupby("patient").size()
    assert per_patient.max() == 2
    share = (per_patient == 2).mean()
    assert 0.03 <= share <= 0.07, share
    assert len(per_patient) == sum(cfg["patients"].values())


def test_defaults_come_from_the_schema():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    props = schema["properties"]["demo"]["properties"]
    cfg = design.settings({})
    for key, spec in props.items():
        assert cfg[key] == spec["default"], key


def test_gene_list_full_panel():
    cfg = design.settings({})
    genes = design.gene_names(cfg)
    assert len(genes) == cfg["n_genes"] == 400
    assert len(set(genes)) == len(genes)
    assert set(design.PAM50) <= set(genes) and len(design.PAM50) == 50
    assert set(design.PROLIFERATION) <= set(genes) and len(design.PROLIFERATION) == 11
    assert {"ESR1", "PGR", "ERBB2"} <= set(genes)
    assert sum(g.startswith("KRT") for g in genes) >= 5
    specs = design.gene_specs(cfg)
    assert [s.name for s in specs] == genes
    types = pd.Series([s.type for s in specs]).value_counts()
    assert types["morphology"] == round(0.25 * 400)
    assert types["near_constant"] == 3
    assert 0.5 <= types["null"] / 400 <= 0.7
    by_name = {s.name: s for s in specs}
    assert all(by_name[g].drivers == {"tumour": 1.0} for g in design.PROLIFERATION)
    for trait in cfg["heterogeneity_traits"]:
        assert by_name[trait].type == "morphology"
    drivers = [next(iter(by_name[t].drivers)) for t in cfg["heterogeneity_traits"]]
    assert len(set(drivers)) == len(drivers), "heterogeneity traits need different driver compartments"


def test_gene_list_is_seed_independent_but_types_are_seeded():
    a, b = design.settings({"seed": 1}), design.settings({"seed": 2})
    assert design.gene_names(a) == design.gene_names(b)
    assert [s.type for s in design.gene_specs(a)] != [s.type for s in design.gene_specs(b)]


def test_compact_panel_and_errors():
    cfg = design.settings({"gene_panel": "compact", "n_genes": 60})
    genes = design.gene_names(cfg)
    assert len(genes) == 60 and set(design.PROLIFERATION) <= set(genes)
    assert set(design.MULTI_KRT) <= set(genes)
    with pytest.raises(ConfigError, match="demo.n_genes"):
        design.settings({"n_genes": 50})
    with pytest.raises(ConfigError, match="demo.heterogeneity_traits"):
        design.settings({"heterogeneity_traits": ["ESR1", "PTPRC"]})
    with pytest.raises(ConfigError, match="demo.gene_panel"):
        design.settings({"gene_panel": "huge"})
    with pytest.raises(ConfigError, match="NEWCOHORT"):
        design.check_cohorts(design.settings({"patients": {"NEWCOHORT": 3}}), {"TCGA": {}})


def test_slide_specs_deterministic_and_mixed():
    cfg = design.settings({})
    names = design.sample_names(cfg)
    specs = [design.slide_spec(cfg, s) for s in names]
    assert specs[5] == design.slide_spec(cfg, names[5])
    mpps = [s.mpp for s in specs]
    assert set(mpps) == {0.25, 0.5}
    assert 0.2 <= mpps.count(0.25) / len(mpps) <= 0.45
    assert all(s.width_um != s.height_um for s in specs)
    assert any(s.pen for s in specs) and any(s.blur for s in specs)
    with pytest.raises(ConfigError, match="not a demo sample"):
        design.slide_spec(cfg, "NOPE-1")


def test_st_samples_are_slides_of_the_sheet():
    cfg = design.settings({})
    st = design.st_samples(cfg)
    assert len(st) == cfg["st_slides"] == len(set(st))
    assert set(st) <= set(design.sample_names(cfg))


def test_sheet_check_names_the_sample():
    cfg = design.settings({"patients": {"TCGA": 5}})
    sheet = design.sample_sheet(cfg)
    design.check_sheet(cfg, sheet)
    other = design.sample_sheet(design.settings({"patients": {"TCGA": 5}, "seed": 99, "two_slide_fraction": 0.5}))
    bad = pd.concat([sheet, other]).drop_duplicates("sample")
    extra = sorted(set(bad["sample"]) - set(sheet["sample"]))
    assert extra
    with pytest.raises(ConfigError, match=extra[0]):
        design.check_sheet(cfg, bad, "sheet.tsv")
    # slides outside the demo folder are the user's own and not checked
    own = pd.DataFrame([{"sample": "X1", "patient": "P", "cohort": "TCGA", "slide": "/data/x.svs"}])
    design.check_sheet(cfg, pd.concat([sheet, own]))


def test_fat_rich_tumours_and_the_fat_cap():
    cfg = design.settings({"patients": {"TCGA": 300}})
    patients = design.patients(cfg)["patient"]
    rich = [p for p in patients if design.fat_rich(cfg, p)]
    assert 0.08 < len(rich) / len(patients) < 0.22
    fat = {p: design.patient_composition(cfg, p)["fat"] for p in patients}
    assert np.mean([fat[p] for p in rich]) > 0.4 > np.mean([fat[p] for p in patients if p not in rich])
    assert max(fat.values()) <= cfg["max_fat_fraction"] + 1e-12
    assert sum(v > 0.5 for v in fat.values()) >= 0.05 * len(patients)   # fat-dominated tumours exist


def test_site_stain_reaches_the_slide_spec_and_unknown_sites_are_refused():
    cfg = design.settings({"patients": {"TCGA": 4, "CLINSEQ": 4}, "site_stain": {"CLINSEQ": [1.3, 0.8]}})
    specs = {s: design.slide_spec(cfg, s) for s in design.sample_names(cfg)}
    assert {spec.stain for spec in specs.values() if spec.cohort == "CLINSEQ"} == {(1.3, 0.8)}
    assert {spec.stain for spec in specs.values() if spec.cohort == "TCGA"} == {(1.0, 1.0)}
    assert len({spec.tumour_grade for spec in specs.values()}) > 3
    with pytest.raises(ConfigError, match="demo.site_stain.*'XYZ'"):
        design.settings({"patients": {"TCGA": 4}, "site_stain": {"XYZ": [1.0, 1.0]}})
