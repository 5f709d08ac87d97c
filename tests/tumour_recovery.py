"""What the tumour-regions stage recovers of a demo cohort's planted truth (used by the
full demo's acceptance test; docs/tumour_regions.md quotes its numbers):

- the tumour/normal tile AUC against the planted compartment map (a tile is tumour when
  the planted tumour compartment holds at least half of its tissue), on the slides the
  classifier did not train on, and on those it did;
- the gene heads trained and averaged on all tiles vs on tumour tiles only
  (gene_models.tile_selection), side by side, per planted gene group, as the Spearman
  correlation of patient predictions with the prepared expression on the validation,
  test and external patients.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from emo import gene_models, io
from emo.demo.annotations import tile_compartment_fraction, tile_tumour_fraction
from emo.stores.expression import read_expression_frame, read_expression_store
from emo.stores.features import read_feature_store
from emo.stores.tumour_regions import read_classifier_store, read_tumour_tiles
from emo.tumour_regions import fraction_column, selected_rows

EVAL_SPLITS = ("validation", "test", "external")


def tile_auc(workdir: Path, demo_out: str, encoder: str) -> dict[str, float]:
    """Tile AUC (sklearn roc_auc_score) against the planted tumour share >= 0.5, pooled over
    the held-out (not annotated) slides and over the annotated ones."""
    tiles = read_tumour_tiles(workdir / f"results/tumour_regions/{encoder}/tiles.h5").slides
    annotated = set(read_classifier_store(workdir / f"results/tumour_regions/{encoder}/classifier.h5").samples)
    pooled = {"heldout": ([], []), "annotated": ([], [])}
    for sample, slide in tiles.items():
        with np.load(workdir / demo_out / "truth" / f"{sample}.npz", allow_pickle=False) as data:
            truth = {k: data[k] for k in data.files}
        share = tile_tumour_fraction(truth, slide.coords, slide.patch_size_level0)
        keep = np.isfinite(share)
        y, p = pooled["annotated" if sample in annotated else "heldout"]
        y.append(share[keep] >= 0.5)
        p.append(slide.probability[keep])
    out = {}
    for name, (y, p) in pooled.items():
        y, p = np.concatenate(y), np.concatenate(p)
        out[name] = float(roc_auc_score(y, p))
        out[f"{name}_tiles"] = int(len(y))
        out[f"{name}_tumour_tiles"] = int(y.sum())
    return out


def class_tile_auc(workdir: Path, demo_out: str, encoder: str) -> dict[str, tuple[float, int, int]]:
    """Per tissue class of the composition classifier: one-vs-rest tile AUC (sklearn) of its
    predicted class probability against "the planted compartment holds at least half of the
    tile's tissue", pooled over the slides the classifier did not train on.
    Returns {compartment: (auc, tiles, positive tiles)}."""
    import json as _json

    from emo.demo.annotations import QUPATH_CLASSES

    store = workdir / f"results/tumour_regions/{encoder}/tiles.h5"
    tiles = read_tumour_tiles(store)
    annotated = set(read_classifier_store(workdir / f"results/tumour_regions/{encoder}/classifier.h5").samples)
    classes = _json.loads(tiles.attrs["composition_classes"]) if isinstance(tiles.attrs.get("composition_classes"),
                                                                           str) else list(tiles.attrs["composition_classes"])
    by_name = {name: compartment for compartment, name in QUPATH_CLASSES.items()}
    pooled: dict[str, tuple[list, list]] = {}
    for sample, slide in tiles.slides.items():
        if sample in annotated or slide.composition is None:
            continue
        with np.load(workdir / demo_out / "truth" / f"{sample}.npz", allow_pickle=False) as data:
            truth = {k: data[k] for k in data.files}
        for k, name in enumerate(classes):
            compartment = by_name.get(name)
            if compartment is None:
                continue
            share = tile_compartment_fraction(truth, slide.coords, slide.patch_size_level0, compartment)
            keep = np.isfinite(share)
            y, p = pooled.setdefault(compartment, ([], []))
            y.append(share[keep] >= 0.5)
            p.append(slide.composition[keep, k])
    out = {}
    for compartment, (y, p) in pooled.items():
        y, p = np.concatenate(y), np.concatenate(p)
        if 0 < y.sum() < len(y):
            out[compartment] = (float(roc_auc_score(y, p)), int(len(y)), int(y.sum()))
    return out


def comparison_genes(workdir: Path, demo_out: str, genes: list[str], per_group: int = 12) -> dict[str, list[str]]:
    """Planted gene groups: tumour_cell (nuclear grade), morphology genes driven by the
    tumour share, morphology genes driven by another compartment (at most ``per_group``
    of each, the strongest planted first)."""
    truth = json.loads((workdir / demo_out / "truth.json").read_text())["genes"]
    groups: dict[str, list[tuple[float, str]]] = {"tumour_cell": [], "morphology_tumour_share": [],
                                                  "morphology_other": []}
    for gene in genes:
        spec = truth.get(gene)
        if not spec or spec["type"] not in ("tumour_cell", "morphology"):
            continue
        drivers = spec.get("drivers") or {}
        main = max(drivers, key=lambda k: abs(drivers[k])) if drivers else ""
        group = ("tumour_cell" if spec["type"] == "tumour_cell" else
                 "morphology_tumour_share" if main == "tumour" else "morphology_other")
        groups[group].append((-float(spec.get("r2") or 0.0), gene))
    return {k: [g for _, g in sorted(v)[:per_group]] for k, v in groups.items()}


def selection_comparison(workdir: Path, demo_out: str, encoder: str, gene_settings: dict, threshold: float,
                         per_group: int = 12) -> pd.DataFrame:
    """One row per gene: group, Spearman rho of the patient predictions with all tiles and
    with tumour tiles only (same settings, seeds and slides otherwise)."""
    splits = io.read_table(workdir / "results/splits/patients.tsv").set_index("patient")
    feature_dir = workdir / "results/features" / encoder
    stores = {p.stem: str(p) for p in sorted(feature_dir.glob("*.h5"))}
    sample_patient = {s: s.rsplit("-", 1)[0] for s in stores}  # demo samples are {patient}-{A|B}
    train = [s for s in stores if splits.loc[sample_patient[s], "split"] == "train"]
    tune = [s for s in stores if splits.loc[sample_patient[s], "split"] == "tune"]
    evaluate = [s for s in stores if splits.loc[sample_patient[s], "split"] in EVAL_SPLITS]
    expression = read_expression_store(workdir / "results/expression/training.h5")
    prepared = read_expression_frame(workdir / "results/expression/prepared.h5")
    groups = comparison_genes(workdir, demo_out, list(expression.genes), per_group)
    genes = sorted(g for v in groups.values() for g in v)
    model = read_classifier_store(workdir / f"results/tumour_regions/{encoder}/classifier.h5")
    cfg = gene_models.TrainConfig.from_config(gene_settings)
    rows = {g: {"gene": g, "group": k} for k, v in groups.items() for g in v}
    for label, tumour in (("all", None), ("tumour", (model, threshold))):
        state = gene_models.train_chunk(genes, expression, {s: stores[s] for s in train},
                                        {s: stores[s] for s in tune}, sample_patient, cfg, tumour)
        sums: dict[str, np.ndarray] = {}
        counts: dict[str, int] = {}
        for sample in evaluate:
            features = read_feature_store(stores[sample]).features
            use = selected_rows(model if tumour else None, features, threshold, sample, "evaluation")
            mean = gene_models.predict_features(state, features[use]).astype(np.float64).mean(0)
            patient = sample_patient[sample]
            sums[patient] = sums.get(patient, 0.0) + mean
            counts[patient] = counts.get(patient, 0) + 1
        patients = sorted(sums)
        predicted = pd.DataFrame([sums[p] / counts[p] for p in patients], index=patients, columns=state["genes"])
        for gene in genes:
            rho = spearmanr(predicted[gene], prepared.loc[patients, gene]).statistic
            rows[gene][f"rho_{label}"] = float(rho)
    table = pd.DataFrame(list(rows.values()))
    table["n_patients"] = len(patients)
    return table.sort_values(["group", "gene"]).reset_index(drop=True)


def composition_recovery(workdir: Path, demo_out: str, encoder: str) -> pd.DataFrame:
    """Per demo compartment, on the slides the classifier did not train on: Spearman rho
    between the predicted tile-class fraction and the planted area fraction; last row:
    the composition entropy against the entropy of the planted fractions."""
    from emo.demo.annotations import QUPATH_CLASSES
    from emo.tumour_regions.classifier import composition_entropy

    truth = json.loads((workdir / demo_out / "truth.json").read_text())["samples"]
    table = io.read_table(workdir / f"results/tumour_regions/{encoder}/composition.tsv").set_index("sample")
    annotated = set(read_classifier_store(workdir / f"results/tumour_regions/{encoder}/classifier.h5").samples)
    heldout = [s for s in table.index if s not in annotated]
    rows = []
    for compartment, name in QUPATH_CLASSES.items():
        column = fraction_column(name)
        if column not in table:
            continue
        planted = [truth[s]["fractions"][compartment] for s in heldout]
        rows.append({"compartment": compartment, "n_slides": len(heldout),
                     "rho": float(spearmanr(table.loc[heldout, column], planted).statistic)})
    planted_entropy = [composition_entropy(np.array(list(truth[s]["fractions"].values()))) for s in heldout]
    rows.append({"compartment": "composition_entropy", "n_slides": len(heldout),
                 "rho": float(spearmanr(table.loc[heldout, "composition_entropy"], planted_entropy).statistic)})
    return pd.DataFrame(rows)
