"""The HDF5 stores of docs/data_contracts.md, one module per contract:

- :mod:`emo.stores.tiles`: tile store ``results/tiles/{sample}.h5``
- :mod:`emo.stores.features`: feature store ``results/features/{encoder}/{sample}.h5``
- :mod:`emo.stores.predictions`: per-slide prediction store
- :mod:`emo.stores.expression`: ``results/expression/training.h5`` and ``prepared.h5``
- :mod:`emo.stores.models`: ridge baseline ``results/models/{encoder}/ridge.h5``
- :mod:`emo.stores.cnn_finetune`: per-gene tile predictions of a fine-tuned CNN

Each module has a dataclass for what the store holds and ``write_*``/``read_*``/``open_*``
functions; :mod:`emo.stores._h5` holds the shared string and attribute helpers.
Submodules are imported explicitly (``from emo.stores import features``) so a job
loads only the stores it touches.
"""
