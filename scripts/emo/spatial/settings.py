"""Spatial-stage constants and the ``spatial`` config section."""

from __future__ import annotations

from typing import Mapping

# PAM50 proliferation signature (11 genes; Nielsen et al. 2010), current HGNC symbols
# (CDCA1 -> NUF2, KNTC2 -> NDC80).
PROLIFERATION_GENES = ("BIRC5", "CCNB1", "CDC20", "NUF2", "CEP55", "NDC80", "MKI67",
                       "PTTG1", "RRM2", "TYMS", "UBE2C")
ROI_ID_COLUMNS = ("sample", "roi")
MIN_ROIS_SPEARMAN = 3


def spatial_settings(config_section: Mapping | None) -> dict:
    """The ``spatial`` config section with the schema's defaults filled in."""
    from ..settings import section

    return section("spatial", config_section)
