"""Scale per encoder in the workflow: encoders with different native scales on one cohort
get tile stores of different geometry, and every reader of an encoder's tile-level
outputs reads the store of that encoder's geometry (docs/features.md, "Scale")."""

from __future__ import annotations

import json

import h5py
import pytest
import yaml

from slurm_fixtures import dry_run_jobs, describe, jobs_by_rule
from workflow_runner import make_workspace, snakemake, stage_snakefile


def test_two_native_scales_on_one_cohort_get_their_own_tile_stores(tmp_path):
    """Dry run of the whole workflow on the small demo with three encoders requested:
    efficientnet_lite0 (tiling geometry), UNI (112 µm / 224 px) and CONCH (224 µm / 448 px),
    plus UNI's spatial outputs of one slide."""
    config_path = make_workspace(tmp_path)
    config = yaml.safe_load(config_path.read_text())
    for name in ("uni", "conch"):  # the DAG needs the files to exist, not to be real weights
        (tmp_path / f"{name}.bin").write_bytes(b"")
    config["features"]["weights"] = {"uni": str(tmp_path / "uni.bin"), "conch": str(tmp_path / "conch.bin")}
    config_path.write_text(yaml.safe_dump(config))
    sheet = (tmp_path / config["samples"]).read_text().splitlines()
    sample = sheet[1].split("\t")[sheet[0].split("\t").index("sample")]
    targets = [f"results/features/{e}/{sample}.h5" for e in ("efficientnet_lite0", "uni", "conch")]
    targets += [f"results/spatial/uni/rois/{sample}.tsv", f"results/spatial/uni/overlays/{sample}.png"]
    jobs = dry_run_jobs(tmp_path, config_path, "--", *targets)
    by_rule = jobs_by_rule(jobs)

    # the tiling config's geometry only where efficientnet_lite0 asked for it
    assert [j.outputs for j in by_rule["tile_slide"]] == [[f"results/tiles/{sample}.h5"]], describe(jobs)
    geometries = {}
    for job in by_rule["geometry_tile_slide"]:
        geometries.setdefault(job.wildcards["geometry"], set()).add(job.sample)
        assert job.outputs == [f"results/tiles/{job.wildcards['geometry']}/{job.sample}.h5"]
    # UNI is tiled for every slide its models train on and the requested one; CONCH for its one slide
    assert set(geometries) == {"112um_224px", "224um_448px"}, describe(jobs)
    assert geometries["224um_448px"] == {sample}
    assert len(geometries["112um_224px"]) > 1 and sample in geometries["112um_224px"]

    expected = {"efficientnet_lite0": f"results/tiles/{sample}.h5", "uni": f"results/tiles/112um_224px/{sample}.h5",
                "conch": f"results/tiles/224um_448px/{sample}.h5"}
    extract = {(j.wildcards["encoder"], j.sample): j for j in by_rule["extract_features"]}
    for encoder, store in expected.items():
        tiles = [p for p in extract[encoder, sample].inputs if p.startswith("results/tiles/")]
        assert tiles == [store], (encoder, extract[encoder, sample].inputs)
    for job in by_rule["extract_features"]:  # UNI's training slides read UNI's stores too
        assert any(p.startswith("results/tiles/112um_224px/") for p in job.inputs) == (job.wildcards["encoder"] == "uni")
    for rule in ("spatial_roi_predictions", "spatial_overlay"):
        (job,) = by_rule[rule]
        tiles = [p for p in job.inputs if p.startswith("results/tiles/")]
        assert tiles == [expected["uni"]], (rule, job.inputs)


@pytest.mark.slow
def test_geometry_stores_are_tiled_at_their_geometry_and_rerun_on_params(tmp_path):
    """geometry_tile_slide through Snakemake: the store is tiled at the encoder's geometry
    with the tiling config's other settings, and a tiling edit reruns every geometry."""
    from tiling_fixtures import synthetic_he, write_svs

    write_svs(synthetic_he(768, 1024, 0.5, seed=3), tmp_path / "S1.svs", 0.5)
    (tmp_path / "samples.tsv").write_text("sample\tpatient\tcohort\tslide\nS1\tP1\tA\tS1.svs\n")
    (tmp_path / "expr.tsv").write_text("gene\tP1\nG1\t1.0\n")
    config = {"samples": "samples.tsv", "cohorts": {"A": {"expression": "expr.tsv", "role": "training"}},
              "tiling": {"tile_um": 64.0, "tile_px": 112, "min_sharpness": 0.0, "max_pen_fraction": 0.05},
              "features": {"encoder_geometry": {"uni": {"tile_um": 96.0, "tile_px": 64}}}}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    snakefile = stage_snakefile(tmp_path, "tile_stores.smk")
    stores = {"results/tiles/S1.h5": (64.0, 112), "results/tiles/96um_64px/S1.h5": (96.0, 64),  # uni, explicit
              "results/tiles/224um_448px/S1.h5": (224.0, 448)}  # conch, native
    snakemake(tmp_path, "--configfile", str(config_path), "--cores", "2", "--", *stores, snakefile=snakefile)
    for path, (tile_um, tile_px) in stores.items():
        with h5py.File(tmp_path / path) as f:
            params = json.loads(f.attrs["params"])
            assert (f.attrs["tile_um"], f.attrs["tile_px"]) == (tile_um, tile_px), path
            assert (params["tile_um"], params["tile_px"]) == (tile_um, tile_px), path
            assert params["min_sharpness"] == 0.0 and params["max_pen_fraction"] == 0.05, path
            assert f["coords"].attrs["patch_size_level0"] == pytest.approx(tile_um / 0.5), path
            assert len(f["coords"]) >= 1, path
    assert (tmp_path / "logs/geometry_tile_slide/96um_64px_S1.log").is_file()

    config["tiling"]["max_pen_fraction"] = 0.1
    config_path.write_text(yaml.safe_dump(config))
    jobs = dry_run_jobs(tmp_path, config_path, "--", *stores, snakefile=snakefile)
    assert sorted(o for j in jobs for o in j.outputs) == sorted(stores), describe(jobs)
    assert all("params" in j.reason.lower() for j in jobs), describe(jobs)

    # a new geometry for one encoder tiles only that one; the other stores stay up to date
    config["tiling"]["max_pen_fraction"] = 0.05
    config["features"]["encoder_geometry"]["uni"]["tile_um"] = 100.0
    config_path.write_text(yaml.safe_dump(config))
    moved = [p for p in stores if "96um" not in p] + ["results/tiles/100um_64px/S1.h5"]
    jobs = dry_run_jobs(tmp_path, config_path, "--", *moved, snakefile=snakefile)
    assert [j.outputs for j in jobs] == [["results/tiles/100um_64px/S1.h5"]], describe(jobs)
