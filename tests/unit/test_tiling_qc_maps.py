"""The tiling QC summary and maps of the report (rule tile_qc_maps)."""

import numpy as np
import pandas as pd
from PIL import Image

from emo import slides, tiling
from emo.scale_bar import length_label, nice_length_um
from emo.stores.tiles import read_tile_store, write_tile_store
from emo.tile_qc_map import most_rejected, write_qc_maps
from external_slides import cmu_small_region


def test_most_rejected_first_ties_by_name():
    summary = pd.DataFrame({"sample": ["a", "b", "c", "d"], "rejected_fraction": [0.1, 0.5, 0.5, 0.9]})
    assert most_rejected(summary, 3) == ["d", "b", "c"]
    assert most_rejected(summary, 10) == ["d", "b", "c", "a"]


def test_scale_bar_lengths():
    assert nice_length_um(1110) == 200 and length_label(200) == "200 µm"
    assert nice_length_um(60000) == 10000 and length_label(10000) == "10 mm"
    assert nice_length_um(20) == 10   # never zero


def test_summary_counts_and_map(tmp_path):
    slide = cmu_small_region()
    paths, samples = [], ["strict", "lenient"]
    for sample, min_tissue in zip(samples, (0.9, 0.2)):
        info = slides.check_slide(sample, slide)
        result = tiling.tile_slide(info, {"tile_um": 112.0, "tile_px": 224, "min_tissue_fraction": min_tissue})
        paths.append(tmp_path / f"{sample}.h5")
        write_tile_store(paths[-1], tiling.build_store(result, "v", "0"))
    summary_path, maps = tmp_path / "summary.tsv", [tmp_path / "map_01.png"]
    chosen = write_qc_maps(samples, paths, [slide, slide], summary_path, maps, "v1", {"maps": 1})
    summary = pd.read_csv(summary_path, sep="\t").set_index("sample")
    for sample, path in zip(samples, paths):
        reasons = read_tile_store(path).candidates["reject_reason"]
        assert summary.loc[sample, "accepted"] == (reasons == "").sum()
        assert summary.loc[sample, "rejected_low_tissue"] == (reasons == "low_tissue").sum()
        assert summary.loc[sample, "candidates"] == len(reasons)
    assert summary.loc["strict", "rejected_fraction"] > summary.loc["lenient", "rejected_fraction"]
    assert chosen == ["strict"]
    image = np.asarray(Image.open(maps[0]).convert("RGB"))
    assert image.shape[0] > 300
    assert (tmp_path / "summary.tsv.json").is_file()
