"""Design of the embedded demo cohort: pure functions of the ``demo:`` config.

Everything here is deterministic from ``demo.seed`` and cheap, so it can run while
Snakemake builds the DAG: the sample sheet, the gene list (with each gene's planted
type and driver compartments) and the per-slide rendering specification.
"""

from __future__ import annotations

import copy
import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..errors import ConfigError

# Label codes of the compartment maps (0 = background, glass).
COMPARTMENTS = ("tumour", "stroma", "lymphocytes", "fat", "necrosis")
LABELS = {"background": 0, **{name: i + 1 for i, name in enumerate(COMPARTMENTS)}}

# Mean tissue composition of the demo tumours (Dirichlet centre; fractions of tissue).
BASE_COMPOSITION = {"tumour": 0.36, "stroma": 0.32, "lymphocytes": 0.13, "fat": 0.12, "necrosis": 0.07}

# Keys whose change alters slide pixels or truth maps (the rest only alter tables).
SLIDE_KEYS = ("seed", "out_dir", "patients", "two_slide_fraction", "composition_concentration", "fraction_40x",
              "slide_size_um", "mixing_scale_um", "pen_fraction", "blur_fraction", "render_um_per_px",
              "truth_um_per_px", "jpeg_quality", "site_stain", "fat_rich_fraction", "max_fat_fraction",
              "basal_composition_shift")
# Dirichlet centre of a fat-rich tumour (breast: fat is everywhere, some tumours sit in it).
FAT_RICH_COMPOSITION = {"tumour": 0.2, "stroma": 0.15, "lymphocytes": 0.06, "fat": 0.55, "necrosis": 0.04}
# Basal-like tumours' image correlate (the demo's subtype planted in both modalities):
# triple-negative breast cancers are richer in tumour-infiltrating lymphocytes and more
# often necrotic. Multipliers of the composition centre's shares (renormalised): base
# centre lymphocytes 0.13 -> 0.23, necrosis 0.07 -> 0.11.
BASAL_SHIFT = {"lymphocytes": 2.2, "necrosis": 2.0}
# The driver name of tumour-cell genes: the patient's nuclear grade, not a compartment share.
TUMOUR_GRADE = "tumour_grade"

PAM50 = ("ACTR3B", "ANLN", "BAG1", "BCL2", "BIRC5", "BLVRA", "CCNB1", "CCNE1", "CDC20", "CDC6", "CDH3", "CENPF",
         "CEP55", "CXXC5", "EGFR", "ERBB2", "ESR1", "EXO1", "FGFR4", "FOXA1", "FOXC1", "GPR160", "GRB7", "KIF2C",
         "KRT14", "KRT17", "KRT5", "MAPT", "MDM2", "MELK", "MIA", "MKI67", "MLPH", "MMP11", "MYBL2", "MYC", "NAT1",
         "NDC80", "NUF2", "ORC6", "PGR", "PHGDH", "PTTG1", "RRM2", "SFRP1", "SLC39A6", "TMEM45B", "TYMS", "UBE2C",
         "UBE2T")
