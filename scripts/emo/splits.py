"""Patient-level train/tune/validation/test splits, stable under cohort growth.

Each patient of a training-role cohort gets a number ``u`` in [0, 1) from a seeded
hash of its ID (sha256 of ``"<seed>:<patient>"``). The cumulative proportions cut
[0, 1) into train | tune | validation | test, so a patient's split depends only on
its own ID and the seed: adding patients never moves existing ones. Patients of
external-role cohorts form the ``external`` split. A non-empty ``split`` column in the
sample sheet overrides the hash for that patient (``split_source = sample_sheet``).
All slides of a patient share the patient's split (splits are per patient).
"""

from __future__ import annotations

import hashlib
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


def assign_splits(sheet: pd.DataFrame, cohort_roles: Mapping[str, str], seed: int,
                  proportions: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Split table for the patients of a sample sheet.

    ``sheet`` needs columns ``patient``, ``cohort`` and optionally ``split``
    (one row per slide). Returns one row per patient, sorted by patient, with columns
    ``patient, cohort, split, split_source, n_slides``.
    """
    props = check_proportions(proportions)
    if "split" not in sheet.columns:
        sheet = sheet.assign(split="")
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
        else:
            split, source = hashed_split(str(patient), seed, props), "hash"
        rows.append({"patient": str(patient), "cohort": cohort, "split": split, "split_source": source,
                     "n_slides": int(len(group))})
    return pd.DataFrame(rows, columns=["patient", "cohort", "split", "split_source", "n_slides"])


def samples_in_splits(sheet: pd.DataFrame, splits_table: pd.DataFrame, splits: tuple[str, ...]) -> list[str]:
    """Sorted sample names whose patient is in one of ``splits``."""
    wanted = set(splits_table.loc[splits_table["split"].isin(splits), "patient"])
    return sorted(str(s) for s, p in zip(sheet["sample"], sheet["patient"]) if p in wanted)
