"""Patient-disjoint (and optionally group-disjoint, e.g. site-disjoint) cross-validation
folds, shared by every model of a comparison (issue 14: 5-fold patient-level CV with the
same folds for all models)."""

from __future__ import annotations

import hashlib
from typing import Iterable, Mapping

import pandas as pd


def _unit(seed: int, name: str) -> float:
    """Seeded hash of a name in [0, 1) (53 bits), as emo.splits.patient_unit."""
    digest = hashlib.sha256(f"{int(seed)}:{name}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / float(1 << 53)


def patient_folds(patients: Iterable[str], k: int, seed: int,
                  groups: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Assign each patient to one of ``k`` folds; returns ``patient, group, fold`` (fold
    0..k-1), sorted by patient.

    Without ``groups`` each patient is its own group. Groups (patient -> site, say) are
    kept whole: in seeded-hash order each group goes to the fold with the fewest patients
    so far (ties: the lower fold index), so fold sizes stay as even as whole groups allow. Deterministic for a given seed and
    patient set."""
    patients = sorted({str(p) for p in patients})
    if k < 2:
        raise ValueError(f"k-fold cross-validation needs k >= 2 folds, got {k}")
    group_of = {p: (str(groups[p]) if groups is not None and str(groups.get(p, "")) != "" else f"patient:{p}")
                for p in patients}
    members: dict[str, list[str]] = {}
    for p in patients:
        members.setdefault(group_of[p], []).append(p)
    if len(members) < k:
        raise ValueError(f"{len(members)} groups cannot fill {k} folds; lower k")
    order = sorted(members, key=lambda g: (_unit(seed, f"fold:{g}"), g))
    sizes = [0] * k
    fold_of: dict[str, int] = {}
    for g in order:
        fold = min(range(k), key=lambda f: (sizes[f], f))
        fold_of[g] = fold
        sizes[fold] += len(members[g])
    return pd.DataFrame({"patient": patients,
                         "group": [group_of[p] if not group_of[p].startswith("patient:") else "" for p in patients],
                         "fold": [fold_of[group_of[p]] for p in patients]})