PROLIFERATION = ("BIRC5", "CCNB1", "CDC20", "NUF2", "CEP55", "NDC80", "MKI67", "PTTG1", "RRM2", "TYMS", "UBE2C")
# PAM50 genes with proliferation-like behaviour (tumour-driven besides the 11).
PROLIFERATION_LIKE = ("ANLN", "CCNE1", "CDC6", "CENPF", "EXO1", "KIF2C", "MELK", "MYBL2", "ORC6", "UBE2T")
KRT_EXTRA = ("KRT18", "KRT19", "KRT7", "KRT8", "KRT6A", "KRT6B", "KRT6C", "KRT10")
IMMUNE = ("CD4", "GZMB", "ITGB2", "HLA-DQA1", "PTPRC", "CD3E", "CD8A", "MS4A1")
STROMAL = ("COL1A1", "COL1A2", "COL3A1", "FAP", "ACTA2", "PECAM1")
ADIPOSE = ("ADIPOQ", "PLIN1", "FABP4", "LEP")
NECROSIS = ("CA9", "VEGFA", "HIF1A", "SLC2A1")
# Clinical effects (standardised units) of the clinical-type genes: er, her2, basal.
CLINICAL_EFFECTS = {
    "ESR1": {"er": 1.0}, "PGR": {"er": 0.8}, "FOXA1": {"er": 0.7}, "MLPH": {"er": 0.6}, "NAT1": {"er": 0.6},
    "SLC39A6": {"er": 0.6}, "BCL2": {"er": 0.5}, "MAPT": {"er": 0.6}, "CXXC5": {"er": 0.5}, "GPR160": {"er": 0.5},
    "BAG1": {"er": 0.4}, "TMEM45B": {"er": 0.3, "her2": 0.4}, "BLVRA": {"er": 0.4}, "MDM2": {"er": 0.3},
    "ERBB2": {"her2": 1.0}, "GRB7": {"her2": 0.9}, "FGFR4": {"her2": 0.5},
    "FOXC1": {"basal": 1.0}, "SFRP1": {"basal": 0.7}, "MIA": {"basal": 0.6}, "CDH3": {"basal": 0.6},
    "EGFR": {"basal": 0.6}, "ACTR3B": {"basal": 0.5}, "PHGDH": {"basal": 0.5}, "MYC": {"basal": 0.4},
    "MMP11": {"er": 0.3},
}
# Named morphology-driven genes and their driver weights.
NAMED_DRIVERS: dict[str, dict[str, float]] = {
    **{g: {"tumour": 1.0} for g in PROLIFERATION + PROLIFERATION_LIKE},
    **{g: {"tumour": 1.0} for g in ("KRT5", "KRT14", "KRT17") + KRT_EXTRA},
    **{g: {"lymphocytes": 1.0} for g in IMMUNE},
    **{g: {"stroma": 1.0} for g in STROMAL},
    **{g: {"fat": 1.0} for g in ADIPOSE},
    **{g: {"necrosis": 1.0, "tumour": 0.3} for g in NECROSIS},
}
# Spatial probe panel: the paper's multi-krt probe and a collagen probe (both planted).
MULTI_KRT = ("KRT18", "KRT6B", "KRT6C", "KRT6A", "KRT19", "KRT17", "KRT7", "KRT10", "KRT14")
MULTI_COL = ("COL1A1", "COL1A2", "COL3A1")
ST_PLANTED = IMMUNE + ("MKI67", "FAP", "ACTA2", "CA9", "VEGFA", "HIF1A", "ADIPOQ")
NEGATIVE_PROBES = ("NegProbe-1", "NegProbe-2", "NegProbe-3")

FULL_PANEL = tuple(dict.fromkeys(PAM50 + KRT_EXTRA + IMMUNE + STROMAL + ADIPOSE + NECROSIS))
COMPACT_PANEL = tuple(dict.fromkeys(
    PROLIFERATION + ("ESR1", "PGR", "ERBB2", "FOXA1", "FOXC1") + ("KRT5", "KRT8") + MULTI_KRT
    + ("CD4", "PTPRC", "GZMB") + ("COL1A1", "COL1A2", "COL3A1") + ("ADIPOQ",) + ("CA9", "VEGFA")))
PANELS = {"full": FULL_PANEL, "compact": COMPACT_PANEL}


