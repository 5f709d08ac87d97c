"""A failing slide in a slide batch keeps the slides the batch finished (emo.smk.isolated_batch)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from emo import smk


def _job(tmp_path, samples, code_version="v1"):
    inputs = []
    for s in samples:
        path = tmp_path / "in" / f"{s}.svs"
        path.parent.mkdir(exist_ok=True)
        if not path.exists():
            path.write_text(f"slide {s}")
        inputs.append(str(path))
    sm = SimpleNamespace(input=inputs, params={"samples": samples, "mpp": {s: None for s in samples},
                                               "code_version": code_version})
    slides = [{"sample": s, "slide": i, "store": f"results/tiles/{s}.h5"} for s, i in zip(samples, inputs)]
    return sm, slides


def _run(sm, slides, fail_on=None):
    done = []
    for slide in slides:   # outputs older than the job are stale (Snakemake removes them first, too)
        if Path(slide["store"]).exists():
            os.utime(slide["store"], ns=(1, 1))
    with smk.isolated_batch(sm, slides, inputs=("slide",), outputs=("store",)) as todo:
        for slide in todo:
            if slide["sample"] == fail_on:
                raise RuntimeError(f"cannot read {slide['sample']}")
            Path(slide["store"]).parent.mkdir(parents=True, exist_ok=True)
            Path(slide["store"]).write_text(f"store of {slide['sample']}")
            done.append(slide["sample"])
    return done


def _snakemake_deletes_outputs(slides):
    for slide in slides:
        Path(slide["store"]).unlink(missing_ok=True)


def test_finished_slides_survive_a_failed_batch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sm, slides = _job(tmp_path, ["a", "b", "c", "d"])
    with pytest.raises(RuntimeError, match="cannot read c"):
        _run(sm, slides, fail_on="c")
    _snakemake_deletes_outputs(slides)
    # the bad slide is fixed; the rerun does only c and d, and a and b are back unchanged
    assert _run(sm, slides) == ["c", "d"]
    assert [Path(s["store"]).read_text() for s in slides] == [f"store of {x}" for x in "abcd"]
    assert not any(p.is_file() for p in smk.KEPT_DIR.rglob("*")), "kept copies are removed once the batch is done"


def test_kept_outputs_are_not_reused_when_their_inputs_or_code_changed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sm, slides = _job(tmp_path, ["a", "b", "c"])
    with pytest.raises(RuntimeError):
        _run(sm, slides, fail_on="c")
    _snakemake_deletes_outputs(slides)
    os.utime(slides[0]["slide"], ns=(1, 1))          # slide a replaced
    changed, _ = _job(tmp_path, ["a", "b", "c"], code_version="v2")
    assert _run(changed, slides) == ["a", "b", "c"]   # new code: nothing reused
    sm, slides = _job(tmp_path, ["a", "b", "c"])
    with pytest.raises(RuntimeError):
        _run(sm, slides, fail_on="c")
    _snakemake_deletes_outputs(slides)
    os.utime(slides[0]["slide"], ns=(2, 2))
    assert _run(sm, slides) == ["a", "c"]             # a's input changed, b's did not


def test_one_slide_jobs_are_left_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sm, slides = _job(tmp_path, ["a"])
    with pytest.raises(RuntimeError):
        _run(sm, slides, fail_on="a")
    assert not smk.KEPT_DIR.exists()
