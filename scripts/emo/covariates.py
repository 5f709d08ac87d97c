"""Clinical covariates as numbers, and the reasons one is left out of a model.

Shared by the ER+/ER- gene models (emo.stats.er_models) and the Cox models
(emo.survival) so both read a clinical table the same way."""

from __future__ import annotations

import pandas as pd

BINARY_CODES = {"positive": 1.0, "negative": 0.0, "pos": 1.0, "neg": 0.0, "1": 1.0, "0": 0.0,
                "true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0}


def encode(name: str, values: pd.Series) -> pd.Series:
    """Numbers as they are; positive/negative-style text as 1/0; anything else missing.
    ``nodes_positive`` becomes node status (1 if any positive node), as the paper's models use it."""
    numeric = pd.to_numeric(values, errors="coerce")
    text = values.astype("string").str.strip().str.lower()
    encoded = numeric.where(numeric.notna(), text.map(BINARY_CODES)).astype(float)
    if name == "nodes_positive":
        return (encoded > 0).astype(float).where(encoded.notna())
    return encoded


def screen(table: pd.DataFrame, covariates: list[str] | tuple[str, ...],
           max_missing_fraction: float = 1.0) -> tuple[dict[str, pd.Series], list[str]]:
    """Encode the requested covariates of ``table``; returns the usable ones (name -> values)
    and a 'name: reason' for each left out (absent, missing, constant)."""
    usable: dict[str, pd.Series] = {}
    dropped: list[str] = []
    for name in covariates:
        if name not in table.columns:
            dropped.append(f"{name}: absent from the clinical table")
            continue
        values = encode(name, table[name])
        if values.notna().sum() == 0 or values.isna().mean() > max_missing_fraction:
            dropped.append(f"{name}: missing (no usable numeric or positive/negative values"
                           + ("" if max_missing_fraction >= 1 else f" for > {max_missing_fraction:.0%} of patients")
                           + ")")
            continue
        if values.dropna().nunique() < 2:
            dropped.append(f"{name}: constant")
            continue
        usable[name] = values
    return usable, dropped


def drop_constant_after_filter(frame: pd.DataFrame, used: list[str], dropped: list[str]) -> pd.DataFrame:
    """A covariate can become constant after complete cases are taken: drop it (in place on the lists)."""
    for name in list(used):
        if frame[name].nunique() < 2:
            frame = frame.drop(columns=name)
            used.remove(name)
            dropped.append(f"{name}: constant")
    return frame
