"""Comparing two runs' results, provenance aside (emo.workflow.compare)."""

from __future__ import annotations

import h5py
import numpy as np

from emo.workflow.compare import compare_trees, main


def _run(root, value=1.0, code_version="aaa", created="2026-01-01", trait="MKI67"):
    (root / "tables").mkdir(parents=True)
    (root / "tables" / "t.tsv").write_text(f"gene\tr\nA\t{value}\n")
    (root / "tables" / "t.tsv.json").write_text(f'{{"code_version": "{code_version}"}}')
    with h5py.File(root / "s.h5", "w") as handle:
        handle.attrs.update({"code_version": code_version, "created": created,
                             "traits": np.array([trait, "PTPRC"], dtype=h5py.string_dtype())})
        handle["x"] = np.arange(3.0) * value
    return root


def test_provenance_differences_are_ignored(tmp_path):
    a = _run(tmp_path / "a")
    b = _run(tmp_path / "b", code_version="bbb", created="2026-12-02")
    differences, compared = compare_trees(a, b)
    assert differences == [] and compared == 2
    assert main([str(a), str(b)]) == 0


def test_content_differences_are_reported(tmp_path):
    a = _run(tmp_path / "a")
    b = _run(tmp_path / "b", value=2.0)
    c = _run(tmp_path / "c", trait="ESR1")  # a string attribute that is content, not provenance
    assert {d.path for d in compare_trees(a, b)[0]} == {"tables/t.tsv", "s.h5"}
    assert [d.path for d in compare_trees(a, c)[0]] == ["s.h5"]
    (b / "extra.tsv").write_text("x\n")
    assert any(d.problem == "only in the second run" for d in compare_trees(a, b)[0])
    assert main([str(a), str(b)]) == 1
