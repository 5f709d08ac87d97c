"""The embedded demo cohort with planted truth (synthetic H&E slides and tables).

- :mod:`emo.demo.design`: sample sheet, gene list and per-slide specifications from
  the ``demo:`` config (pure, used at DAG-build time).
- :mod:`emo.demo.layout` / :mod:`emo.demo.render` / :mod:`emo.demo.slides`: one slide.
- :mod:`emo.demo.tables`: expression, clinical, spatial tables and ``truth.json``.

See docs/demo_cohort.md for the generative model.
"""

from .design import COMPARTMENTS, gene_names, sample_sheet, settings  # noqa: F401
