"""A tiny fine-tuning job for tests: one real tile store (the synthetic x40 slide,
48 px tiles) read through emo.tiling.TileReader as several slides of different
patients, and a configuration with tiny sizes (75 px input, few steps)."""

from __future__ import annotations

from pathlib import Path

from emo import cnn_finetune, slides, tiling
from emo.stores import tiles as tile_store
from tiling_fixtures import TEST_PARAMS, synthetic_slides

TINY = {"init": "random", "input_px": 75, "batch_size": 2, "steps_per_epoch": 1, "tune_batches": 1,
        "max_epochs": 3, "patience": 80, "keep_best": 2, "keep_random": 1, "num_workers": 0, "device": "cpu",
        "learning_rate": 1e-3}
TARGETS = {"T1": 1.0, "T2": 3.0, "T3": 2.0, "U1": 1.5, "U2": 2.5}


def tile_store_of_x40(folder: Path) -> tuple[str, Path]:
    info = slides.check_slide("x40", synthetic_slides()["x40"], None)
    path = folder / "x40.h5"
    if not path.exists():
        result = tiling.tile_slide(info, TEST_PARAMS, None, "")
        tile_store.write_tile_store(path, tiling.build_store(result, "test", "0" * 64))
    return str(info.path), path


def tiny_job(folder: Path, gene: str = "ESR1", fingerprint: str = "test") -> cnn_finetune.Job:
    slide, store = tile_store_of_x40(folder)
    reader = tiling.TileReader(slide, store)
    return cnn_finetune.Job(gene=gene, readers={s: reader for s in TARGETS}, train_samples=["T1", "T2", "T3"],
                            tune_samples=["U1", "U2"], sample_target=TARGETS, fingerprint=fingerprint)


def tiny_config(**overrides) -> cnn_finetune.FinetuneConfig:
    return cnn_finetune.FinetuneConfig.from_config({**TINY, **overrides})


def training_store(path: Path, genes=("ESR1", "MKI67")) -> Path:
    """A minimal results/expression/training.h5: patients P<sample> with TARGETS as ESR1."""
    import numpy as np

    from emo.stores.expression import write_training_store

    patients = sorted(f"P{s}" for s in TARGETS)
    values = np.array([[TARGETS[p[1:]], 10.0 - TARGETS[p[1:]]] for p in patients])[:, : len(genes)]
    write_training_store(path, {"values": values, "patients": patients, "genes": list(genes),
                                "cohort": ["c"] * len(patients), "split": ["train"] * len(patients),
                                "genes_all": list(genes), "reference_median": np.zeros(len(genes)),
                                "offsets": {"c": np.zeros(len(genes))}, "reference": "c", "fit_patients": {}},
                         {"code_version": "test"})
    return path
