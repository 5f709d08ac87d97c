"""The optional cnn_finetune stage's wiring (parsed workflow, no DAG): off by default
(no targets), and when enabled one GPU rule per gene with the stage's settings as
params; an unknown gene is refused when the workflow is parsed, naming the config key."""

from __future__ import annotations

import pytest
import yaml

from workflow_runner import make_workspace, parsed_rules


def _config(tmp_path, **section):
    config_path = make_workspace(tmp_path)
    config = yaml.safe_load(config_path.read_text())
    config["cnn_finetune"] = section
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return config_path


def test_enabled_stage_is_one_gpu_job_per_gene(tmp_path):
    config = _config(tmp_path, enabled=True, genes=["MKI67", "ESR1"], max_epochs=3)
    rules = {r.name: r for r in parsed_rules(config, tmp_path)}
    gene = rules["cnn_finetune_gene"]
    assert gene.resources["gpu"] == 1
    assert set(gene.params._names) >= {"settings", "train_samples", "tune_samples", "predict_samples",
                                       "state_dir", "code_version"}
    assert gene.params.settings["max_epochs"] == 3 and gene.params.settings["learning_rate"] == 1e-6
    assert str(gene.output[0]).startswith("results/cnn_finetune/{gene") and str(gene.output[0]).endswith("}/model.pt")
    collect = rules["cnn_finetune_predictions"]
    assert [str(p) for p in collect.input] == [f"results/cnn_finetune/{g}/{f}" for f in
                                               ("predictions.h5",) for g in ("ESR1", "MKI67")] + \
        [f"results/cnn_finetune/{g}/training.tsv" for g in ("ESR1", "MKI67")]


def test_unknown_gene_is_refused_naming_the_key(tmp_path):
    config = _config(tmp_path, enabled=True, genes=["NOT_A_GENE"])
    with pytest.raises(Exception, match="cnn_finetune.genes"):
        parsed_rules(config, tmp_path)