def settings(demo_cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``demo:`` config completed with the schema's defaults and checked."""
    from ..settings import section

    cfg = section("demo", demo_cfg)
    if cfg["gene_panel"] not in PANELS:
        raise ConfigError(f"config key 'demo.gene_panel': {cfg['gene_panel']!r} is not one of {sorted(PANELS)}")
    panel = PANELS[cfg["gene_panel"]]
    if cfg["n_genes"] < len(panel) + cfg["n_near_constant"]:
        raise ConfigError(f"config key 'demo.n_genes': {cfg['n_genes']} is too small for the "
                          f"{cfg['gene_panel']!r} panel ({len(panel)} named genes + {cfg['n_near_constant']} "
                          f"near-constant); use at least {len(panel) + cfg['n_near_constant']} or "
                          "demo.gene_panel: compact")
    if not cfg["patients"]:
        raise ConfigError("config key 'demo.patients': give at least one cohort with a number of patients")
    for cohort in cfg["site_stain"] or {}:
        if cohort not in cfg["patients"]:
            raise ConfigError(f"config key 'demo.site_stain': cohort {cohort!r} is not a demo cohort "
                              f"(demo.patients: {sorted(cfg['patients'])})")
    for trait in cfg["heterogeneity_traits"]:
        if trait not in panel:
            raise ConfigError(f"config key 'demo.heterogeneity_traits': {trait!r} is not a gene of the "
                              f"{cfg['gene_panel']!r} panel; use morphology-driven named genes such as MKI67, PTPRC")
        if trait not in NAMED_DRIVERS:
            raise ConfigError(f"config key 'demo.heterogeneity_traits': {trait!r} is not morphology-driven; "
                              f"choose from {sorted(set(NAMED_DRIVERS) & set(panel))}")
    return cfg


def check_cohorts(cfg: Mapping[str, Any], cohorts: Mapping[str, Any]) -> None:
    """Every demo cohort must be a cohort of the config (DAG-build check)."""
    for cohort in cfg["patients"]:
        if cohort not in cohorts:
            raise ConfigError(f"config key 'demo.patients': cohort {cohort!r} is not under config key 'cohorts'; "
                              f"add it there (expression: {cfg['out_dir']}/expression_{cohort}.tsv) or remove it")


def check_sheet(cfg: Mapping[str, Any], sheet: pd.DataFrame, sheet_path: str = "the sample sheet") -> None:
    """Rows of the sample sheet that point into the demo folder must be demo samples of
    this config (same patient and cohort); raised at DAG-build time."""
    expected = sample_sheet(cfg).set_index("sample")
    prefix = f"{cfg['out_dir']}/slides/"
    for row in sheet.itertuples(index=False):
        if not str(row.slide).startswith(prefix):
            continue
        if row.sample not in expected.index or (expected.loc[row.sample, "patient"], expected.loc[row.sample, "cohort"]) \
                != (row.patient, row.cohort) or expected.loc[row.sample, "slide"] != row.slide:
            raise ConfigError(
                f"{sheet_path}: sample {row.sample!r} (slide {row.slide}) is not a demo sample of config key 'demo' "
                f"(seed {cfg['seed']}, patients {dict(cfg['patients'])}); regenerate the sheet with "
                "`cd scripts && python -m emo.demo sheet <config.yaml> > <sheet>` or set demo.enabled: false")


def slide_params(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of the demo config that slide rendering depends on."""
    return {key: cfg[key] for key in SLIDE_KEYS}


def stable_seed(*parts: Any) -> int:
    """A 63-bit seed from strings/ints (independent of PYTHONHASHSEED)."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def rng_for(*parts: Any) -> np.random.Generator:
    return np.random.default_rng(stable_seed(*parts))


def cohorts(cfg: Mapping[str, Any]) -> list[str]:
    return sorted(cfg["patients"])


def patients(cfg: Mapping[str, Any]) -> pd.DataFrame:
    """One row per patient: patient, cohort, n_slides (sorted by patient)."""
    rows = []
    for cohort in cohorts(cfg):
        n = int(cfg["patients"][cohort])
        width = max(3, len(str(n)))
        ids = [f"{cohort}-{i:0{width}d}" for i in range(1, n + 1)]
        n_two = min(n, max(1, round(cfg["two_slide_fraction"] * n))) if cfg["two_slide_fraction"] > 0 else 0
        two = set(rng_for(cfg["seed"], "two_slides", cohort).choice(n, size=n_two, replace=False).tolist())
        rows += [{"patient": p, "cohort": cohort, "n_slides": 2 if i in two else 1} for i, p in enumerate(ids)]
    return pd.DataFrame(rows).sort_values("patient", kind="stable").reset_index(drop=True)


def sample_sheet(cfg: Mapping[str, Any]) -> pd.DataFrame:
    """The demo sample sheet: sample, patient, cohort, slide, mpp (empty), split (empty)."""
    rows = []
    for row in patients(cfg).itertuples(index=False):
        for k in range(row.n_slides):
            sample = f"{row.patient}-{'AB'[k]}"
            rows.append({"sample": sample, "patient": row.patient, "cohort": row.cohort,
                         "slide": f"{cfg['out_dir']}/slides/{sample}.svs", "mpp": "", "split": ""})
    return pd.DataFrame(rows).sort_values("sample", kind="stable").reset_index(drop=True)


def sheet_text(cfg: Mapping[str, Any]) -> str:
    """The sample sheet as the TSV text committed under config/."""
    return sample_sheet(cfg).to_csv(sep="\t", index=False, lineterminator="\n")


def sample_names(cfg: Mapping[str, Any]) -> list[str]:
    return sample_sheet(cfg)["sample"].tolist()


@dataclass(frozen=True)
class GeneSpec:
    name: str
    type: str  # morphology | tumour_cell | weak | clinical | null | near_constant
    drivers: dict[str, float] = field(default_factory=dict)
    clinical: dict[str, float] = field(default_factory=dict)
    mean: float = 6.0
    scale: float = 1.0
    r2: float | None = None  # planted R² on the driver score (morphology, tumour_cell, weak)


def gene_specs(cfg: Mapping[str, Any]) -> list[GeneSpec]:
    """Every demo gene with its planted type, drivers, mean and scale (gene order)."""
    panel = PANELS[cfg["gene_panel"]]
    n_genes = int(cfg["n_genes"])
    n_synthetic = n_genes - len(panel)
    synthetic = [f"GENE{i:04d}" for i in range(1, n_synthetic + 1)]
    rng = rng_for(cfg["seed"], "genes")
    n_morph_target = round(cfg["fraction_morphology"] * n_genes)
    n_weak = round(cfg["fraction_weak"] * n_genes)
    named_morph = [g for g in panel if g in NAMED_DRIVERS]
    n_syn_morph = max(0, min(n_morph_target - len(named_morph), n_synthetic - cfg["n_near_constant"]))
    n_syn_weak = max(0, min(n_weak, n_synthetic - cfg["n_near_constant"] - n_syn_morph))
    n_syn_cell = max(0, min(round(cfg["fraction_tumour_cell"] * n_genes),
                            n_synthetic - cfg["n_near_constant"] - n_syn_morph - n_syn_weak))
    order = rng.permutation(n_synthetic)
    kinds = np.full(n_synthetic, "null", dtype=object)
    bounds = np.cumsum([cfg["n_near_constant"], n_syn_morph, n_syn_weak, n_syn_cell])
    kinds[order[:bounds[0]]] = "near_constant"
    kinds[order[bounds[0]:bounds[1]]] = "morphology"
    kinds[order[bounds[1]:bounds[2]]] = "weak"
    kinds[order[bounds[2]:bounds[3]]] = "tumour_cell"
    # Effect sizes of synthetic planted genes: log-uniform, so most are weak (own stream:
    # the other draws stay as they were).
    low, high = (float(v) for v in cfg["synthetic_r2_range"])
    r2_rng = rng_for(cfg["seed"], "gene_r2")
    specs = []
    for name in panel:
        mean, scale = float(rng.uniform(4.0, 10.0)), float(rng.uniform(0.6, 1.4))
        if name in NAMED_DRIVERS:
            specs.append(GeneSpec(name, "morphology", dict(NAMED_DRIVERS[name]), {}, mean, scale,
                                  float(cfg["morphology_r2"])))
        elif name in CLINICAL_EFFECTS:
            specs.append(GeneSpec(name, "clinical", {}, dict(CLINICAL_EFFECTS[name]), mean, scale))
        else:
            specs.append(GeneSpec(name, "null", {}, {}, mean, scale))
    for name, kind in zip(synthetic, kinds):
        mean, scale = float(rng.uniform(3.0, 11.0)), float(rng.uniform(0.5, 1.5))
        drivers: dict[str, float] = {}
        if kind in ("morphology", "weak"):
            n_drivers = 1 if rng.random() < 0.7 else 2
            chosen = rng.choice(len(COMPARTMENTS), size=n_drivers, replace=False)
            for c in sorted(chosen.tolist()):
                drivers[COMPARTMENTS[c]] = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.0))
        if kind == "near_constant":
            scale = 0.03
        r2 = float(math.exp(r2_rng.uniform(math.log(low), math.log(high))))
        if kind == "tumour_cell":
            drivers = {TUMOUR_GRADE: float(rng.choice([-1.0, 1.0]))}
        planted = {"morphology": r2, "tumour_cell": r2, "weak": float(cfg["weak_r2"])}.get(str(kind))
        specs.append(GeneSpec(name, str(kind), drivers, {}, mean, scale, planted))
    return specs


