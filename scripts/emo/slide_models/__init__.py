"""Slide-level multi-gene models beside EMO's per-gene heads (docs/models.md):

- HE2RNA (Schmauch et al. 2020, paper 003): a per-tile MLP (1D convolutions of kernel 1)
  over a slide's super-tiles or tiles with all genes as outputs, trained on the mean of
  a random top-k of tile scores and predicting with the mean over the set of k.
- attention MIL regression (gated attention pooling, Ilse et al. 2018), multi-output,
  the CLAM/STAMP-style option.

Both are trained with patient-level k-fold cross-validation on the training slides
(train + tune splits); out-of-fold predictions for those patients, the mean of the fold
models for every other slide. Modules: :mod:`.bags` (super-tiles, tile bags, padding),
:mod:`.folds`, :mod:`.nets`, :mod:`.training`, :mod:`.pearson`, :mod:`.run`.
"""

MODELS = ("he2rna", "attention_mil")
