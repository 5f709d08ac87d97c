"""Tables of the demo cohort from the per-slide truth: expression, clinical (with an IHC-like
Ki67 score), spatial transcriptomics (ROIs, probe counts, Ki67), a gene-set file with
planted and null pathways and ``truth.json`` with everything planted.

The generative model is documented in docs/demo_cohort.md; every random draw comes
from a generator seeded by ``demo.seed`` and a purpose string, so identical inputs
give byte-identical tables.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from ..errors import InputTableError
from ..io import atomic_write_text, write_tsv
from ..provenance import write_sidecar
from . import design
from .design import COMPARTMENTS, NAMED_DRIVERS, NEGATIVE_PROBES, rng_for

log = logging.getLogger("emo")

N_LATENT = 3  # patient-level latent factors behind the null genes


@dataclass
class SlideTruth:
    sample: str
    patient: str
    cohort: str
    labels: np.ndarray
    pen: np.ndarray
    blur: np.ndarray
    um_per_px: float
    mpp: float
    level0_width: int
    level0_height: int
    fractions: np.ndarray
    tissue_um2: float
    mixing_um: float


def load_truth(path: str | Path) -> SlideTruth:
    with np.load(path, allow_pickle=False) as data:
        return SlideTruth(str(data["sample"]), str(data["patient"]), str(data["cohort"]), data["labels"],
                          data["pen"].astype(bool), data["blur"].astype(bool), float(data["um_per_px"]),
                          float(data["mpp"]), int(data["level0_width"]), int(data["level0_height"]),
                          data["fractions"].astype(float), float(data["tissue_um2"]), float(data["mixing_um"]))


# ----------------------------------------------------------------------------- patients

def patient_fractions(truths: Iterable[SlideTruth]) -> pd.DataFrame:
    """Tissue-area-weighted compartment fractions over each patient's slides."""
    rows: dict[str, list] = {}
    for t in truths:
        rows.setdefault(t.patient, []).append((t.tissue_um2, t.fractions))
    out = {p: sum(w * f for w, f in v) / max(sum(w for w, _ in v), 1e-12) for p, v in rows.items()}
    return pd.DataFrame.from_dict(out, orient="index", columns=list(COMPARTMENTS)).sort_index()


def clinical_status(cfg: Mapping[str, Any], fractions: pd.DataFrame, cohort_of: Mapping[str, str]) -> pd.DataFrame:
    """Receptor status, subtype, TP53 and covariates per patient (before survival)."""
    rows = []
    for patient in fractions.index:
        rng, er, her2, pr, normal = design.receptor_draws(cfg, patient)  # Basal-like composition is planted from them
        tumour = fractions.loc[patient, "tumour"]
        if normal:
            pam50 = "Normal"
        elif not er and not her2:
            pam50 = "Basal"
        elif her2 and not er:
            pam50 = "Her2"
        elif her2 or tumour > 0.45:
            pam50 = "LumB"
        else:
            pam50 = "LumA"
        p_tp53 = {"Basal": 0.8, "Her2": 0.7, "LumB": 0.3, "LumA": 0.12, "Normal": 0.15}[pam50]
        rows.append({
            "patient": patient,
            "cohort": cohort_of[patient],
            "age": int(np.clip(round(rng.normal(58, 12)), 25, 92)),
            "er": "positive" if er else "negative",
            "pr": "positive" if pr else "negative",
            "her2": "positive" if her2 else "negative",
            "pam50": pam50,
            "tp53": "mutant" if rng.random() < p_tp53 else "wildtype",
            "tumour_size_mm": int(max(3, round(rng.lognormal(math.log(22), 0.45)))),
            "nodes_positive": int(rng.poisson(0.6 + 2.0 * tumour)),
        })
    return pd.DataFrame(rows).set_index("patient")


# ----------------------------------------------------------------------------- expression