def gene_names(demo_cfg: Mapping[str, Any] | None) -> list[str]:
    """The demo gene list (named panel genes, then GENE0001...), available at DAG-build time."""
    cfg = settings(demo_cfg)
    panel = PANELS[cfg["gene_panel"]]
    return list(panel) + [f"GENE{i:04d}" for i in range(1, int(cfg["n_genes"]) - len(panel) + 1)]


@dataclass(frozen=True)
class SlideSpec:
    sample: str
    patient: str
    cohort: str
    mpp: float
    width_um: float
    height_um: float
    mixing_um: float
    composition: dict[str, float]
    pen: bool
    blur: bool
    seed: int
    stain: tuple[float, float] = (1.0, 1.0)  # the site's haematoxylin / eosin OD multipliers
    tumour_grade: float = 0.5                # 0..1: tumour nuclei size and chromatin density


def cap_fat(comp: np.ndarray, max_fat: float) -> np.ndarray:
    """Keep a slide's fat share at most ``max_fat`` (config ``demo.max_fat_fraction``; a
    slide of nothing but fat has no tumour to model); the excess goes to the other
    compartments in proportion."""
    fat = COMPARTMENTS.index("fat")
    comp = np.asarray(comp, dtype=float).copy()
    if comp[fat] > max_fat:
        others = np.arange(len(comp)) != fat
        comp[others] += (comp[fat] - max_fat) * comp[others] / comp[others].sum()
        comp[fat] = max_fat
    return comp


