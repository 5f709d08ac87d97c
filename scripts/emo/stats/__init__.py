"""Gene-level statistics of EMO predictions (paper 001, "Model validation",
"Model selection for testing", proliferation score, PAM50 clustering, ER+/ER- models).

Submodules:

- :mod:`emo.stats.core`: vectorised Spearman, R², Benjamini-Hochberg, Bonferroni, ARI
  permutation/bootstrap helpers (checked against scipy/sklearn/statsmodels in tests).
- :mod:`emo.stats.inputs`: loading and aligning prepared expression, splits,
  predictions and the clinical table.
- :mod:`emo.stats.validation`: validation table, gene selection, internal/external tests.
- :mod:`emo.stats.clinical`: proliferation score, marker-by-status tests.
- :mod:`emo.stats.clustering`: PAM50 clustering concordance.
- :mod:`emo.stats.er_models`: ER+ vs ER- linear models.
"""

PROLIFERATION_GENES = ("BIRC5", "CCNB1", "CDC20", "NUF2", "CEP55", "NDC80", "MKI67", "PTTG1",
                       "RRM2", "TYMS", "UBE2C")

# PAM50 (Parker et al. 2009) with current HGNC symbols (ORC6L -> ORC6).
PAM50_GENES = ("ACTR3B", "ANLN", "BAG1", "BCL2", "BIRC5", "BLVRA", "CCNB1", "CCNE1", "CDC20", "CDC6",
               "CDH3", "CENPF", "CEP55", "CXXC5", "EGFR", "ERBB2", "ESR1", "EXO1", "FGFR4", "FOXA1",
               "FOXC1", "GPR160", "GRB7", "KIF2C", "KRT14", "KRT17", "KRT5", "MAPT", "MDM2", "MELK",
               "MIA", "MKI67", "MLPH", "MMP11", "MYBL2", "MYC", "NAT1", "NDC80", "NUF2", "ORC6",
               "PGR", "PHGDH", "PTTG1", "RRM2", "SFRP1", "SLC39A6", "TMEM45B", "TYMS", "UBE2C", "UBE2T")

def settings(config_section: dict | None) -> dict:
    """The ``statistics`` config section with the schema's defaults (``pam50.genes: null``
    = the 50 PAM50 genes)."""
    from ..settings import section

    merged = section("statistics", config_section)
    if merged["pam50"]["genes"] is None:
        merged["pam50"]["genes"] = list(PAM50_GENES)
    return merged
