"""Snakemake-facing glue: the DAG plan, settings, code versions and job helpers.

The domain library (every other ``emo`` package) knows nothing of Snakemake; the rule
files and entry scripts reach it through this package.
"""
