"""Patient splits: no leakage, stability under growth, overrides, proportions."""

import numpy as np
import pandas as pd
import pytest

from emo import splits
from emo.errors import ConfigError, SampleSheetError

ROLES = {"TCGA": "training", "CLINSEQ": "training", "ABIM": "external"}
PROPS = {"train": 0.563, "tune": 0.140, "validation": 0.123, "test": 0.174}


def sheet_for(n_per_cohort, slides_every=3):
    rows = []
    for cohort, n in n_per_cohort.items():
        for i in range(n):
            patient = f"{cohort}-{i:04d}"
            for s in range(2 if i % slides_every == 0 else 1):
                rows.append({"sample": f"{patient}-{s}", "patient": patient, "cohort": cohort, "split": ""})
    return pd.DataFrame(rows)


def test_every_slide_of_a_patient_in_one_split_and_one_row_per_patient():
    sheet = sheet_for({"TCGA": 200, "CLINSEQ": 80, "ABIM": 30})
    table = splits.assign_splits(sheet, ROLES, 7, PROPS)
    assert table["patient"].is_unique
    assert list(table["patient"]) == sorted(table["patient"])
    assert table["n_slides"].sum() == len(sheet)
    merged = sheet.drop(columns="split").merge(table[["patient", "split"]], on="patient")
    assert (merged.groupby("patient")["split"].nunique() == 1).all()
    # samples_in_splits gives disjoint sample sets per split (no leakage)
    seen = set()
    for name in splits.ALL_SPLITS:
        members = set(splits.samples_in_splits(sheet, table, (name,)))
        assert not members & seen
        seen |= members
    assert seen == set(sheet["sample"])


def test_external_cohort_patients_are_external_and_training_ones_never():
    table = splits.assign_splits(sheet_for({"TCGA": 100, "ABIM": 20}), ROLES, 1, PROPS)
    assert (table.loc[table["cohort"] == "ABIM", "split"] == "external").all()
    assert (table.loc[table["cohort"] == "TCGA", "split"] != "external").all()


def test_proportions_are_respected_on_a_large_cohort():
    table = splits.assign_splits(sheet_for({"TCGA": 20000}, slides_every=10**9), ROLES, 3, PROPS)
    freq = table["split"].value_counts(normalize=True)
    for name, p in PROPS.items():
        # binomial sd at n=20000 is < 0.0035; 5 sd
        assert abs(freq[name] - p) < 0.018, (name, freq[name])


def test_stable_under_growth_and_deterministic():
    small = splits.assign_splits(sheet_for({"TCGA": 150, "CLINSEQ": 40}), ROLES, 11, PROPS)
    big = splits.assign_splits(sheet_for({"TCGA": 600, "CLINSEQ": 300, "ABIM": 50}), ROLES, 11, PROPS)
    again = splits.assign_splits(sheet_for({"TCGA": 150, "CLINSEQ": 40}), ROLES, 11, PROPS)
    pd.testing.assert_frame_equal(small, again)
    merged = small.merge(big, on="patient", suffixes=("_small", "_big"))
    assert len(merged) == len(small)
    assert (merged["split_small"] == merged["split_big"]).all()


def test_seed_changes_assignment():
    a = splits.assign_splits(sheet_for({"TCGA": 300}), ROLES, 1, PROPS)
    b = splits.assign_splits(sheet_for({"TCGA": 300}), ROLES, 2, PROPS)
    assert (a["split"] != b["split"]).mean() > 0.3


def test_sample_sheet_override_wins_and_is_marked():
    sheet = sheet_for({"TCGA": 50})
    hashed = splits.assign_splits(sheet, ROLES, 5, PROPS).set_index("patient")
    target = hashed.index[hashed["split"] != "test"][0]
    sheet.loc[sheet["patient"] == target, "split"] = "test"
    table = splits.assign_splits(sheet, ROLES, 5, PROPS).set_index("patient")
    assert table.loc[target, "split"] == "test"
    assert table.loc[target, "split_source"] == "sample_sheet"
    others = table.index != target
    assert (table.loc[others, "split_source"] == "hash").all()
    assert (table.loc[others, "split"] == hashed.loc[others, "split"]).all()


def test_conflicting_or_invalid_overrides_raise():
    sheet = sheet_for({"TCGA": 6, "ABIM": 3}, slides_every=1)
    bad = sheet.copy()
    first = bad["patient"].iloc[0]
    bad.loc[bad["patient"] == first, "split"] = ["train", "test"]
    with pytest.raises(SampleSheetError, match=first):
        splits.assign_splits(bad, ROLES, 0, PROPS)
    bad = sheet.copy()
    bad.loc[bad["cohort"] == "ABIM", "split"] = "train"
    with pytest.raises(SampleSheetError, match="external"):
        splits.assign_splits(bad, ROLES, 0, PROPS)