def _standardise(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def driver_score(drivers: Mapping[str, float], fractions: pd.DataFrame | Mapping[str, float]) -> np.ndarray | float:
    return sum(w * np.asarray(fractions[c], dtype=float) for c, w in drivers.items())


def expression(cfg: Mapping[str, Any], fractions: pd.DataFrame, clinical: pd.DataFrame
               ) -> tuple[pd.DataFrame, dict[str, dict[str, float]], dict[str, dict]]:
    """Genes x patients log-expression, cohort offsets and per-gene truth."""
    specs = design.gene_specs(cfg)
    patients = list(fractions.index)
    n_p = len(patients)
    rng = rng_for(cfg["seed"], "expression")
    noise = rng.standard_normal((len(specs), n_p))
    latent = rng_for(cfg["seed"], "latent").standard_normal((N_LATENT, n_p))
    indicators = {
        "er": (clinical.loc[patients, "er"] == "positive").to_numpy(float),
        "her2": (clinical.loc[patients, "her2"] == "positive").to_numpy(float),
        "basal": (clinical.loc[patients, "pam50"] == "Basal").to_numpy(float),
    }
    cohort = clinical.loc[patients, "cohort"].to_numpy()
    grades = np.array([design.tumour_grade(cfg, p) for p in patients])
    offsets: dict[str, dict[str, float]] = {}
    offset_rng = rng_for(cfg["seed"], "batch_offsets")
    for name in design.cohorts(cfg):
        sd = float((cfg.get("batch_offset_sd") or {}).get(name, 0.0))
        draws = offset_rng.standard_normal(len(specs)) * sd
        if sd > 0:
            offsets[name] = {s.name: float(d) for s, d in zip(specs, draws) if s.type != "near_constant"}
    loadings_rng = rng_for(cfg["seed"], "loadings")
    values = np.empty((len(specs), n_p))
    truth: dict[str, dict] = {}
    for i, spec in enumerate(specs):
        entry: dict[str, Any] = {"type": spec.type, "mean": round(spec.mean, 6), "scale": round(spec.scale, 6)}
        if spec.type in ("morphology", "weak", "tumour_cell"):
            r2 = float(spec.r2)
            if spec.type == "tumour_cell":   # the tumour cells' grade, whatever the tumour's share
                z = _standardise(spec.drivers[design.TUMOUR_GRADE] * grades)
            else:
                z = _standardise(driver_score(spec.drivers, fractions))
            signal = math.sqrt(r2) * z + math.sqrt(1 - r2) * noise[i]
            entry.update(drivers=spec.drivers, r2=round(r2, 6))
        elif spec.type == "clinical":
            r2 = float(cfg["clinical_r2"])
            z = _standardise(sum(w * indicators[k] for k, w in spec.clinical.items()))
            signal = math.sqrt(r2) * z + math.sqrt(1 - r2) * noise[i]
            entry.update(clinical=spec.clinical, r2=r2)
        elif spec.type == "null":
            lam = loadings_rng.uniform(-0.45, 0.45, N_LATENT)
            signal = lam @ latent + math.sqrt(1 - float(lam @ lam)) * noise[i]
            entry.update(latent_loadings=[round(float(v), 6) for v in lam])
        else:  # near_constant
            signal = noise[i]
        values[i] = spec.mean + spec.scale * signal
        for name, per_gene in offsets.items():
            values[i, cohort == name] += per_gene.get(spec.name, 0.0)
        truth[spec.name] = entry
    table = pd.DataFrame(values, index=[s.name for s in specs], columns=patients)
    table.index.name = "gene"
    return table, offsets, truth


# ----------------------------------------------------------------------------- Ki67, gene sets

# Planted pathways hold the morphology genes whose strongest driver is one compartment and
# whose R² is at least this (the predictable ones); null pathways draw from the null genes.
GENE_SET_MIN_R2 = 0.3
N_NULL_SETS = 3
NULL_SET_SIZE = 15


def ki67_scores(cfg: Mapping[str, Any], fractions: pd.DataFrame) -> pd.Series:
    """Slide/patient-level IHC Ki67 index (% positive tumour nuclei) from the tumour's
    proliferation (its tumour share, which drives the proliferation genes) with noise; own
    random stream per patient, so no other demo value changes."""
    values = {}
    for patient in fractions.index:
        rng = rng_for(cfg["seed"], "ki67_ihc", patient)
        logit = -2.2 + 4.0 * float(fractions.loc[patient, "tumour"]) + rng.normal(0, 0.4)
        values[patient] = round(100.0 / (1.0 + math.exp(-logit)), 1)
    return pd.Series(values, name="ki67")


def demo_gene_sets(cfg: Mapping[str, Any], gene_truth: Mapping[str, dict]) -> list[dict[str, Any]]:
    """Gene sets of the demo: one planted pathway per compartment (morphology genes whose
    strongest driver it is, R² >= GENE_SET_MIN_R2) and N_NULL_SETS disjoint sets of null
    genes (own random stream). Sorted genes; names DEMO_PLANTED_<COMPARTMENT>, DEMO_NULL_<i>."""
    sets = []
    for compartment in COMPARTMENTS:
        genes = sorted(g for g, v in gene_truth.items()
                       if v["type"] == "morphology" and float(v.get("r2", 0)) >= GENE_SET_MIN_R2
                       and max(v["drivers"], key=lambda c: (abs(v["drivers"][c]), c)) == compartment)
        if genes:
            sets.append({"name": f"DEMO_PLANTED_{compartment.upper()}", "kind": "planted", "driver": compartment,
                         "genes": genes})
    null_pool = sorted(g for g, v in gene_truth.items() if v["type"] == "null")
    size = min(NULL_SET_SIZE, len(null_pool) // N_NULL_SETS)
    if size:
        drawn = rng_for(cfg["seed"], "null_gene_sets").choice(null_pool, size=size * N_NULL_SETS, replace=False)
        for i in range(N_NULL_SETS):
            sets.append({"name": f"DEMO_NULL_{i + 1}", "kind": "null", "driver": None,
                         "genes": sorted(drawn[i * size:(i + 1) * size].tolist())})
    return sets


def gene_sets_gmt(sets: Iterable[Mapping[str, Any]]) -> str:
    """GMT text (name, description, genes); the description says planted (driver) or null."""
    lines = []
    for s in sets:
        description = f"planted: {s['driver']}" if s["kind"] == "planted" else "null"
        lines.append("\t".join([s["name"], description, *s["genes"]]))
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- heterogeneity

def trait_drivers(cfg: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    return {g: dict(NAMED_DRIVERS[g]) for g in cfg["heterogeneity_traits"]}


def tile_grid(t: SlideTruth, tile_um: float) -> dict[str, np.ndarray]:
    """Per-tile tissue, pen, blur and compartment fractions on a ``tile_um`` grid from (0, 0)."""
    width_um, height_um = t.level0_width * t.mpp, t.level0_height * t.mpp
    nx, ny = int(width_um // tile_um), int(height_um // tile_um)
    lab = t.labels
    onehot = np.stack([lab == k for k in range(len(COMPARTMENTS) + 1)]).astype(np.float64)
    stack = np.concatenate([onehot, t.pen[None].astype(float), t.blur[None].astype(float)])
    integral = np.zeros((stack.shape[0], lab.shape[0] + 1, lab.shape[1] + 1))
    integral[:, 1:, 1:] = stack.cumsum(1).cumsum(2)
    edges_x = np.clip(np.round(np.arange(nx + 1) * tile_um / t.um_per_px).astype(int), 0, lab.shape[1])
    edges_y = np.clip(np.round(np.arange(ny + 1) * tile_um / t.um_per_px).astype(int), 0, lab.shape[0])
    y0, y1 = edges_y[:-1][:, None], edges_y[1:][:, None]
    x0, x1 = edges_x[:-1][None, :], edges_x[1:][None, :]
    sums = integral[:, y1, x1] - integral[:, y0, x1] - integral[:, y1, x0] + integral[:, y0, x0]
    area = np.maximum((y1 - y0) * (x1 - x0), 1)
    frac = sums / area
    tissue = 1.0 - frac[0]
    comp = frac[1:len(COMPARTMENTS) + 1] / np.maximum(tissue, 1e-12)
    return {"tissue": tissue, "pen": frac[-2], "blur": frac[-1], "compartments": comp}


def hti_from_traits(positive: np.ndarray) -> tuple[float, np.ndarray]:
    """HTI (paper 002) from a (tiles, k) boolean trait matrix; tiles with no trait excluded."""
    k = positive.shape[1]
    codes = positive.astype(int) @ (1 << np.arange(k))
    codes = codes[codes > 0]
    n_comb = (1 << k) - 1
    counts = np.bincount(codes, minlength=n_comb + 1)[1:]
    if codes.size == 0:
        return 0.0, counts
    p = counts[counts > 0] / codes.size
    return max(0.0, float(-(p * np.log(p)).sum() / math.log(n_comb))), counts


def slide_hti(cfg: Mapping[str, Any], t: SlideTruth) -> dict[str, Any]:
    grid = tile_grid(t, float(cfg["heterogeneity_tile_um"]))
    keep = (grid["tissue"] >= 0.5) & (grid["pen"] <= 0.05) & (grid["blur"] < 0.5)
    comp = {c: grid["compartments"][i][keep] for i, c in enumerate(COMPARTMENTS)}
    traits = trait_drivers(cfg)
    positive = np.stack([driver_score(drivers, comp) >= float(cfg["heterogeneity_trait_threshold"])
                         for drivers in traits.values()], axis=1)
    hti, counts = hti_from_traits(positive)
    return {"hti": hti, "n_tiles": int(keep.sum()), "combination_counts": counts.tolist()}


ENTROPY_CENTRE = 0.65  # about the demo's median patient composition entropy


def composition_entropy(fractions: pd.DataFrame) -> pd.Series:
    """Shannon entropy of each patient's compartment fractions, in units of log K (K = 5)."""
    f = fractions.to_numpy(float)
    f = f / np.clip(f.sum(1, keepdims=True), 1e-12, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(f > 0, f * np.log(f), 0.0)
    return pd.Series(-terms.sum(1) / math.log(f.shape[1]), index=fractions.index)


def survival(cfg: Mapping[str, Any], patient_hti: pd.Series, patient_entropy: pd.Series) -> pd.DataFrame:
    """Exponential survival with log-hazard beta_h * (HTI - 0.5) + beta_e * (entropy - 0.65);
    uniform censoring. The same exponential and censoring draws whatever the betas."""
    beta = float(cfg["heterogeneity_log_hr"])
    beta_entropy = float(cfg["composition_entropy_log_hr"])
    base = math.log(2) / 60.0  # median 60 months at HTI 0.5 and entropy 0.65
    rows = []
    for patient, hti in patient_hti.items():
        rng = rng_for(cfg["seed"], "survival", patient)
        e, censor = rng.exponential(1.0), rng.uniform(24.0, 150.0)
        log_hazard = beta * (hti - 0.5) + beta_entropy * (float(patient_entropy[patient]) - ENTROPY_CENTRE)
        time = e / (base * math.exp(log_hazard))
        rows.append({"patient": patient, "survival_time": round(min(time, censor), 3),
                     "survival_event": int(time <= censor)})
    return pd.DataFrame(rows).set_index("patient")


# ----------------------------------------------------------------------------- spatial

def _roi_mask(t: SlideTruth, roi: Mapping[str, Any]) -> np.ndarray:
    """Truth-grid cells whose centre lies in the ROI (level-0 px geometry)."""
    h, w = t.labels.shape
    scale = t.um_per_px / t.mpp  # level-0 px per truth cell
    cy = (np.arange(h) + 0.5) * scale
    cx = (np.arange(w) + 0.5) * scale
    if roi["shape"] == "rect":
        return ((cy[:, None] >= roi["y"]) & (cy[:, None] < roi["y"] + roi["height"])
                & (cx[None, :] >= roi["x"]) & (cx[None, :] < roi["x"] + roi["width"]))
    from matplotlib.path import Path as MplPath
    path = MplPath(np.asarray(roi["vertices"], dtype=float))
    yy, xx = np.meshgrid(cy, cx, indexing="ij")
    return path.contains_points(np.stack([xx.ravel(), yy.ravel()], 1)).reshape(h, w)


def place_rois(cfg: Mapping[str, Any], t: SlideTruth) -> list[dict[str, Any]]:
    rng = rng_for(cfg["seed"], "rois", t.sample)
    lo, hi = (int(v) for v in cfg["st_rois_per_slide"])
    n_target = int(rng.integers(lo, hi + 1))
    tissue = t.labels > 0
    width_um, height_um = t.level0_width * t.mpp, t.level0_height * t.mpp
    boxes: list[tuple[float, float, float, float]] = []
    tries = 4000
    for attempt in range(tries):
        if len(boxes) == n_target:
            break
        # ROIs of 300-500 µm; shrink towards 150 µm when a small slide leaves no room
        w, h = rng.uniform(300, 500, 2) * max(0.3, 1.0 - attempt / tries)
        x, y = rng.uniform(0, width_um - w), rng.uniform(0, height_um - h)
        r0, r1 = int(y / t.um_per_px), int((y + h) / t.um_per_px)
        c0, c1 = int(x / t.um_per_px), int((x + w) / t.um_per_px)
        if tissue[r0:r1, c0:c1].mean() < 0.6:
            continue
        overlap = any(max(0, min(x + w, bx + bw) - max(x, bx)) * max(0, min(y + h, by + bh) - max(y, by))
                      > 0.1 * min(w * h, bw * bh) for bx, by, bw, bh in boxes)
        if not overlap:
            boxes.append((x, y, w, h))
    rois = []
    for i, (x, y, w, h) in enumerate(boxes):
        px = [round(v / t.mpp) for v in (x, y, w, h)]
        roi: dict[str, Any] = {"sample": t.sample, "roi": f"ROI{i + 1:02d}"}
        if i == len(boxes) - 1:  # one polygon per slide: a hexagon inscribed in the box
            cx, cy, rx, ry = px[0] + px[2] / 2, px[1] + px[3] / 2, px[2] / 2, px[3] / 2
            ang = np.arange(6) * math.pi / 3
            verts = [(round(cx + rx * math.cos(a)), round(cy + ry * math.sin(a))) for a in ang]
            roi.update(shape="polygon", units="px", vertices=verts,
                       polygon=",".join(f"{vx} {vy}" for vx, vy in verts))
        elif rng.random() < 0.25:
            roi.update(shape="rect", units="um", x=round(px[0] * t.mpp, 2), y=round(px[1] * t.mpp, 2),
                       width=round(px[2] * t.mpp, 2), height=round(px[3] * t.mpp, 2))
        else:
            roi.update(shape="rect", units="px", x=px[0], y=px[1], width=px[2], height=px[3])
        geometry = dict(roi)
        if roi["shape"] == "rect" and roi["units"] == "um":
            geometry.update({k: roi[k] / t.mpp for k in ("x", "y", "width", "height")})
        mask = _roi_mask(t, geometry) & tissue
        counts = np.bincount(t.labels[mask], minlength=len(COMPARTMENTS) + 1)[1:]
        roi["composition"] = {c: float(v) for c, v in zip(COMPARTMENTS, counts / max(counts.sum(), 1))}
        rois.append(roi)
    return rois


def spatial_tables(cfg: Mapping[str, Any], truths: Mapping[str, SlideTruth], gene_truth: Mapping[str, dict]):
    """ROI table, probe counts, Ki67 and the spatial truth."""
    panel = set(gene_truth)
    samples = [s for s in design.st_samples(cfg) if s in truths]
    planted = sorted(g for g in design.ST_PLANTED if g in panel)
    null_pool = sorted(g for g, v in gene_truth.items() if v["type"] == "null")
    n_null = min(int(cfg["st_null_probes"]), len(null_pool))
    null = sorted(rng_for(cfg["seed"], "null_probes").choice(null_pool, size=n_null, replace=False).tolist())
    multi = {name: [g for g in genes if g in panel] for name, genes in
             (("multi-krt", design.MULTI_KRT), ("multi-col", design.MULTI_COL))}
    multi = {k: v for k, v in multi.items() if v}
    rois = [roi for s in samples for roi in place_rois(cfg, truths[s])]
    if not rois:
        raise InputTableError("demo: no ROI could be placed on the spatial slides; raise demo.st_slides or "
                              "check demo.slide_size_um")
    comp = pd.DataFrame([r["composition"] for r in rois])
    roi_sample = np.array([r["sample"] for r in rois])
    rng = rng_for(cfg["seed"], "probe_counts")
    n = len(rois)
    technical = np.exp(rng.normal(0, 0.25, n))
    background = 15.0 * np.exp(rng.normal(0, 0.1, n))
    effect = 0.9  # log-units per ROI-sd of the driver score

    def slide_offsets(sd: float) -> np.ndarray:
        per_slide = {s: rng.normal(0, sd) for s in samples}
        return np.array([per_slide[s] for s in roi_sample])

    def planted_mean(gene: str, base: float) -> np.ndarray:
        z = _standardise(driver_score(gene_truth[gene]["drivers"], comp))
        return np.exp(math.log(base) + effect * z + slide_offsets(0.3) + rng.normal(0, 0.2, n))

    expected: dict[str, np.ndarray] = {}
    for gene in planted:
        expected[gene] = planted_mean(gene, rng.uniform(60, 600))
    for gene in null:
        expected[gene] = np.exp(math.log(rng.uniform(60, 600)) + slide_offsets(0.3) + rng.normal(0, 0.35, n))
    for name, genes in multi.items():
        expected[name] = sum(planted_mean(g, rng.uniform(30, 200)) for g in genes)
    counts = {p: rng.poisson(technical * (expected[p] + background)) for p in sorted(expected)}
    for neg in NEGATIVE_PROBES:
        counts[neg] = rng.poisson(technical * background * np.exp(rng.normal(0, 0.1, n)))
    probe_table = pd.DataFrame({"sample": roi_sample, "roi": [r["roi"] for r in rois], **counts})
    ki67_logit = -2.2 + 3.5 * comp["tumour"].to_numpy() + slide_offsets(0.3) + rng.normal(0, 0.25, n)
    ki67 = pd.DataFrame({"sample": roi_sample, "roi": [r["roi"] for r in rois],
                         "ki67": np.round(1 / (1 + np.exp(-ki67_logit)), 4)})
    roi_table = pd.DataFrame([{k: r.get(k, "") for k in ("sample", "roi", "shape", "units", "x", "y", "width",
                                                          "height", "polygon")} for r in rois])
    spatial_truth = {
        "slides": samples,
        "planted_probes": planted + sorted(multi),
        "null_probes": null,
        "negative_probes": list(NEGATIVE_PROBES),
        "multi_gene_probes": multi,
        "effect_per_sd": effect,
        "roi_composition": {f"{r['sample']}/{r['roi']}": {c: round(v, 6) for c, v in r["composition"].items()}
                            for r in rois},
        "ki67_model": "logit(ki67) = -2.2 + 3.5 * tumour_fraction(ROI) + slide offset N(0, 0.3^2) + N(0, 0.25^2)",
    }
    return roi_table, probe_table, ki67, spatial_truth


# ----------------------------------------------------------------------------- all tables

def _round(obj: Any, digits: int = 6) -> Any:
    if isinstance(obj, float):
        return round(obj, digits)
    if isinstance(obj, dict):
        return {k: _round(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_round(v, digits) for v in obj]
    return obj


def build(demo_cfg: Mapping[str, Any], truth_paths: Iterable[str | Path]) -> dict[str, Any]:
    """All demo tables (DataFrames) and the truth dictionary from the per-slide truth files."""
    cfg = design.settings(demo_cfg)
    truths = {t.sample: t for t in (load_truth(p) for p in truth_paths)}
    expected = set(design.sample_names(cfg))
    missing = sorted(expected - set(truths))
    if missing:
        raise InputTableError(f"demo: no truth file for sample(s) {missing[:5]}; they are produced by rule "
                              "demo_slide from the same demo config")
    truths = {s: truths[s] for s in sorted(expected)}
    fractions = patient_fractions(truths.values())
    cohort_of = {t.patient: t.cohort for t in truths.values()}
    clinical = clinical_status(cfg, fractions, cohort_of)
    values, offsets, gene_truth = expression(cfg, fractions, clinical)

    hti = {s: slide_hti(cfg, t) for s, t in truths.items()}
    by_patient: dict[str, list[float]] = {}
    for s, t in truths.items():
        by_patient.setdefault(t.patient, []).append(hti[s]["hti"])
    patient_hti = pd.Series({p: float(np.mean(v)) for p, v in by_patient.items()}).sort_index()
    patient_entropy = composition_entropy(fractions)
    clinical = clinical.join(survival(cfg, patient_hti, patient_entropy))
    clinical = clinical.join(ki67_scores(cfg, fractions))
    clinical_out = clinical.drop(columns="cohort").reset_index()

    roi_table, probe_table, ki67, spatial_truth = spatial_tables(cfg, truths, gene_truth)
    gene_sets = demo_gene_sets(cfg, gene_truth)

    expression_tables = {}
    for cohort in design.cohorts(cfg):
        cols = sorted(p for p in values.columns if cohort_of[p] == cohort)
        expression_tables[cohort] = values[cols].reset_index()

    truth = {
        "seed": cfg["seed"],
        "compartments": list(COMPARTMENTS),
        "label_codes": design.LABELS,
        "genes": gene_truth,
        "gene_types": {k: sorted(g for g, v in gene_truth.items() if v["type"] == k)
                       for k in ("morphology", "tumour_cell", "weak", "clinical", "null", "near_constant")},
        "proliferation_genes": [g for g in design.PROLIFERATION if g in gene_truth],
        "cohort_offsets": offsets,
        "heterogeneity": {
            "traits": list(cfg["heterogeneity_traits"]),
            "trait_drivers": trait_drivers(cfg),
            "trait_threshold": float(cfg["heterogeneity_trait_threshold"]),
            "tile_um": float(cfg["heterogeneity_tile_um"]),
            "log_hr": float(cfg["heterogeneity_log_hr"]),
            "composition_entropy_log_hr": float(cfg["composition_entropy_log_hr"]),
            "hazard": "h(t) = ln(2)/60 * exp(log_hr * (HTI_patient - 0.5) + composition_entropy_log_hr * "
                      "(entropy_patient - 0.65)), HTI_patient = mean over slides, entropy_patient = Shannon entropy "
                      "(units of log 5) of the patient's area-weighted compartment fractions",
            "patient_composition_entropy": {p: float(v) for p, v in patient_entropy.items()},  # exact: tests replay survival
            "samples": {s: v["hti"] for s, v in hti.items()},
            "patients": patient_hti.to_dict(),
            "tiles": {s: {"n_tiles": v["n_tiles"], "combination_counts": v["combination_counts"]}
                      for s, v in hti.items()},
        },
        "spatial": spatial_truth,
        # gene_sets.gmt: planted pathways (a compartment's predictable genes) and null sets
        "gene_sets": {x["name"]: {k: x[k] for k in ("kind", "driver", "genes")} for x in gene_sets},
        "ki67": "clinical ki67 = 100 * logistic(-2.2 + 4 * patient tumour share + N(0, 0.4))",
        "samples": {s: {"patient": t.patient, "cohort": t.cohort, "mpp": t.mpp,
                        "mixing_um": t.mixing_um, "pen": bool(t.pen.any()), "blur": bool(t.blur.any()),
                        "fractions": dict(zip(COMPARTMENTS, t.fractions.tolist()))} for s, t in truths.items()},
        "patients": {p: dict(zip(COMPARTMENTS, fractions.loc[p].tolist())) for p in fractions.index},
        # image-side traits besides the compartment shares
        "patient_traits": {p: {"tumour_grade": design.tumour_grade(cfg, p), "fat_rich": design.fat_rich(cfg, p)}
                           for p in fractions.index},
        "site_stain": {c: list(design.site_stain(cfg, c)) for c in design.cohorts(cfg)},
    }
    return {"expression": expression_tables, "clinical": clinical_out, "rois": roi_table,
            "probe_counts": probe_table, "ki67": ki67, "gene_sets": gene_sets_gmt(gene_sets),
            "truth": _round(truth)}


def write_tables(demo_cfg: Mapping[str, Any], truth_paths: Iterable[str | Path], out_dir: str | Path,
                 code_version_value: str) -> dict[str, Path]:
    truth_paths = sorted(str(p) for p in truth_paths)
    tables = build(demo_cfg, truth_paths)
    out = Path(out_dir)
    cfg = design.settings(demo_cfg)
    params = {k: v for k, v in cfg.items()}
    written: dict[str, Path] = {}
    for cohort, table in tables["expression"].items():
        written[f"expression_{cohort}"] = out / f"expression_{cohort}.tsv"
        write_tsv(table, written[f"expression_{cohort}"], float_format="%.6g")
    written["clinical"] = out / "clinical.tsv"
    write_tsv(tables["clinical"], written["clinical"])
    for name in ("rois", "probe_counts", "ki67"):
        written[name] = out / "spatial" / f"{name}.tsv"
        write_tsv(tables[name], written[name])
    for path in list(written.values()):
        write_sidecar(path, code_version_value, params, truth_paths)
    from .annotations import annotated_samples, write_annotation

    by_sample = {Path(path).stem: path for path in truth_paths}
    for n, sample in enumerate(annotated_samples(cfg)):  # QuPath-style region annotations
        written[f"annotation_{sample}"] = out / "annotations" / f"{sample}.geojson"
        write_annotation(by_sample[sample], written[f"annotation_{sample}"], as_list=bool(n % 2))
    written["gene_sets"] = out / "gene_sets.gmt"
    atomic_write_text(written["gene_sets"], tables["gene_sets"])
    write_sidecar(written["gene_sets"], code_version_value, params, truth_paths)
    written["truth"] = out / "truth.json"
    atomic_write_text(written["truth"], json.dumps(tables["truth"], sort_keys=True, indent=1) + "\n")
    log.info("demo tables: %d patients, %d genes, %d ROIs -> %s", len(tables["clinical"]),
             len(tables["truth"]["genes"]), len(tables["rois"]), out)
    return written
