"""Per-gene end-to-end CNN fine-tuning, as EMO (Wang et al. 2021, paper 001).

One Inception V3 per gene, its last layer replaced by one linear neuron, trained on
tile pixels with every tile's target its patient's (standardised) expression:

* MSE loss; Adam (lr 1e-6, betas 0.9 / 0.999, Keras' epsilon 1e-7, no decay);
* random 90° rotations and flips; 32 tiles per step, 150 steps per epoch;
* a fixed seeded sample of 313 tune batches scores every epoch; Keras-style early
  stopping (min_delta 0.003, patience 80, at most 500 epochs:
  :class:`emo.gene_models.EarlyStopping`);
* the weights of the 10 best epochs (tune loss) and of 10 random epochs are kept; the
  best epoch predicts the prediction slides (the mean of a slide's tile predictions is
  its slide prediction).

Determinism and resumption. Each batch is a pure function of (seed, epoch, step): its
tiles (uniform with replacement over the training tile pool), rotations and flips come
from a generator seeded by those numbers, inside the loader workers, so the loader's
worker count and timing change nothing. A checkpoint (model, optimiser, torch RNG
states, epoch, early-stopping state, curves, kept-epoch list) is written atomically
after every epoch; a restarted job continues from it and ends in the state of an
uninterrupted run (tests/unit/test_cnn_finetune.py).

Tiles come from the slides through :class:`emo.tiling.TileReader` (``tile_source:
stream``) or are first copied to node-local disk (``stage``: one uint8 memmap of every
pool tile, as the paper copied its tiles to the nodes' NVMe), and are read by
``num_workers`` DataLoader workers that keep ``prefetch_batches`` batches ready
(the paper: two CPU threads, a buffer of two mini-batches).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .errors import ConfigError, InputTableError

log = logging.getLogger("emo")
FORMAT = "emo.cnn_finetune/1"
INCEPTION_MEAN = INCEPTION_STD = (0.5, 0.5, 0.5)   # Google weights: inputs in [-1, 1]


@dataclasses.dataclass
class FinetuneConfig:
    """Config section ``cnn_finetune``; defaults (the paper's values) come from the schema."""

    input_px: int
    init: str                 # imagenet | random
    weights: str | None
    learning_rate: float
    adam_betas: list
    adam_eps: float
    batch_size: int
    steps_per_epoch: int
    tune_batches: int
    max_epochs: int
    patience: int
    min_delta: float
    keep_best: int
    keep_random: int
    max_tiles_per_slide: int | None
    tile_source: str          # stream | stage
    stage_dir: str | None
    num_workers: int
    prefetch_batches: int
    seed: int
    device: str

    @classmethod
    def from_config(cls, section: Mapping | None) -> "FinetuneConfig":
        from .settings import section as settings_section

        values = settings_section("cnn_finetune", section)
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls)})


def _stable_int(*parts) -> int:
    return int.from_bytes(hashlib.sha256(json.dumps(parts).encode()).digest()[:8], "big")


# ------------------------------------------------------------------------ the model
def weights_path(cfg: FinetuneConfig) -> Path | None:
    """The ImageNet weights file (``init: imagenet``), None for random init. A missing
    file raises ConfigError naming ``cnn_finetune.weights``."""
    if cfg.init == "random":
        return None
    from .encoders import get_spec

    spec = get_spec("inception_v3")
    path = Path(cfg.weights).expanduser() if cfg.weights else spec.default_weights()
    if path is None or not path.is_file():
        raise ConfigError(
            f"config key cnn_finetune.weights: the Inception V3 ImageNet weights file {str(path)!r} does not exist. "
            f"Download {spec.weights_file} from {spec.weights_source} and set cnn_finetune.weights to its path "
            "(nothing is downloaded at run time), or set cnn_finetune.init: random.")
    return path.resolve()


