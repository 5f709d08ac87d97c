"""emo: expression-morphology analysis of breast tumour whole-slide images.

The importable library behind the Snakemake workflow. Rules call thin entry
scripts in ``scripts/``; all logic lives here and is unit-tested.
"""

__version__ = "0.1.0"
