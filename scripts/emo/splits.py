"""Patient-level train/tune/validation/test splits, stable under cohort growth.

Each patient of a training-role cohort gets a number ``u`` in [0, 1) from a seeded
hash of its ID (sha256 of ``"<seed>:<patient>"``). The cumulative proportions cut
[0, 1) into train | tune | validation | test, so a patient's split depends only on
its own ID and the seed: adding patients never moves existing ones. Patients of
external-role cohorts form the ``external`` split. A non-empty ``split`` column in the
sample sheet overrides the hash for that patient (``split_source = sample_sheet``).
All slides of a patient share the patient's split (splits are per patient).

Site-segregated splits (config ``splits.by: site``): the unit hashed is the patient's
tissue source site (sample-sheet column ``site``, or the TCGA barcode's field
``TCGA-<site>-...`` with ``splits.site_source: tcga_barcode``), so every patient of a
site lands in one split and a model cannot learn a site's stain as a proxy of a
site-correlated label (Ektefaie et al. 2021). Sites are ordered by a seeded hash of
their name and laid end to end by their number of patients; a site takes the split in
which the midpoint of its stretch falls, so the proportions hold by patient count as
closely as whole sites allow. :func:`check_no_leakage` refuses a split table in which a
site (or a patient) spans splits.
"""

from __future__ import annotations

import hashlib
import re
from typing import Mapping

import pandas as pd

from .errors import ConfigError, SampleSheetError

SPLITS = ("train", "tune", "validation", "test")
ALL_SPLITS = SPLITS + ("external",)
# EMO (Wang et al. 2021): 558/139/122/172 of 991 patients.
EMO_PROPORTIONS = {"train": 0.563, "tune": 0.140, "validation": 0.123, "test": 0.174}


def patient_unit(patient: str, seed: int) -> float:
    """Seeded hash of a patient ID mapped to [0, 1) (53 bits, exact in float64)."""
    digest = hashlib.sha256(f"{int(seed)}:{patient}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / float(1 << 53)


def check_proportions(proportions: Mapping[str, float] | None) -> dict[str, float]:
    """Complete proportions with EMO's defaults and check they sum to 1."""
    props = dict(EMO_PROPORTIONS)
    props.update(proportions or {})
    unknown = sorted(set(props) - set(SPLITS))
    if unknown:
        raise ConfigError(f"config key 'splits.proportions': unknown split(s) {unknown}; use {list(SPLITS)}")
    if any(float(props[s]) < 0 for s in SPLITS):
        raise ConfigError(f"config key 'splits.proportions': proportions must be >= 0, got {props}")
    total = sum(float(props[s]) for s in SPLITS)
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"config key 'splits.proportions': train+tune+validation+test must sum to 1, got "
                          f"{total:.6g} ({props}); e.g. EMO's {EMO_PROPORTIONS}")
    return {s: float(props[s]) for s in SPLITS}


def hashed_split(patient: str, seed: int, proportions: Mapping[str, float]) -> str:
    u = patient_unit(patient, seed)
    edge = 0.0
    for name in SPLITS:
        edge += proportions[name]
        if u < edge:
            return name
    return SPLITS[-1]  # u within rounding of 1.0


# TCGA barcode: TCGA-<tissue source site>-<participant>, e.g. TCGA-A2-A0CM (site A2, Walter Reed)
TCGA_BARCODE = re.compile(r"^TCGA-([A-Z0-9]{2})-[A-Z0-9]{4}", re.IGNORECASE)
SITE_SOURCES = ("sheet", "tcga_barcode")


def tcga_site(patient: str) -> str:
    """The tissue source site code of a TCGA barcode (``TCGA-A2-A0CM`` -> ``A2``)."""
    match = TCGA_BARCODE.match(str(patient))
    if match is None:
        raise SampleSheetError(
            f"patient {patient!r} is not a TCGA barcode (TCGA-XX-XXXX), so its tissue source site cannot be read "
            "from it (config key 'splits.site_source: tcga_barcode'); give the site in the sample sheet's 'site' "
            "column and set splits.site_source: sheet")
    return match.group(1).upper()


