"""Slide-level Ki67 vs the predicted proliferation score (emo.stats.ki67; Spearman checked
against scipy), per-slide gene maps (emo.gene_maps), and the demo's gene sets and Ki67
column (emo.demo.tables: planted pathways from the planted truth, null sets of null genes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from emo.demo import design, tables
from emo.errors import ConfigError, InputTableError
from emo.stats import ki67

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _scores(seed: int = 4) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    n = 60
    patients = [f"P{i:02d}" for i in range(n)]
    split = np.array(["validation"] * 25 + ["test"] * 20 + ["external"] * 15)
    cohort = np.array(["TCGA"] * 45 + ["ABIM"] * 15)
    truth = rng.normal(0, 1, n)
    scores = pd.DataFrame({"patient": patients, "split": split, "cohort": cohort,
                           "pam50": rng.choice(["LumA", "LumB", "Basal"], n),
                           "pscore_measured": truth + rng.normal(0, 0.3, n),
                           "pscore_predicted": truth + rng.normal(0, 0.6, n)})
    values = pd.Series(100 / (1 + np.exp(-(truth + rng.normal(0, 0.5, n)))), index=patients)
    return scores, values


def test_ki67_table_against_scipy():
    scores, values = _scores()
    values.iloc[3] = np.nan                                      # an unknown Ki67 is left out
    table = ki67.ki67_table(ki67.ki67_pairs(scores, values))
    assert list(table[["split", "cohort"]].drop_duplicates().itertuples(index=False, name=None)) == [
        ("validation", "all"), ("test", "all"), ("external", "ABIM")]
    pairs = scores.assign(ki67=scores["patient"].map(values))
    for row in table.itertuples():
        part = pairs[pairs["split"] == row.split].dropna(subset=["ki67"])
        r, p = stats.spearmanr(part["ki67"], part[f"pscore_{row.score}"])
        assert row.n == len(part)
        assert row.spearman_r == pytest.approx(r, abs=1e-12) and row.spearman_p == pytest.approx(p, rel=1e-9)
    assert table.loc[table["score"] == "predicted", "spearman_r"].min() > 0.3


def test_ki67_values_and_column_checks(tmp_path):
    clinical = pd.DataFrame({"ki67": ["12.5", "30%", "", "high"]}, index=["A", "B", "C", "D"])
    with pytest.raises(InputTableError, match=r"'ki67'.*statistics.ki67_column.*D: 'high'"):
        ki67.ki67_values(clinical, "ki67", "clinical.tsv")
    values = ki67.ki67_values(clinical.iloc[:3], "ki67", "clinical.tsv")
    assert values.iloc[:2].tolist() == [12.5, 30.0] and np.isnan(values.iloc[2])

    from emo.settings import load
    from emo.workflow.plan import _ki67_column

    config = load(yaml.safe_load((REPO / "config/test/config.yaml").read_text()))
    path = tmp_path / "clinical.tsv"
    pd.DataFrame({"patient": ["A", "B"], "er": ["positive", "negative"], "pam50": ["LumA", "Basal"]}).to_csv(
        path, sep="\t", index=False)
    config["clinical"] = str(path)
    with pytest.raises(ConfigError, match=r"statistics.ki67_column.*'ki67'.*no such column"):
        _ki67_column(config)
    config["clinical_mapping"] = {"columns": {"ki67": "pam50"}, "values": {}}  # a mapped column is found
    assert _ki67_column(config) == "ki67"
    config["statistics"]["ki67_column"] = None
    assert _ki67_column(config) is None


def test_run_ki67_writes_table_pairs_and_figure(tmp_path):
    scores, values = _scores()
    scores.to_csv(tmp_path / "scores.tsv", sep="\t", index=False)
    pd.DataFrame({"patient": values.index, "ki67_ihc": values.round(1).to_numpy()}).to_csv(
        tmp_path / "clinical.tsv", sep="\t", index=False)
    out = {k: tmp_path / f"{k}.{e}" for k, e in (("table", "tsv"), ("pairs", "tsv"), ("figure", "png"))}
    table = ki67.run_ki67(tmp_path / "scores.tsv", tmp_path / "clinical.tsv", "ki67_ihc", out["table"], out["pairs"],
                          out["figure"], "test")
    assert pd.read_csv(out["table"], sep="\t").shape == table.shape == (6, 7)
    assert out["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pd.DataFrame({"patient": values.index[:2], "ki67_ihc": [1, 2]}).to_csv(tmp_path / "few.tsv", sep="\t",
                                                                           index=False)
    with pytest.raises(InputTableError, match="at least 3"):
        ki67.run_ki67(tmp_path / "scores.tsv", tmp_path / "few.tsv", "ki67_ihc", out["table"], out["pairs"],
                      out["figure"], "test")


# ----------------------------------------------------------------------------- maps

def test_map_samples_and_genes():
    from emo import gene_maps

    names = [f"S{i:02d}" for i in range(10)]
    assert gene_maps.map_samples({"samples": [], "n_samples": 3}, names[::-1]) == ["S00", "S04", "S09"]
    assert gene_maps.map_samples({"samples": ["S05"], "n_samples": 3}, names) == ["S05"]
    with pytest.raises(ConfigError, match="maps.samples.*'X1'"):
        gene_maps.map_samples({"samples": ["X1"], "n_samples": 3}, names)
    assert gene_maps.check_map_genes({"genes": ["A", "B"]}, "all", ["A", "B", "C"]) == ["A", "B"]
    with pytest.raises(ConfigError, match="predictions.tile_genes"):
        gene_maps.check_map_genes({"genes": ["A", "B"]}, ["A"])
    with pytest.raises(ConfigError, match="maps.genes.*Z"):
        gene_maps.check_map_genes({"genes": ["Z"]}, "all", ["A"])
    with pytest.raises(ConfigError, match="more than once"):
        gene_maps.check_map_genes({"genes": ["A", "A"]}, "all")


def test_plot_gene_maps_on_a_synthetic_slide(tmp_path):
    import sys

    sys.path.insert(0, str(REPO / "tests"))
    from PIL import Image

    import spatial_fixtures as sf
    from tiling_fixtures import write_svs

    from emo import gene_maps

    tiles, preds = sf.write_slide(tmp_path, "S1", np.random.default_rng(0))
    rgb = np.full((int(sf.NY * sf.TILE), int(sf.NX * sf.TILE), 3), 230, np.uint8)
    slide = write_svs(rgb, tmp_path / "S1.svs", mpp=sf.MPP)
    settings = {"thumbnail_px": 256}
    out = tmp_path / "map.png"
    gene_maps.plot_gene_maps("S1", slide, tiles, preds, ["MKI67", "CD8A"], settings, out)
    again = tmp_path / "again.png"
    gene_maps.plot_gene_maps("S1", slide, tiles, preds, ["MKI67", "CD8A"], settings, again)
    assert out.read_bytes() == again.read_bytes()                # deterministic
    width, height = Image.open(out).size
    assert width > 1.5 * height                                  # two panels side by side
    with pytest.raises(ConfigError, match="maps.genes"):
        gene_maps.plot_gene_maps("S1", slide, tiles, preds, ["NOPE"], settings, out)


# ----------------------------------------------------------------------------- demo

@pytest.mark.parametrize("config_path", ["config/config.yaml", "config/test/config.yaml"])
def test_demo_gene_sets_follow_the_planted_truth(config_path):
    cfg = design.settings(yaml.safe_load((REPO / config_path).read_text())["demo"])
    truth = {s.name: {"type": s.type, "drivers": s.drivers, "r2": s.r2 or 0.0} for s in design.gene_specs(cfg)}
    sets = tables.demo_gene_sets(cfg, truth)
    assert sets == tables.demo_gene_sets(cfg, truth)             # deterministic
    planted = [s for s in sets if s["kind"] == "planted"]
    null = [s for s in sets if s["kind"] == "null"]
    assert len(null) == tables.N_NULL_SETS and {s["driver"] for s in planted} <= set(design.COMPARTMENTS)
    for s in planted:
        for g in s["genes"]:
            t = truth[g]
            assert t["type"] == "morphology" and t["r2"] >= tables.GENE_SET_MIN_R2
            assert max(t["drivers"], key=lambda c: abs(t["drivers"][c])) == s["driver"]
    null_genes = [g for s in null for g in s["genes"]]
    assert len(null_genes) == len(set(null_genes))               # disjoint
    assert all(truth[g]["type"] == "null" for g in null_genes)
    gmt = tables.gene_sets_gmt(sets)
    assert gmt.splitlines()[0].split("\t")[:2] == [planted[0]["name"], f"planted: {planted[0]['driver']}"]


def test_demo_ki67_follows_the_tumour_share():
    cfg = design.settings({})
    rng = np.random.default_rng(0)
    fractions = pd.DataFrame({"tumour": rng.uniform(0.1, 0.8, 80)}, index=[f"P{i:02d}" for i in range(80)])
    values = tables.ki67_scores(cfg, fractions)
    assert values.equals(tables.ki67_scores(cfg, fractions))
    assert values.between(0, 100).all()
    assert stats.spearmanr(values, fractions["tumour"])[0] > 0.6
