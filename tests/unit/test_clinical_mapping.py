"""Config key clinical_mapping: the clinical table's own column names and codings mapped
to the pipeline's in emo.stats.inputs.read_clinical, and each bad mapping refused by name."""

from __future__ import annotations

import pandas as pd
import pytest

from emo.errors import ConfigError, InputTableError
from emo.stats.inputs import check_clinical_mapping, clinical_column_names, load_clinical, read_clinical
from emo.workflow.plan import _check_survival_clinical

CANONICAL = ("patient\ter\tsurvival_time\tsurvival_event\tnodes_positive\tpam50\n"
             "P1\tpositive\t12.5\t1\t0\tLumA\n"
             "P2\tnegative\t30\t0\t3\tBasal\n"
             "P3\tpositive\t7\t1\t1\tLumB\n"
             "P4\tnegative\t\t\t2\tHer2\n")
OWN = ("patient\ter_status\tos_time\tos_event\tnodes\tpam50\n"
       "P1\tPositive\t12.5\tdead\tN0\tLumA\n"
       "P2\tNegative\t30\talive\tN3\tBasal\n"
       "P3\tPositive\t7\tdead\tN1\tLumB\n"
       "P4\tNegative\t\t\tN2\tHer2\n")
MAPPING = {
    "columns": {"er": "er_status", "survival_time": "os_time", "survival_event": "os_event",
                "nodes_positive": "nodes"},
    "values": {"er": {"Positive": "positive", "Negative": "negative"},
               "survival_event": {"dead": 1, "alive": 0},
               "nodes_positive": {"N0": 0, "N1": 1, "N2": 2, "N3": 3}},
}


def _write(tmp_path, text, name="clinical.tsv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_mapped_table_equals_canonical(tmp_path):
    own = read_clinical(_write(tmp_path, OWN), MAPPING, known=clinical_column_names())
    canonical = read_clinical(_write(tmp_path, CANONICAL, "canonical.tsv"))
    pd.testing.assert_frame_equal(own[list(canonical.columns)], canonical)
    # and as the statistics stage loads it
    pd.testing.assert_frame_equal(load_clinical(tmp_path / "clinical.tsv", ["er"], MAPPING),
                                  load_clinical(tmp_path / "canonical.tsv", ["er"]))


def test_no_mapping_leaves_table_unchanged(tmp_path):
    path = _write(tmp_path, OWN)
    pd.testing.assert_frame_equal(read_clinical(path, {"columns": {}, "values": {}}), read_clinical(path))
    assert "er_status" in read_clinical(path).columns


def test_mapped_patient_column_is_text(tmp_path):
    path = _write(tmp_path, "id\ter\n001\tpositive\n002\tnegative\n")
    table = read_clinical(path, {"columns": {"patient": "id"}})
    assert table["patient"].tolist() == ["001", "002"]


def test_unknown_pipeline_column(tmp_path):
    with pytest.raises(ConfigError, match=r"clinical_mapping\.columns.*'oestrogen'"):
        check_clinical_mapping({"columns": {"oestrogen": "er_status"}}, clinical_column_names())
    with pytest.raises(ConfigError, match=r"clinical_mapping\.values.*'event'"):
        check_clinical_mapping({"values": {"event": {"dead": 1}}}, clinical_column_names())


def test_covariate_named_in_config_may_be_mapped():
    config = {"survival": {"covariates": ["ki67_index"]}}
    check_clinical_mapping({"columns": {"ki67_index": "Ki67"}}, clinical_column_names(config))


def test_source_column_absent(tmp_path):
    path = _write(tmp_path, OWN)
    with pytest.raises(InputTableError, match=r"clinical_mapping\.columns\.her2' names column 'her2_status', "
                                              r"which the table lacks"):
        read_clinical(path, {"columns": {"her2": "her2_status"}})


def test_one_source_two_pipeline_columns():
    with pytest.raises(ConfigError, match=r"'er_status' is mapped to more than one pipeline column "
                                          r"\(clinical_mapping\.columns\.er, clinical_mapping\.columns\.pr\)"):
        check_clinical_mapping({"columns": {"er": "er_status", "pr": "er_status"}}, clinical_column_names())


def test_renamed_column_collides(tmp_path):
    path = _write(tmp_path, "patient\ter\ter_status\nP1\tpositive\tPositive\n")
    with pytest.raises(InputTableError, match=r"already has a column 'er'"):
        read_clinical(path, {"columns": {"er": "er_status"}})


def test_values_still_uncoded_after_mapping(tmp_path):
    path = _write(tmp_path, OWN.replace("P3\tPositive\t7\tdead", "P3\tPositive\t7\tlost"))
    mapping = {**MAPPING, "values": {**MAPPING["values"], "survival_event": {"dead": 1, "alive": 0}}}
    with pytest.raises(InputTableError, match=r"column 'survival_event': after config key "
                                              r"'clinical_mapping\.values\.survival_event' value\(s\) 'lost' "
                                              r"are still not in the coding the pipeline needs \(0 \(censored\)"):
        read_clinical(path, mapping)
    # positive/negative in any case is the stage's coding; 'Equivocal' is not
    with pytest.raises(InputTableError, match=r"column 'er'.*'clinical_mapping\.values\.er' value\(s\) 'Equivocal'"):
        read_clinical(_write(tmp_path, OWN.replace("P2\tNegative", "P2\tEquivocal"), "b.tsv"),
                      {"columns": MAPPING["columns"], "values": {"er": {"Positive": "positive"}}})


def test_dag_build_survival_check_reads_through_mapping(tmp_path):
    path = _write(tmp_path, OWN)
    config = {"clinical": str(path), "heterogeneity": {"enabled": True}, "survival": {"enabled": True},
              "statistics": {}}
    with pytest.raises(InputTableError, match="survival_time"):  # unmapped: columns absent
        _check_survival_clinical(config)
    _check_survival_clinical({**config, "clinical_mapping": MAPPING})


def test_integer_codes_from_yaml_keys(tmp_path):
    """YAML reads `values: {survival_event: {2: 1, 1: 0}}` with integer keys; the table's
    cells are text ('2', '1'): the codes must still match."""
    import yaml

    mapping = yaml.safe_load("columns: {survival_event: vital}\nvalues: {survival_event: {2: 1, 1: 0}}\n")
    assert list(mapping["values"]["survival_event"]) == [2, 1]
    table = _write(tmp_path, "patient\tvital\tsurvival_time\nP1\t2\t5\nP2\t1\t7\nP3\t\t9\n")
    clinical = read_clinical(table, mapping, known=clinical_column_names())
    assert clinical["survival_event"].tolist()[:2] == [1, 0] and pd.isna(clinical["survival_event"].iloc[2])