def fat_rich(cfg: Mapping[str, Any], patient: str) -> bool:
    return bool(rng_for(cfg["seed"], "fat_rich", patient).random() < float(cfg["fat_rich_fraction"]))


def receptor_draws(cfg: Mapping[str, Any], patient: str) -> tuple[np.random.Generator, bool, bool, bool, bool]:
    """The patient's clinical generator after its first four draws and those draws: ER,
    HER2, PR status and whether the tumour is Normal-like (emo.demo.tables.clinical_status
    continues from the generator)."""
    rng = rng_for(cfg["seed"], "clinical", patient)
    er = bool(rng.random() < 0.75)
    her2 = bool(rng.random() < (0.12 if er else 0.35))
    pr = bool(rng.random() < (0.8 if er else 0.05))
    normal = bool(rng.random() < 0.05)
    return rng, er, her2, pr, normal


def basal_like(cfg: Mapping[str, Any], patient: str) -> bool:
    """PAM50 Basal: ER- and HER2-negative, not Normal-like (known before the slides exist)."""
    _, er, her2, _, normal = receptor_draws(cfg, patient)
    return not (normal or er or her2)


def composition_centre(cfg: Mapping[str, Any], patient: str) -> dict[str, float]:
    """The Dirichlet centre of a patient's tissue composition: fat-rich or the base one; a
    Basal-like tumour's lymphocyte and necrosis shares scaled by ``BASAL_SHIFT`` (then
    renormalised): the demo's one image correlate of a molecular subtype."""
    centre = dict(FAT_RICH_COMPOSITION if fat_rich(cfg, patient) else BASE_COMPOSITION)
    if cfg["basal_composition_shift"] and basal_like(cfg, patient):
        centre = {c: v * BASAL_SHIFT.get(c, 1.0) for c, v in centre.items()}
        total = sum(centre.values())
        centre = {c: v / total for c, v in centre.items()}
    return centre


