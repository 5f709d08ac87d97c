from __future__ import annotations

import os

import pytest

from emo import provenance
from emo.io import atomic_path, write_tsv


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out" / "table.tsv"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert os.listdir(target.parent) == []


def test_write_tsv_is_byte_deterministic(tmp_path):
    import pandas as pd

    df = pd.DataFrame({"gene": ["A", "B"], "r": [0.123456789012345, 1 / 3]})
    write_tsv(df, tmp_path / "a.tsv")
    write_tsv(df.copy(), tmp_path / "b.tsv")
    assert (tmp_path / "a.tsv").read_bytes() == (tmp_path / "b.tsv").read_bytes()
    assert (tmp_path / "a.tsv").read_text().splitlines()[1] == "A\t0.123456789"


def test_hdf5_content_hash_ignores_created_only(tmp_path):
    import h5py
    import numpy as np

    def write(path, created, value):
        with h5py.File(path, "w") as handle:
            handle.attrs["created"] = created
            handle.attrs["mpp"] = 0.5
            handle.create_dataset("coords", data=np.array([[0, 0], [value, 1]], dtype="int64"))
            handle.create_dataset("reason", data=np.array(["", "pen"], dtype=h5py.string_dtype()))

    write(tmp_path / "a.h5", "2026-01-01", 5)
    write(tmp_path / "b.h5", "2026-02-02", 5)
    write(tmp_path / "c.h5", "2026-01-01", 6)
    a, b, c = (provenance.hdf5_content_sha256(tmp_path / f"{n}.h5") for n in "abc")
    assert a == b
    assert a != c
    assert provenance.file_sha256(tmp_path / "a.h5") != provenance.file_sha256(tmp_path / "b.h5")
