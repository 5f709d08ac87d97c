"""emo.cnn_finetune: EMO's per-gene Inception V3 fine-tuning, end to end on a tiny
real tile store (75 px input, a few steps): training, resumption from a checkpoint to
the identical state, kept epochs, slide prediction, deterministic batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnn_finetune_fixtures import tiny_config, tiny_job
from emo import cnn_finetune
from emo.errors import ConfigError


def test_train_resume_identical_and_predict(tmp_path):
    """One gene, 3 epochs of 1 step (2 tiles of 75 px): uninterrupted, and preempted
    after epoch 1 then resumed; both end in the identical state and predict a slide
    identically."""
    cfg = tiny_config()
    job = tiny_job(tmp_path)
    full = cnn_finetune.train_gene(job, cfg, tmp_path / "full")
    assert full["finished"] and full["epoch"] == cfg.max_epochs
    part = cnn_finetune.train_gene(tiny_job(tmp_path), cfg, tmp_path / "split", stop_after_epochs=1)
    assert not part["finished"] and part["epoch"] == 1
    resumed = cnn_finetune.train_gene(tiny_job(tmp_path), cfg, tmp_path / "split")
    assert resumed["finished"]
    assert cnn_finetune.model_state_equal(full, resumed)
    # kept epochs: the 2 best and a 1-epoch reservoir, the same files in both runs
    kept = sorted(p.name for p in (tmp_path / "full" / "epochs").iterdir())
    assert kept == sorted(p.name for p in (tmp_path / "split" / "epochs").iterdir())
    losses = {int(e): tu for e, _, tu in full["curve"]}
    best = sorted(losses, key=lambda e: (losses[e], e))[:2]
    assert [e for _, e in full["kept_best"]] == best
    assert len(kept) == len(set(best) | {e for e in full["kept_random"] if e is not None})
    rows = cnn_finetune.export_kept(full, tmp_path / "full", tmp_path / "out")
    assert [r["best_rank"] for r in rows if r["epoch"] == best[0]] == [1]
    assert list(cnn_finetune.training_table(full)["epoch"]) == list(range(1, cfg.max_epochs + 1))
    # the best epoch's weights predict a slide (its first tiles: CPU time), one value per tile
    model = cnn_finetune.final_model(full, tmp_path / "full", cfg)
    assert model["best_epoch"] == best[0]
    slide = torch.utils.data.Subset(job.readers["U1"], range(3))
    pred = cnn_finetune.predict_tiles(model, slide, cfg)
    assert pred.shape == (3,) and np.isfinite(pred).all()
    again = cnn_finetune.predict_tiles(cnn_finetune.final_model(resumed, tmp_path / "split", cfg), slide, cfg)
    np.testing.assert_array_equal(pred, again)
    # a checkpoint of another configuration is not resumed: training starts afresh
    other = cnn_finetune.train_gene(tiny_job(tmp_path, fingerprint="other"), cfg, tmp_path / "full",
                                    stop_after_epochs=0)
    assert other["epoch"] == 0 and not (tmp_path / "full" / "epochs").exists()


def test_batches_are_a_function_of_seed_epoch_step(tmp_path):
    job = tiny_job(tmp_path)
    pool = cnn_finetune.build_pool(job.train_samples, {s: len(job.readers[s]) for s in job.train_samples},
                                   {s: 0.0 for s in job.train_samples}, None, 0)
    source = cnn_finetune.BatchSource([job.readers[s] for s in pool.samples], pool, 4, 3, 0, "train")
    x, _ = source[5]
    pos, rot, flip = source.plan(5)
    tile = job.readers["T1"][int(pool.refs[pos[0], 1])]
    expected = np.rot90(tile, int(rot[0]))
    expected = expected[:, ::-1] if flip[0] else expected
    np.testing.assert_array_equal(x[0].numpy(), expected)
    # two workers give the same batches as the main process
    serial = [b[0] for b in cnn_finetune.loader(source, range(4), 0, 2, False)]
    parallel = [b[0] for b in cnn_finetune.loader(source, range(4), 2, 2, False)]
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel))


def test_random_epochs_reservoir_is_uniform_and_stateless():
    counts = np.zeros(50)
    for seed in range(400):
        slots = [None] * 5
        for epoch in range(1, 51):
            j = cnn_finetune.random_slot(seed, epoch, 5)
            if j is not None:
                slots[j] = epoch
        counts[np.array(slots) - 1] += 1
    # each epoch is kept with probability 5/50: 40 of 400 runs (binomial sd 6)
    assert counts.sum() == 2000 and counts.min() > 20 and counts.max() < 62


def test_model_has_one_linear_output_and_paper_optimiser():
    cfg = cnn_finetune.FinetuneConfig.from_config({"init": "random"})
    assert (cfg.learning_rate, tuple(cfg.adam_betas), cfg.batch_size, cfg.steps_per_epoch, cfg.tune_batches,
            cfg.max_epochs, cfg.patience, cfg.min_delta) == (1e-6, (0.9, 0.999), 32, 150, 313, 500, 80, 0.003)
    model = cnn_finetune.build_model(cnn_finetune.dataclasses.replace(cfg, input_px=75), "G")
    assert model.fc.out_features == 1 and model.aux_logits is False
    opt = cnn_finetune.make_optimizer(model, cfg).param_groups[0]
    assert opt["lr"] == 1e-6 and opt["betas"] == (0.9, 0.999) and opt["weight_decay"] == 0


def test_missing_imagenet_weights_names_the_config_key(tmp_path):
    cfg = cnn_finetune.FinetuneConfig.from_config({"weights": str(tmp_path / "nope.pth")})
    with pytest.raises(ConfigError, match="cnn_finetune.weights"):
        cnn_finetune.build_model(cfg, "G")


def test_gene_job_writes_checkpoints_and_predictions_in_the_heads_layout(tmp_path):
    """run_gene_job (what the rule runs) for one gene, one epoch, then the collect step:
    per-slide prediction stores and a patient table in the heads' layouts."""
    import h5py

    from cnn_finetune_fixtures import TARGETS, tile_store_of_x40, training_store
    from emo import io
    from emo.stores.predictions import open_prediction_store

    slide, store = tile_store_of_x40(tmp_path)
    # a 3-tile "slide" to predict: the x40 store with its first tiles only (CPU time)
    small = tmp_path / "V1.h5"
    with h5py.File(store) as src, h5py.File(small, "w") as dst:
        for key in src:
            src.copy(key, dst)
        dst.attrs.update(src.attrs)
        coords = dst["coords"][:3]
        attrs = dict(dst["coords"].attrs)
        del dst["coords"]
        dst.create_dataset("coords", data=coords).attrs.update(attrs)
    slides = {s: cnn_finetune.SlideInput(s, slide, str(store), None) for s in TARGETS}
    slides["V1"] = cnn_finetune.SlideInput("V1", slide, str(small), None)
    sample_patient = {s: f"P{s}" for s in slides}
    settings = {**cnn_finetune.dataclasses.asdict(tiny_config(max_epochs=1, keep_best=1, keep_random=0))}
    outputs = {k: str(tmp_path / "out" / name) for k, name in
               (("model", "model.pt"), ("training", "training.tsv"), ("kept", "kept.tsv"), ("epochs", "epochs"),
                ("predictions", "predictions.h5"))}
    expression = training_store(tmp_path / "training.h5")
    with pytest.raises(Exception, match="cnn_finetune.genes"):
        cnn_finetune.run_gene_job("TP53", str(expression), slides, ["T1", "T2"], ["U1"], ["V1"], sample_patient,
                                  settings, "none", "v1", outputs, tmp_path / "state")
    model = cnn_finetune.run_gene_job("ESR1", str(expression), slides, ["T1", "T2", "T3"], ["U1", "U2"], ["V1"],
                                      sample_patient, settings, "none", "v1", outputs, tmp_path / "state")
    assert model["best_epoch"] == 1 and model["code_version"] == "v1"
    assert list(io.read_table(outputs["kept"])["epoch"]) == [1]
    assert (tmp_path / "out" / "epochs" / "epoch_0001.pt").exists()
    assert (tmp_path / "out" / "training.tsv.json").exists()
    out = {"V1": str(tmp_path / "pred" / "V1.h5")}
    patients = cnn_finetune.collect_predictions({"ESR1": outputs["predictions"]}, sample_patient, out, "v2", {})
    assert list(patients.columns) == ["patient", "ESR1"] and list(patients["patient"]) == ["PV1"]
    with open_prediction_store(out["V1"]) as reader:
        values = reader.tile_values([0])
        assert reader.tile_genes == ["ESR1"] and values.shape == (3, 1)
        assert reader.attrs["code_version"] == "v2"
    assert patients["ESR1"].iloc[0] == pytest.approx(float(values.mean()), rel=1e-6)