def patient_composition(cfg: Mapping[str, Any], patient: str) -> dict[str, float]:
    rng = rng_for(cfg["seed"], "composition", patient)
    centre = composition_centre(cfg, patient)
    alpha = np.array([centre[c] for c in COMPARTMENTS]) * float(cfg["composition_concentration"])
    comp = cap_fat(rng.dirichlet(alpha), float(cfg["max_fat_fraction"]))
    return {c: float(v) for c, v in zip(COMPARTMENTS, comp)}


def tumour_grade(cfg: Mapping[str, Any], patient: str) -> float:
    """The patient's tumour nuclear grade in [0, 1] (drives the tumour-cell genes; seen
    in the slides as nuclear size and chromatin density of the tumour cells)."""
    return float(rng_for(cfg["seed"], "tumour_grade", patient).uniform(0.0, 1.0))


def site_stain(cfg: Mapping[str, Any], cohort: str) -> tuple[float, float]:
    h, e = (cfg.get("site_stain") or {}).get(cohort, (1.0, 1.0))
    return float(h), float(e)


def slide_spec(cfg: Mapping[str, Any], sample: str) -> SlideSpec:
    """Everything that determines one demo slide, derived from the seed and the sample name."""
    sheet = sample_sheet(cfg).set_index("sample")
    if sample not in sheet.index:
        raise ConfigError(f"sample {sample!r} is not a demo sample of config key 'demo' (seed {cfg['seed']}); "
                          "regenerate the sample sheet with `python -m emo.demo sheet`")
    patient, cohort = sheet.loc[sample, "patient"], sheet.loc[sample, "cohort"]
    rng = rng_for(cfg["seed"], "slide", sample)
    base = np.array([patient_composition(cfg, patient)[c] for c in COMPARTMENTS])
    if sample.endswith("-A"):
        comp = base
    else:  # a second slide of the same tumour: similar composition
        comp = cap_fat(rng.dirichlet(base * 60.0 + 0.05), float(cfg["max_fat_fraction"]))
    mpp = 0.25 if rng.random() < cfg["fraction_40x"] else 0.5
    w, h = (float(v) for v in cfg["slide_size_um"])
    width = 32.0 * round(w * rng.uniform(0.85, 1.15) / 32.0)
    height = 32.0 * round(h * rng.uniform(0.85, 1.15) / 32.0)
    lo, hi = (float(v) for v in cfg["mixing_scale_um"])
    mixing = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    pen = bool(rng.random() < cfg["pen_fraction"])
    blur = bool(rng.random() < cfg["blur_fraction"])
    return SlideSpec(sample, patient, cohort, mpp, width, height, mixing,
                     {c: float(v) for c, v in zip(COMPARTMENTS, comp)}, pen, blur,
                     stable_seed(cfg["seed"], "pixels", sample), site_stain(cfg, cohort),
                     tumour_grade(cfg, patient))


def st_samples(cfg: Mapping[str, Any]) -> list[str]:
    """Slides with spatial-transcriptomics ROIs: the first (``-A``) slides of a seeded
    random choice of patients of the external cohort ABIM (all cohorts if absent),
    like EMO's independent ST collection."""
    sheet = sample_sheet(cfg)
    first = sheet[sheet["sample"].str.endswith("-A")]
    pool = first[first["cohort"] == "ABIM"] if (first["cohort"] == "ABIM").any() else first
    n = min(int(cfg["st_slides"]), len(pool))
    chosen = rng_for(cfg["seed"], "st_slides").choice(len(pool), size=n, replace=False)
    return sorted(pool["sample"].iloc[np.sort(chosen)].tolist())