def test_proportions_must_sum_to_one():
    with pytest.raises(ConfigError, match="splits.proportions"):
        splits.check_proportions({"train": 0.9, "tune": 0.2, "validation": 0.1, "test": 0.1})
    assert splits.check_proportions(None) == splits.EMO_PROPORTIONS


def test_patient_unit_is_uniform():
    u = np.array([splits.patient_unit(f"P{i}", 0) for i in range(5000)])
    assert u.min() >= 0 and u.max() < 1
    hist = np.histogram(u, bins=10, range=(0, 1))[0]
    assert hist.min() > 400 and hist.max() < 600


# ----------------------------------------------------------------- site-segregated splits

def site_sheet(n_sites=12, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sites):
        for i in range(int(rng.integers(2, 15))):
            code = f"{chr(65 + s % 26)}{s // 26}"
            patient = f"TCGA-{code}-{i:04d}"
            rows.append({"sample": patient + "-01", "patient": patient, "cohort": "TCGA", "split": "",
                         "site": code})
    rows += [{"sample": f"ABIM-{i}", "patient": f"ABIM-{i}", "cohort": "ABIM", "split": "", "site": ""}
             for i in range(5)]
    return pd.DataFrame(rows)


def test_site_splits_keep_every_site_in_one_split_and_roughly_the_proportions():
    sheet = site_sheet(40)
    table = splits.assign_splits(sheet, ROLES, 7, PROPS, by="site")
    training = table[table["cohort"] == "TCGA"]
    assert (training.groupby("site")["split"].nunique() == 1).all()
    assert set(training["split_source"]) == {"site_hash"}
    assert set(table.loc[table["cohort"] == "ABIM", "split"]) == {"external"}
    share = training["split"].value_counts(normalize=True)
    for name, target in PROPS.items():
        assert abs(share.get(name, 0.0) - target) < 0.1, (name, share.to_dict())
    # the TCGA barcode gives the same sites as the column
    from_barcode = splits.assign_splits(sheet[sheet["cohort"] == "TCGA"].drop(columns="site"), ROLES, 7, PROPS,
                                        by="site", site_source="tcga_barcode")
    assert from_barcode[["patient", "split", "site"]].equals(training[["patient", "split", "site"]].reset_index(drop=True))
    # by patient (the default) is unchanged by a site column
    plain = splits.assign_splits(sheet.drop(columns="site"), ROLES, 7, PROPS)
    assert splits.assign_splits(sheet, ROLES, 7, PROPS).equals(plain)
    assert "site" not in plain.columns


def test_site_leakage_is_refused_naming_site_patients_and_splits():
    sheet = site_sheet(12)
    table = splits.assign_splits(sheet, ROLES, 7, PROPS, by="site")
    site = table.loc[table["cohort"] == "TCGA", "site"].iloc[0]
    members = table[table["site"] == site]
    other = next(s for s in ("train", "test") if s != members["split"].iloc[0])
    moved = members["patient"].iloc[0]
    sheet.loc[sheet["patient"] == moved, "split"] = other
    with pytest.raises(SampleSheetError, match=rf"site '{site}' spans splits .*{moved}"):
        splits.assign_splits(sheet, ROLES, 7, PROPS, by="site")
    # a site shared by a training and an external cohort spans train.. and external
    shared = site_sheet(12)
    shared.loc[shared["cohort"] == "ABIM", "site"] = site
    with pytest.raises(SampleSheetError, match="external"):
        splits.assign_splits(shared, ROLES, 7, PROPS, by="site")


def test_site_splits_need_a_site_for_every_training_patient():
    sheet = site_sheet(5)
    sheet.loc[3, "site"] = ""
    with pytest.raises(SampleSheetError, match=rf"patient '{sheet.loc[3, 'patient']}'.*no tissue source site"):
        splits.assign_splits(sheet, ROLES, 7, PROPS, by="site")
    with pytest.raises(SampleSheetError, match="'ABIM-0' is not a TCGA barcode"):
        splits.assign_splits(site_sheet(5), {"TCGA": "training", "ABIM": "training"}, 7, PROPS, by="site",
                             site_source="tcga_barcode")
    assert splits.tcga_site("TCGA-A2-A0CM") == "A2"
    assert splits.tcga_site("tcga-e9-a1n5-01a") == "E9"


def test_patient_leakage_check_on_a_slide_table():
    slides = pd.DataFrame({"patient": ["P1", "P1", "P2"], "split": ["train", "test", "test"]})
    with pytest.raises(SampleSheetError, match=r"patient 'P1' spans splits \['test', 'train'\]"):
        splits.check_no_leakage(slides, "patient")
    splits.check_no_leakage(slides.iloc[1:], "patient")