def build_model(cfg: FinetuneConfig, gene: str) -> nn.Module:
    """Inception V3 (no auxiliary head) with ``fc`` = one linear neuron. ImageNet weights
    from the local file (every layer but ``fc``), or a seeded random init."""
    from .encoders.cnn import import_torchvision_models
    from .encoders.loading import read_state_dict

    path = weights_path(cfg)
    torch.manual_seed(_stable_int(cfg.seed, "init", gene) % 2**63)
    model = import_torchvision_models().inception_v3(weights=None, aux_logits=False, init_weights=path is None,
                                                     transform_input=False)
    if path is not None:
        state = {k: v for k, v in read_state_dict(path).items() if not k.startswith(("fc.", "AuxLogits."))}
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("fc.") and not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise ConfigError(f"config key cnn_finetune.weights: {path} is not an Inception V3 state dict "
                              f"({len(missing)} missing keys, e.g. {missing[:3]}; {len(unexpected)} unexpected, "
                              f"e.g. {unexpected[:3]})")
    model.fc = nn.Linear(model.fc.in_features, 1)
    nn.init.normal_(model.fc.weight, std=1e-3)
    nn.init.zeros_(model.fc.bias)      # targets are standardised: start at the training mean
    return model


def make_optimizer(model: nn.Module, cfg: FinetuneConfig) -> torch.optim.Adam:
    return torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, betas=tuple(cfg.adam_betas),
                            eps=cfg.adam_eps, weight_decay=0.0)


# ---------------------------------------------------------------------- tile pools
@dataclasses.dataclass
class TilePool:
    """Tiles of a split: ``refs`` (M, 2) = (slide index, tile index in its store)."""

    samples: list[str]
    refs: np.ndarray
    targets: np.ndarray       # (M,) standardised target of each tile (its patient's)


def select_tiles(n_tiles: int, cap: int | None, seed: int, sample: str) -> np.ndarray:
    from .gene_models import select_tiles as select

    return select(n_tiles, cap, seed, sample)


def build_pool(samples: Sequence[str], n_tiles: Mapping[str, int], sample_target: Mapping[str, float],
               cap: int | None, seed: int) -> TilePool:
    refs, targets = [], []
    samples = sorted(samples)
    for i, s in enumerate(samples):
        idx = select_tiles(int(n_tiles[s]), cap, seed, s)
        refs.append(np.stack([np.full(idx.size, i), idx], 1))
        targets.append(np.full(idx.size, sample_target[s], dtype=np.float32))
    if not refs or sum(r.shape[0] for r in refs) == 0:
        raise InputTableError(f"no accepted tiles in slides {list(samples)[:5]}: nothing to train or tune on "
                              "(check tiling QC)")
    return TilePool(samples, np.concatenate(refs).astype(np.int64), np.concatenate(targets))


class StagedTiles:
    """Every tile of the given readers copied once into a uint8 memmap on local disk
    (``stage``); indexable like the readers, by (reader, tile)."""

    def __init__(self, readers: Sequence, folder: str | Path, name: str):
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.offsets = np.concatenate([[0], np.cumsum([len(r) for r in readers])]).astype(np.int64)
        px = readers[0].tile_px
        self.path = folder / f"{name}.u8"
        shape = (int(self.offsets[-1]), px, px, 3)
        tmp = self.path.with_suffix(".tmp")
        data = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        for i, reader in enumerate(readers):
            for j in range(len(reader)):
                data[self.offsets[i] + j] = reader[j]
        data.flush()
        del data
        os.replace(tmp, self.path)
        self._data = None

    def get(self, reader: int, tile: int) -> np.ndarray:
        if self._data is None:
            self._data = np.load(self.path, mmap_mode="r")
        return np.asarray(self._data[self.offsets[reader] + tile])

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_data"] = None
        return state

    def remove(self) -> None:
        self._data = None
        self.path.unlink(missing_ok=True)


