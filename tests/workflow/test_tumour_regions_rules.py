"""The tumour options reach exactly the rules that use them (parsed workflow, no DAG):
with gene_models.tile_selection: tumour the training and prediction rules take the tumour
classifier and its threshold, with predictions.patient_slides: largest_tumour the patient
aggregate takes the per-slide tumour areas; at the defaults none of them does, so those
jobs and their outputs are as before."""

from __future__ import annotations

import yaml

from workflow_runner import make_workspace, parsed_rules

RULES = ("train_gene_chunk", "predict_slide", "patient_predictions")


def _wiring(tmp_path, **sections):
    config_path = make_workspace(tmp_path)
    config = yaml.safe_load(config_path.read_text())
    for name, values in sections.items():
        config[name].update(values)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    rules = {r.name: r for r in parsed_rules(config_path, tmp_path)}
    return {name: (set(rules[name].input._names), set(rules[name].params._names)) for name in RULES}


def test_tumour_options_wire_inputs_and_params(tmp_path):
    default = _wiring(tmp_path / "default")
    for name, (inputs, params) in default.items():
        assert not {"tumour_model", "tumour_slides"} & inputs, name
        assert not {"tumour_threshold", "patient_slides"} & params, name
    tumour = _wiring(tmp_path / "tumour", gene_models={"tile_selection": "tumour"},
                     predictions={"patient_slides": "largest_tumour"})
    for name in ("train_gene_chunk", "predict_slide"):
        inputs, params = tumour[name]
        assert "tumour_model" in inputs and "tumour_threshold" in params, name
    inputs, params = tumour["patient_predictions"]
    assert "tumour_slides" in inputs and params - default["patient_predictions"][1] == {"patient_slides"}