def patient_sites(sheet: pd.DataFrame, source: str) -> dict[str, str]:
    """{patient: site} from the sheet's ``site`` column (``source`` "sheet"; empty = unknown,
    left out) or from the patient IDs (``source`` "tcga_barcode"; an ID that is no TCGA
    barcode, e.g. an external hospital's, falls back to the column). A patient whose
    slides name different sites is refused."""
    if source not in SITE_SOURCES:
        raise ConfigError(f"config key 'splits.site_source': {source!r}; use one of {list(SITE_SOURCES)}")
    out: dict[str, str] = {}
    for patient, group in sheet.groupby("patient", sort=True):
        if source == "tcga_barcode" and TCGA_BARCODE.match(str(patient)):
            out[str(patient)] = tcga_site(str(patient))
            continue
        values = sorted({str(v) for v in group.get("site", pd.Series([""] * len(group))).fillna("") if str(v) != ""})
        if len(values) > 1:
            raise SampleSheetError(f"sample sheet, column 'site': patient {patient!r} has slides from sites "
                                   f"{values}; a patient's slides come from one tissue source site")
        if values:
            out[str(patient)] = values[0]
    return out


def site_splits(site_patients: Mapping[str, int], seed: int, proportions: Mapping[str, float]) -> dict[str, str]:
    """{site: split} for the sites of training cohorts (``site_patients``: site -> number of
    patients): sites in seeded-hash order, laid end to end by patient count; a site takes
    the split of its stretch's midpoint under the cumulative proportions."""
    total = float(sum(site_patients.values()))
    order = sorted(site_patients, key=lambda s: (patient_unit(f"site:{s}", seed), s))
    out, start = {}, 0.0
    for site in order:
        n = site_patients[site]
        midpoint = (start + n / 2.0) / total
        start += n
        edge, chosen = 0.0, SPLITS[-1]
        for name in SPLITS:
            edge += proportions[name]
            if midpoint < edge:
                chosen = name
                break
        out[site] = chosen
    return out


def check_no_leakage(table: pd.DataFrame, unit: str = "site") -> None:
    """A split table (one row per patient, columns ``patient``, ``split`` and ``unit``) in
    which one ``unit`` value (a site; a patient when ``unit`` is "patient", for tables
    with one row per slide) has members in more than one split is refused, naming the
    unit, its splits and members."""
    frame = table[table[unit].fillna("").astype(str) != ""] if unit != "patient" else table
    for value, group in frame.groupby(unit, sort=True):
        spans = sorted(set(group["split"]))
        if len(spans) > 1:
            members = "; ".join(f"{split}: {', '.join(sorted(set(group.loc[group['split'] == split, 'patient'])))[:200]}"
                                for split in spans)
            what = f"site {value!r}" if unit == "site" else f"{unit} {value!r}"
            raise SampleSheetError(
                f"split leakage: {what} spans splits {spans} ({members}); with config key 'splits.by: site' every "
                "patient of a site must be in one split: remove the sample sheet's 'split' overrides that separate "
                "them, or put the site's patients in one cohort")


