"""PAM50 clustering concordance (paper 001: patients clustered on the PAM50 genes in
RNA-seq and in EMO predictions separately; adjusted Rand index between the two
clusterings and of each with the intrinsic subtype labels, permutation p and 95 % CI).

The paper used consensus clustering (4 clusters); emo uses agglomerative
hierarchical clustering (Ward linkage on per-gene z-scores, cut into k clusters),
which is deterministic and needs no resampling (see docs/statistics.md).
"""

from __future__ import annotations

import logging
import zlib

import numpy as np
import pandas as pd
from scipy.cluster import hierarchy
from scipy.spatial.distance import pdist

from . import core
from .inputs import Dataset

log = logging.getLogger("emo")

CLUSTER_COLUMNS = ["patient", "split", "cohort", "pam50", "cluster_measured", "cluster_predicted"]
ARI_COLUMNS = ["split", "cohort", "comparison", "n", "n_genes", "n_clusters", "ari", "ci_low", "ci_high",
               "p_permutation"]
LINKAGES = ("ward", "average", "complete")


def zscore(frame: pd.DataFrame) -> pd.DataFrame:
    """Per-gene z-scores over the patients; constant genes are dropped."""
    sd = frame.std(axis=0, ddof=1)
    keep = sd > 0
    return (frame.loc[:, keep] - frame.loc[:, keep].mean(axis=0)) / sd[keep]


def linkage_matrix(z: np.ndarray, method: str = "ward") -> np.ndarray:
    if method not in LINKAGES:
        from ..errors import ConfigError
        raise ConfigError(f"statistics.pam50.linkage = {method!r}; use one of {', '.join(LINKAGES)}")
    metric = "euclidean" if method == "ward" else "correlation"
    return hierarchy.linkage(pdist(z, metric=metric), method=method)


def relabel(labels: np.ndarray) -> np.ndarray:
    """Clusters numbered 1..k by first appearance (stable across equal partitions)."""
    mapping: dict[int, int] = {}
    for label in labels:
        mapping.setdefault(int(label), len(mapping) + 1)
    return np.array([mapping[int(label)] for label in labels])


def cluster(frame: pd.DataFrame, n_clusters: int, method: str = "ward") -> np.ndarray:
    z = zscore(frame).to_numpy()
    labels = hierarchy.fcluster(linkage_matrix(z, method), t=n_clusters, criterion="maxclust")
    return relabel(labels)


def _rng(seed: int, *keys: str) -> np.random.Generator:
    words = [zlib.crc32(k.encode()) for k in keys]
    return np.random.default_rng(np.random.SeedSequence([int(seed), *words]))


def pam50_clustering(data: Dataset, genes: list[str], clinical: pd.DataFrame | None, n_clusters: int,
                     method: str, n_permutations: int, n_bootstrap: int,
                     seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per evaluation set: cluster labels per patient and the ARI table."""
    clusters, rows = [], []
    for split, cohort, patients in data.subsets():
        measured = data.measured.loc[patients, genes]
        predicted = data.predicted.loc[patients, genes]
        usable = [g for g in genes if measured[g].notna().all() and predicted[g].notna().all()
                  and measured[g].std() > 0 and predicted[g].std() > 0]
        if len(patients) < n_clusters + 1 or len(usable) < 2:
            log.warning("PAM50 clustering: %s/%s has %d patients and %d usable genes; skipped",
                        split, cohort, len(patients), len(usable))
            continue
        lab_m = cluster(measured[usable], n_clusters, method)
        lab_p = cluster(predicted[usable], n_clusters, method)
        subtype = (clinical["pam50"].reindex(patients).astype("string")
                   if clinical is not None and "pam50" in clinical.columns
                   else pd.Series(pd.NA, index=patients, dtype="string"))
        clusters.append(pd.DataFrame({"patient": patients, "split": split, "cohort": cohort,
                                      "pam50": subtype.to_numpy(), "cluster_measured": lab_m,
                                      "cluster_predicted": lab_p}))
        known = subtype.notna().to_numpy()
        comparisons = [("measured_vs_predicted", lab_m, lab_p)]
        if known.sum() >= 2:
            sub = subtype.to_numpy()[known].astype(str)
            comparisons += [("measured_vs_subtype", lab_m[known], sub), ("predicted_vs_subtype", lab_p[known], sub)]
        for name, a, b in comparisons:
            ari, p = core.ari_permutation_p(a, b, n_permutations, _rng(seed, split, cohort, name, "perm"))
            low, high = core.ari_bootstrap_ci(a, b, n_bootstrap, _rng(seed, split, cohort, name, "boot"))
            rows.append({"split": split, "cohort": cohort, "comparison": name, "n": len(a),
                         "n_genes": len(usable), "n_clusters": n_clusters, "ari": ari, "ci_low": low,
                         "ci_high": high, "p_permutation": p})
            log.info("PAM50 %s/%s %s: ARI %.3f (p %.4g)", split, cohort, name, ari, p)
    cluster_table = pd.concat(clusters, ignore_index=True) if clusters else pd.DataFrame(columns=CLUSTER_COLUMNS)
    return cluster_table[CLUSTER_COLUMNS], pd.DataFrame(rows, columns=ARI_COLUMNS)


def run_pam50(prepared, splits, predictions, clinical_path, out_clusters, out_ari, cfg: dict, version: str,
              clinical_mapping: dict | None = None) -> None:
    """Rule gene_statistics_pam50 (``clinical_mapping``: config key clinical_mapping)."""
    from ..io import write_tsv
    from ..provenance import write_sidecar
    from .inputs import check_genes, load_clinical, load_dataset

    settings = cfg["pam50"]
    data = load_dataset(prepared, splits, predictions, genes=list(settings["genes"]))
    genes = check_genes(list(settings["genes"]), data.genes, "statistics.pam50.genes")
    clinical = load_clinical(clinical_path, required=["pam50"], mapping=clinical_mapping)
    clusters, ari = pam50_clustering(data, genes, clinical, int(settings["n_clusters"]), settings["linkage"],
                                     int(settings["n_permutations"]), int(settings["n_bootstrap"]),
                                     int(settings["seed"]))
    inputs = [prepared, splits, predictions, clinical_path]
    for frame, path in ((clusters, out_clusters), (ari, out_ari)):
        write_tsv(frame, path)
        write_sidecar(path, version, {"pam50": settings}, inputs)
