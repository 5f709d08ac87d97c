"""Plausible slide resolutions (µm per level-0 pixel), shared by the sample-sheet check
(emo.sheets) and the slide check (emo.slides).

Microscope scans of H&E slides lie between about 0.1 µm/px (100x) and 2 µm/px (5x);
:data:`MPP_RANGE` leaves margin on both sides. A value outside it is a typo (25 for 0.25)
or a default image header (72 dpi gives 352.8 µm/px), never a real scan, and would make
hundreds of thousands of tiny tiles or a handful of huge ones.
"""

from __future__ import annotations

import math

MPP_RANGE = (0.05, 5.0)
# the decade usual scans fall in (10x..100x); a power-of-ten typo is mapped into it
_TYPICAL = (0.1, 1.0)
# mpp values image headers carry when nobody set a resolution
HEADER_DEFAULTS = {352.8: "a 72-dpi image header (25400 / 72)", 1000.0: "a 25.4-dpi (1 px/mm) default header",
                   264.6: "a 96-dpi image header (25400 / 96)", 84.7: "a 300-dpi image header (25400 / 300)",
                   25400.0: "a 1-dpi default header"}

RANGE_TEXT = f"{MPP_RANGE[0]:g}–{MPP_RANGE[1]:g} µm/px"
EXAMPLES = "0.25 for a 40x scan, 0.5 for 20x"


def plausible_mpp(value: float) -> bool:
    """``value`` is a finite resolution within :data:`MPP_RANGE` (inclusive)."""
    return math.isfinite(value) and MPP_RANGE[0] <= value <= MPP_RANGE[1]


def power_of_ten_guess(value: float) -> float | None:
    """The value ``value`` most likely stands for when it is off by a power of ten: the one
    ``value * 10**k`` (k != 0) in (0.1, 1.0] µm/px; None for values that no power of ten
    brings there, or that are already plausible."""
    if not (math.isfinite(value) and value > 0) or plausible_mpp(value):
        return None
    k = math.ceil(math.log10(_TYPICAL[0] / value) - 1e-12)  # smallest k with value * 10**k > 0.1
    guess = float(f"{value * 10.0 ** k:.6g}")
    if guess <= _TYPICAL[0]:
        guess = float(f"{value * 10.0 ** (k + 1):.6g}")
    return guess if _TYPICAL[0] < guess <= _TYPICAL[1] else None


def header_default(value: float) -> str | None:
    """What produced ``value`` when it is a known default-header resolution (within 0.1 %)."""
    for default, what in HEADER_DEFAULTS.items():
        if math.isclose(value, default, rel_tol=1e-3):
            return what
    return None