def assign_splits(sheet: pd.DataFrame, cohort_roles: Mapping[str, str], seed: int,
                  proportions: Mapping[str, float] | None = None, by: str = "patient",
                  site_source: str = "sheet") -> pd.DataFrame:
    """Split table for the patients of a sample sheet.

    ``sheet`` needs columns ``patient``, ``cohort`` and optionally ``split`` and ``site``
    (one row per slide). ``by`` is the hashed unit: ``patient`` (the patient ID) or
    ``site`` (the patient's tissue source site, from ``site_source``: the sheet's ``site``
    column or the TCGA barcode; every training-cohort patient needs one). Returns one row
    per patient, sorted by patient, with columns ``patient, cohort, split, split_source,
    n_slides``, and ``site`` with ``by="site"`` (checked by :func:`check_no_leakage`).
    """
    props = check_proportions(proportions)
    if by not in ("patient", "site"):
        raise ConfigError(f"config key 'splits.by': {by!r}; use 'patient' or 'site'")
    if "split" not in sheet.columns:
        sheet = sheet.assign(split="")
    sites: dict[str, str] = {}
    site_split: dict[str, str] = {}
    if by == "site":
        sites = patient_sites(sheet, site_source)
        counts: dict[str, int] = {}
        for patient, cohort in sheet.groupby("patient", sort=True)["cohort"].first().items():
            if cohort_roles.get(str(cohort)) != "training":
                continue
            if str(patient) not in sites:
                if site_source == "tcga_barcode":
                    tcga_site(str(patient))  # raises, naming the patient
                raise SampleSheetError(
                    f"sample sheet, column 'site': patient {patient!r} (cohort {cohort!r}) has no tissue source "
                    "site; config key 'splits.by: site' needs one for every patient of a training cohort (fill "
                    "the 'site' column, or set splits.site_source: tcga_barcode for TCGA barcodes)")
            counts[sites[str(patient)]] = counts.get(sites[str(patient)], 0) + 1
        site_split = site_splits(counts, seed, props)
    rows = []
    for patient, group in sheet.groupby("patient", sort=True):
        cohort = str(group["cohort"].iloc[0])
        role = cohort_roles.get(cohort)
        if role is None:
            raise ConfigError(f"patient {patient!r}: cohort {cohort!r} is not under config key 'cohorts'")
        overrides = sorted({str(v) for v in group["split"].fillna("") if str(v) != ""})
        if len(overrides) > 1:
            raise SampleSheetError(f"sample sheet, column 'split': patient {patient!r} has slides in different "
                                   f"splits {overrides}; all slides of a patient must be in one split")
        if overrides:
            split, source = overrides[0], "sample_sheet"
            if split not in ALL_SPLITS:
                raise SampleSheetError(f"sample sheet, column 'split': patient {patient!r} has split {split!r}; "
                                       f"use one of {list(ALL_SPLITS)}")
            if role == "external" and split != "external":
                raise SampleSheetError(f"sample sheet, column 'split': patient {patient!r} of external cohort "
                                       f"{cohort!r} is given split {split!r}; patients of external cohorts can "
                                       "only be 'external' (change the cohort's role to 'training' to train on it)")
            if role == "training" and split == "external":
                raise SampleSheetError(f"sample sheet, column 'split': patient {patient!r} of training cohort "
                                       f"{cohort!r} is given split 'external'; use 'test' to hold it out, or "
                                       "move it to a cohort with role 'external'")
        elif role == "external":
            split, source = "external", "hash"
        elif by == "site":
            split, source = site_split[sites[str(patient)]], "site_hash"
        else:
            split, source = hashed_split(str(patient), seed, props), "hash"
        rows.append({"patient": str(patient), "cohort": cohort, "split": split, "split_source": source,
                     "n_slides": int(len(group)), "site": sites.get(str(patient), "")})
    columns = ["patient", "cohort", "split", "split_source", "n_slides"] + (["site"] if by == "site" else [])
    table = pd.DataFrame(rows, columns=["patient", "cohort", "split", "split_source", "n_slides", "site"])[columns]
    if by == "site":
        check_no_leakage(table, "site")
    return table


def samples_in_splits(sheet: pd.DataFrame, splits_table: pd.DataFrame, splits: tuple[str, ...]) -> list[str]:
    """Sorted sample names whose patient is in one of ``splits``."""
    wanted = set(splits_table.loc[splits_table["split"].isin(splits), "patient"])
    return sorted(str(s) for s, p in zip(sheet["sample"], sheet["patient"]) if p in wanted)