class BatchSource(torch.utils.data.Dataset):
    """Batch ``k`` = (uint8 (B, H, W, 3), float32 (B,) targets), a pure function of k.

    ``mode="train"``: k = epoch * steps + step; tiles uniform with replacement from the
    pool, random 90° rotation and flip, all from a generator seeded by (seed, epoch,
    step). ``mode="tune"``: k = tune batch; tiles from a generator seeded by (seed, k),
    no augmentation (the same tune batches every epoch)."""

    def __init__(self, readers: Sequence, pool: TilePool, batch_size: int, steps: int, seed: int, mode: str,
                 staged: StagedTiles | None = None):
        self.readers, self.pool, self.batch_size, self.steps = list(readers), pool, int(batch_size), int(steps)
        self.seed, self.mode, self.staged = int(seed), mode, staged

    def __len__(self) -> int:
        return 2**62

    def plan(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(tile positions in the pool, rotations 0-3, flips 0/1) of batch k."""
        if self.mode == "train":
            rng = np.random.default_rng([self.seed, 11, k // self.steps, k % self.steps])
        else:
            rng = np.random.default_rng([self.seed, 13, k])
        pos = rng.integers(0, self.pool.refs.shape[0], size=self.batch_size)
        rot = rng.integers(0, 4, size=self.batch_size)
        flip = rng.integers(0, 2, size=self.batch_size)
        if self.mode != "train":
            rot[:], flip[:] = 0, 0
        return pos, rot, flip

    def tile(self, reader: int, index: int) -> np.ndarray:
        if self.staged is not None:
            return self.staged.get(reader, index)
        return self.readers[reader][index]

    def __getitem__(self, k: int):
        pos, rot, flip = self.plan(int(k))
        tiles = []
        for p, r, f in zip(pos, rot, flip):
            t = np.rot90(self.tile(*self.pool.refs[p]), int(r))
            tiles.append(np.ascontiguousarray(t[:, ::-1] if f else t))
        return torch.from_numpy(np.stack(tiles)), torch.from_numpy(self.pool.targets[pos])


def loader(source, indices: Sequence[int], num_workers: int, prefetch_batches: int, pin_memory: bool,
           persistent: bool = False):
    """Ordered DataLoader over batch indices; ``num_workers`` processes keep
    ``prefetch_batches`` batches in flight in all (the paper's buffer of two batches)."""
    kwargs = {}
    if num_workers > 0:
        kwargs = {"prefetch_factor": max(1, -(-int(prefetch_batches) // int(num_workers))),
                  "persistent_workers": persistent}
    # its own generator: creating an iterator then draws no number from torch's global
    # RNG (whose state the checkpoint holds for dropout)
    return torch.utils.data.DataLoader(source, batch_size=None, sampler=list(indices), num_workers=num_workers,
                                       pin_memory=pin_memory, generator=torch.Generator().manual_seed(0), **kwargs)


# -------------------------------------------------------------------- kept epochs
def random_slot(seed: int, epoch: int, k: int) -> int | None:
    """Reservoir sampling of ``k`` epochs (algorithm R): epoch ``epoch`` (1-based) takes
    this slot, or None. Stateless (seeded by (seed, epoch)), so a resumed run keeps the
    same epochs; after E epochs the slots hold a uniform random k of them."""
    if k <= 0:
        return None
    if epoch <= k:
        return epoch - 1
    j = _stable_int(seed, "keep", epoch) % epoch
    return j if j < k else None


@dataclasses.dataclass
class KeptEpochs:
    best: list[tuple[float, int]]       # (tune loss, epoch), best first
    random: list[int | None]            # reservoir slots

    def files(self) -> set[int]:
        return {e for _, e in self.best} | {e for e in self.random if e is not None}


def update_kept(kept: KeptEpochs, epoch: int, loss: float, cfg: FinetuneConfig) -> bool:
    """Record an epoch; True when its weights must be saved."""
    keep = False
    if cfg.keep_best > 0:
        candidates = sorted(kept.best + [(float(loss), int(epoch))])[: cfg.keep_best]
        if (float(loss), int(epoch)) in candidates:
            keep = True
        kept.best = candidates
    slot = random_slot(cfg.seed, epoch, cfg.keep_random)
    if slot is not None:
        while len(kept.random) <= slot:
            kept.random.append(None)
        kept.random[slot] = int(epoch)
        keep = True
    return keep


# ---------------------------------------------------------------------- training
@dataclasses.dataclass
class Job:
    """What one gene's training needs: the slides of each split as tile readers."""

    gene: str
    readers: Mapping[str, object]              # sample -> TileReader (or any indexable tile source)
    train_samples: Sequence[str]
    tune_samples: Sequence[str]
    sample_target: Mapping[str, float]         # sample -> its patient's expression (log scale)
    fingerprint: str = ""                      # settings, inputs, code: a checkpoint of another job is ignored


def _epoch_path(state_dir: Path, epoch: int) -> Path:
    return state_dir / "epochs" / f"epoch_{epoch:04d}.pt"


def _save(obj, path: Path) -> None:
    from .io import atomic_path

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _rng_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: Mapping, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def resolve_device(name: str) -> torch.device:
    """The job's torch device (emo.features.select_device, naming cnn_finetune.device)."""
    from .features import select_device

    return select_device(name, "cnn_finetune.device")


def _targets(job: Job) -> tuple[dict[str, float], float, float]:
    """Standardised per-sample targets (training slides' patients' mean / sd)."""
    values = np.array([job.sample_target[s] for s in job.train_samples], dtype=np.float64)
    mean, sd = float(values.mean()), float(values.std())
    sd = sd if sd > 1e-8 else 1.0
    return {s: (float(v) - mean) / sd for s, v in job.sample_target.items()}, mean, sd


def train_gene(job: Job, cfg: FinetuneConfig, state_dir: str | Path, stop_after_epochs: int | None = None,
               log_every: int = 1) -> dict:
    """:func:`_train_gene` with torch's deterministic-algorithms switch restored for the
    caller afterwards (training switches it on)."""
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    try:
        return _train_gene(job, cfg, state_dir, stop_after_epochs, log_every)
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


def _train_gene(job: Job, cfg: FinetuneConfig, state_dir: str | Path, stop_after_epochs: int | None = None,
                log_every: int = 1) -> dict:
    """Train (or resume) one gene. ``state_dir`` holds ``checkpoint.pt`` and the kept
    epochs' weights; ``stop_after_epochs`` ends this call after that many epochs of this
    call (a simulated preemption, for tests). Returns the final state (also the
    checkpoint): ``finished`` tells whether training is complete."""
    from .features import Preprocess
    from .gene_models import EarlyStopping

    if not job.train_samples:
        raise InputTableError(f"gene {job.gene}: no training slides (the train split is empty)")
    if not job.tune_samples:
        raise InputTableError(f"gene {job.gene}: no tune slides; early stopping needs tune patients "
                              "(raise splits.proportions.tune)")
    state_dir = Path(state_dir)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")   # deterministic cuBLAS (before CUDA starts)
    device = resolve_device(cfg.device)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
    targets, t_mean, t_sd = _targets(job)
    n_tiles = {s: len(job.readers[s]) for s in list(job.train_samples) + list(job.tune_samples)}
    train_pool = build_pool(job.train_samples, n_tiles, targets, cfg.max_tiles_per_slide, cfg.seed)
    tune_pool = build_pool(job.tune_samples, n_tiles, targets, None, cfg.seed)

    model = build_model(cfg, job.gene).to(device)
    optimizer = make_optimizer(model, cfg)
    stopping = EarlyStopping(1, cfg.min_delta, cfg.patience)
    kept = KeptEpochs([], [])
    curve: list[tuple[int, float, float]] = []
    epoch = 0
    checkpoint = state_dir / "checkpoint.pt"
    if checkpoint.exists():
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
        if ckpt.get("format") == FORMAT and ckpt.get("fingerprint") == job.fingerprint and ckpt["gene"] == job.gene:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            for f, v in ckpt["stopping"].items():
                setattr(stopping, f, np.asarray(v).copy())
            kept = KeptEpochs([tuple(b) for b in ckpt["kept_best"]], list(ckpt["kept_random"]))
            curve = [tuple(c) for c in ckpt["curve"]]
            epoch = int(ckpt["epoch"])
            _set_rng_state(ckpt["rng"], device)
            log.info("gene %s: resumed from %s at epoch %d", job.gene, checkpoint, epoch)
            if ckpt["finished"] and (epoch >= cfg.max_epochs or not stopping.active[0]):
                return ckpt
        else:
            log.warning("gene %s: %s is from another configuration or code; starting afresh", job.gene, checkpoint)
            shutil.rmtree(state_dir / "epochs", ignore_errors=True)

    preprocess = Preprocess(cfg.input_px, INCEPTION_MEAN, INCEPTION_STD, device, channels_last=device.type == "cuda")
    readers = [job.readers[s] for s in train_pool.samples]
    tune_readers = [job.readers[s] for s in tune_pool.samples]
    staged = tune_staged = None
    if cfg.tile_source == "stage":
        folder = Path(cfg.stage_dir or os.environ.get("TMPDIR", "/tmp")) / f"emo_cnn_finetune_{os.getpid()}"
        staged = StagedTiles(readers, folder, "train")
        tune_staged = StagedTiles(tune_readers, folder, "tune")
    train_source = BatchSource(readers, train_pool, cfg.batch_size, cfg.steps_per_epoch, cfg.seed, "train", staged)
    tune_source = BatchSource(tune_readers, tune_pool, cfg.batch_size, 1, cfg.seed, "tune", tune_staged)
    pin = device.type == "cuda"
    loss_fn = nn.MSELoss()
    done_here = 0
    finished = False
    # one ordered stream of every remaining training batch (workers read ahead across
    # epoch ends), and one persistent loader of the fixed tune batches
    train_batches = iter(loader(train_source, range(epoch * cfg.steps_per_epoch, cfg.max_epochs * cfg.steps_per_epoch),
                                cfg.num_workers, cfg.prefetch_batches, pin))
    tune_batches = loader(tune_source, range(cfg.tune_batches), cfg.num_workers, cfg.prefetch_batches, pin,
                          persistent=True)
    try:
        while True:
            if epoch >= cfg.max_epochs or not stopping.active[0]:
                finished = True
                break
            if stop_after_epochs is not None and done_here >= stop_after_epochs:
                break
            epoch += 1
            t0 = time.perf_counter()
            model.train()
            total = 0.0
            for _ in range(cfg.steps_per_epoch):
                x, y = next(train_batches)
                optimizer.zero_grad(set_to_none=True)
                out = model(preprocess(x)).squeeze(1)
                loss = loss_fn(out, y.to(device, non_blocking=True))
                loss.backward()
                optimizer.step()
                total += float(loss.detach())
            tune = tune_loss(model, tune_batches, cfg, preprocess, device)
            stopping.update(epoch, np.array([tune]))
            if update_kept(kept, epoch, tune, cfg):       # written before the checkpoint that lists it
                _save(model.state_dict(), _epoch_path(state_dir, epoch))
            curve.append((epoch, total / cfg.steps_per_epoch, tune))
            done_here += 1
            ckpt = _checkpoint(job, model, optimizer, stopping, kept, curve, epoch, device, False, t_mean, t_sd)
            _save(ckpt, checkpoint)
            for stale in (state_dir / "epochs").glob("epoch_*.pt"):   # evicted: after the checkpoint
                if int(stale.stem.split("_")[1]) not in kept.files():
                    stale.unlink()
            if epoch % log_every == 0:
                log.info("gene %s epoch %d: train %.4f tune %.4f (%.1f s)", job.gene, epoch, curve[-1][1], tune,
                         time.perf_counter() - t0)
    finally:
        del train_batches, tune_batches
        for s in (staged, tune_staged):
            if s is not None:
                s.remove()
    ckpt = _checkpoint(job, model, optimizer, stopping, kept, curve, epoch, device, finished, t_mean, t_sd)
    _save(ckpt, checkpoint)
    return ckpt


def tune_loss(model: nn.Module, batches, cfg: FinetuneConfig, preprocess, device) -> float:
    """Mean MSE (standardised units) over the ``tune_batches`` fixed tune batches."""
    model.eval()
    total = 0.0
    with torch.no_grad():
        for x, y in batches:
            out = model(preprocess(x)).squeeze(1).float()
            total += float(((out - y.to(device)) ** 2).mean())
    return total / cfg.tune_batches


def _checkpoint(job, model, optimizer, stopping, kept, curve, epoch, device, finished, t_mean, t_sd) -> dict:
    return {
        "format": FORMAT, "gene": job.gene, "fingerprint": job.fingerprint, "epoch": int(epoch),
        "finished": bool(finished), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "stopping": {k: v.copy() for k, v in vars(stopping).items() if isinstance(v, np.ndarray)},
        "kept_best": [list(b) for b in kept.best], "kept_random": list(kept.random), "curve": [list(c) for c in curve],
        "rng": _rng_state(device), "target_mean": float(t_mean), "target_sd": float(t_sd),
    }


def best_epoch(state: Mapping) -> int:
    return int(min(state["kept_best"])[1]) if state["kept_best"] else int(state["epoch"])


def final_model(state: Mapping, state_dir: str | Path, cfg: FinetuneConfig) -> dict:
    """The best epoch's weights with what prediction needs (``model.pt``)."""
    epoch = best_epoch(state)
    path = _epoch_path(Path(state_dir), epoch)
    weights = torch.load(path, map_location="cpu", weights_only=True) if path.exists() else state["model"]
    return {"format": FORMAT, "gene": state["gene"], "best_epoch": epoch,
            "best_tune_loss": float(min(state["kept_best"])[0]) if state["kept_best"] else float("nan"),
            "epochs_run": int(state["epoch"]), "stopped_early": bool(np.asarray(state["stopping"]["stopped_early"])[0]),
            "target_mean": state["target_mean"], "target_sd": state["target_sd"], "model": weights,
            "config": dataclasses.asdict(cfg)}


def export_kept(state: Mapping, state_dir: str | Path, out_dir: str | Path) -> list[dict]:
    """Copy the kept epochs' weights to ``out_dir`` (hard links where possible); rows
    of ``kept.tsv``: epoch, tune_loss, best_rank (1 = best, 0 = not among the best), random."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    loss = {int(c[0]): float(c[2]) for c in state["curve"]}
    best_rank = {int(e): i + 1 for i, (_, e) in enumerate(state["kept_best"])}
    random = {int(e) for e in state["kept_random"] if e is not None}
    rows = []
    for epoch in sorted(best_rank.keys() | random):
        src, dst = _epoch_path(Path(state_dir), epoch), out_dir / f"epoch_{epoch:04d}.pt"
        dst.unlink(missing_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
        rows.append({"epoch": epoch, "tune_loss": loss.get(epoch, float("nan")), "best_rank": best_rank.get(epoch, 0),
                     "random": epoch in random})
    return rows


# -------------------------------------------------------------------- prediction
def predict_tiles(model_state: Mapping, reader, cfg: FinetuneConfig, batch_size: int | None = None) -> np.ndarray:
    """(N,) expression-scale predictions of every tile of ``reader`` (store order)."""
    from .features import Preprocess, collate_uint8

    device = resolve_device(cfg.device)
    model = build_model(dataclasses.replace(cfg, init="random"), model_state["gene"])
    model.load_state_dict(model_state["model"])
    model.to(device).eval()
    preprocess = Preprocess(cfg.input_px, INCEPTION_MEAN, INCEPTION_STD, device, channels_last=device.type == "cuda")
    data = torch.utils.data.DataLoader(reader, batch_size=batch_size or cfg.batch_size, shuffle=False,
                                       num_workers=cfg.num_workers, collate_fn=collate_uint8)
    out = []
    with torch.no_grad():
        for x in data:
            out.append(model(preprocess(x)).squeeze(1).float().cpu().numpy())
    z = np.concatenate(out) if out else np.zeros(0, np.float32)
    return (z.astype(np.float64) * model_state["target_sd"] + model_state["target_mean"]).astype(np.float32)


def training_table(state: Mapping):
    import pandas as pd

    files = {int(e) for e in KeptEpochs([tuple(b) for b in state["kept_best"]], list(state["kept_random"])).files()}
    return pd.DataFrame([{"epoch": int(e), "train_loss": float(tr), "tune_loss": float(tu), "kept": int(e) in files}
                         for e, tr, tu in state["curve"]], columns=["epoch", "train_loss", "tune_loss", "kept"])


def model_state_equal(a: Mapping, b: Mapping) -> bool:
    """Bitwise equality of two checkpoints' model, optimiser and training records."""
    def same(x, y) -> bool:
        if isinstance(x, torch.Tensor):
            return isinstance(y, torch.Tensor) and x.shape == y.shape and bool(torch.equal(x, y))
        if isinstance(x, np.ndarray):
            return np.array_equal(x, y)
        if isinstance(x, Mapping):
            return isinstance(y, Mapping) and x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
        if isinstance(x, (list, tuple)):
            return len(x) == len(y) and all(same(u, v) for u, v in zip(x, y))
        return x == y
    keys = ("model", "optimizer", "stopping", "kept_best", "kept_random", "curve", "epoch", "rng", "finished")
    return all(same(a[k], b[k]) for k in keys)


# -------------------------------------------------------------------------- jobs
@dataclasses.dataclass
class SlideInput:
    sample: str
    slide: str
    tile_store: str
    mpp: float | None


# settings that change what training computes; the others (resources, loader, device,
# prediction splits, max_epochs: raising it continues a finished run) do not void a checkpoint
FINGERPRINT_KEYS = ("input_px", "init", "weights", "learning_rate", "adam_betas", "adam_eps", "batch_size",
                    "steps_per_epoch", "tune_batches", "patience", "min_delta", "keep_best", "keep_random",
                    "max_tiles_per_slide", "seed")


def job_fingerprint(gene: str, settings: Mapping, train: Sequence[str], tune: Sequence[str],
                    targets: Mapping[str, float], code_version: str) -> str:
    """What a checkpoint must share with the job to be resumed."""
    payload = json.dumps({"gene": gene, "settings": {k: settings.get(k) for k in FINGERPRINT_KEYS}, "train": list(train), "tune": list(tune),
                          "targets": {s: float(v) for s, v in sorted(targets.items())}, "code": code_version},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def gene_targets(expression_path: str | Path, gene: str, samples: Sequence[str],
                 sample_patient: Mapping[str, str]) -> dict[str, float]:
    """Sample -> its patient's prepared expression of ``gene`` (the training store)."""
    from .stores.expression import read_expression_store

    store = read_expression_store(expression_path)
    genes = list(store.genes)
    if gene not in genes:
        raise InputTableError(f"gene {gene!r} (config key cnn_finetune.genes) is not among the genes that pass the "
                              f"variance filter in {expression_path}; remove it from cnn_finetune.genes")
    values = np.asarray(store.values)[:, genes.index(gene)]
    row = {p: i for i, p in enumerate(store.patients)}
    missing = sorted({sample_patient[s] for s in samples if sample_patient[s] not in row})
    if missing:
        raise InputTableError(f"patient(s) {missing[:5]} have train/tune slides but no expression in "
                              f"{expression_path}; check the expression matrices")
    return {s: float(values[row[sample_patient[s]]]) for s in samples}


def run_gene_job(gene: str, expression_path: str, slides: Mapping[str, SlideInput], train: Sequence[str],
                 tune: Sequence[str], predict: Sequence[str], sample_patient: Mapping[str, str], settings: Mapping,
                 stain_method: str, code_version: str, outputs: Mapping[str, str], state_dir: str | Path) -> dict:
    """One gene end to end: train (resuming from ``state_dir``), keep the best and
    random epochs, predict the ``predict`` slides with the best epoch. ``outputs``:
    model, training, kept, epochs (folder), predictions."""
    from . import io, provenance
    from .stores.cnn_finetune import GeneTilePredictions, write_gene_predictions
    from .stores.tiles import read_tile_store_header
    from .tiling import TileReader

    cfg = FinetuneConfig.from_config({k: v for k, v in settings.items()
                                      if k in {f.name for f in dataclasses.fields(FinetuneConfig)}})
    weights_path(cfg)                                    # a missing weights file fails before any work
    targets = gene_targets(expression_path, gene, list(train) + list(tune), sample_patient)
    normalise = stain_method == "macenko"
    readers = {s: TileReader(slides[s].slide, slides[s].tile_store, slides[s].mpp, normalise)
               for s in sorted(set(train) | set(tune) | set(predict))}
    job = Job(gene, readers, sorted(train), sorted(tune), targets,
              job_fingerprint(gene, settings, sorted(train), sorted(tune), targets, code_version))
    log.info("gene %s: %d train slides (%d tiles), %d tune slides; device %s", gene, len(train),
             sum(len(readers[s]) for s in train), len(tune), resolve_device(cfg.device))
    state = train_gene(job, cfg, state_dir)
    model = final_model(state, state_dir, cfg)
    model.update(code_version=code_version, weights=str(weights_path(cfg) or ""))
    _save(model, Path(outputs["model"]))
    params = {"cnn_finetune": dict(settings), "gene": gene}
    inputs = [expression_path] + [slides[s].tile_store for s in sorted(readers)]
    io.write_tsv(training_table(state), outputs["training"])
    provenance.write_sidecar(outputs["training"], code_version, params, inputs)
    import pandas as pd

    kept = pd.DataFrame(export_kept(state, state_dir, outputs["epochs"]),
                        columns=["epoch", "tune_loss", "best_rank", "random"])
    io.write_tsv(kept, outputs["kept"])
    provenance.write_sidecar(outputs["kept"], code_version, params, inputs)
    values, coords, coords_attrs = {}, {}, {}
    for s in sorted(predict):
        values[s] = predict_tiles(model, readers[s], cfg)
        coords[s] = readers[s].coords
        coords_attrs[s] = dict(read_tile_store_header(slides[s].tile_store).coords_attrs)
    write_gene_predictions(outputs["predictions"], GeneTilePredictions(
        gene, values, coords, coords_attrs,
        {"best_epoch": model["best_epoch"], "code_version": code_version, "params": json.dumps(params, default=str)}))
    log.info("gene %s: best epoch %d (tune loss %.4f) of %d, %s", gene, model["best_epoch"], model["best_tune_loss"],
             model["epochs_run"], "stopped early" if model["stopped_early"] else "ran to max_epochs")
    return model


def collect_predictions(gene_paths: Mapping[str, str], sample_patient: Mapping[str, str], slide_out: Mapping[str, str],
                        code_version: str, params: Mapping):
    """Per-gene tile predictions -> per-slide prediction stores in the heads' layout
    (every gene a tile gene) and the patient table. Returns the patient table."""
    from .predictions import aggregate_patients
    from .stores.cnn_finetune import read_gene_predictions
    from .stores.predictions import SlidePredictions, write_prediction_store

    per_gene = {g: read_gene_predictions(p) for g, p in sorted(gene_paths.items())}
    genes = sorted(per_gene)
    for sample, path in sorted(slide_out.items()):
        first = per_gene[genes[0]]
        tiles = np.stack([per_gene[g].values[sample] for g in genes], 1).astype(np.float32)
        for g in genes:
            if not np.array_equal(per_gene[g].coords[sample], first.coords[sample]):
                raise InputTableError(f"gene {g}: its predictions of slide {sample} are on other tiles than gene "
                                      f"{genes[0]}'s (the tile store changed): rerun the cnn_finetune_gene jobs")
        write_prediction_store(path, SlidePredictions(
            genes=genes, slide_mean=tiles.astype(np.float64).mean(0).astype(np.float32), tile_genes=genes,
            tile_values=tiles, coords=first.coords[sample], coords_attrs=first.coords_attrs[sample],
            attrs={"sample": sample, "n_tiles": int(tiles.shape[0]), "tile_genes_setting": json.dumps("all"),
                   "model": "cnn_finetune", "code_version": code_version,
                   "params": json.dumps(dict(params), default=str)}))
    return aggregate_patients(dict(slide_out), sample_patient)


def summary_table(training_paths: Mapping[str, str], max_epochs: int):
    """gene, best_epoch, best_tune_loss, epochs_run, stopped_early (as the heads'
    training_summary.tsv) from the per-gene training tables."""
    import pandas as pd

    from . import io

    rows = []
    for gene, path in sorted(training_paths.items()):
        t = io.read_table(path)
        best = t.loc[t["tune_loss"].idxmin()] if len(t) else None
        rows.append({"gene": gene, "best_epoch": int(best["epoch"]) if best is not None else 0,
                     "best_tune_loss": float(best["tune_loss"]) if best is not None else float("nan"),
                     "epochs_run": int(len(t)), "stopped_early": bool(len(t) < max_epochs)})
    return pd.DataFrame(rows, columns=["gene", "best_epoch", "best_tune_loss", "epochs_run", "stopped_early"])


def plot_curves(training_paths: Mapping[str, str], path: str | Path) -> None:
    """Train and tune loss per epoch of every fine-tuned gene; dot = best epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import io
    from .io import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for gene, p in sorted(training_paths.items()):
        t = io.read_table(p)
        line, = axes[1].plot(t["epoch"], t["tune_loss"], lw=1, label=gene)
        axes[0].plot(t["epoch"], t["train_loss"], lw=1, color=line.get_color())
        if len(t):
            b = t.loc[t["tune_loss"].idxmin()]
            axes[1].plot([b["epoch"]], [b["tune_loss"]], "o", color=line.get_color(), ms=4)
    for ax, title in zip(axes, ("train loss (augmented tiles)", "tune loss (fixed tune batches)")):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
    axes[0].set_ylabel("MSE (units of the training variance)")
    if training_paths:
        axes[1].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
