"""Per-gene expression models on tile features, trained a chunk of genes at a time.

EMO (Wang et al. 2021) trains one CNN per gene: every tile of a training slide is a
sample whose target is its patient's RNA-seq value; MSE loss; Adam; 150 steps of 32
tiles per epoch; the tune loss is evaluated every epoch; early stopping (min_delta
0.003, patience 80, at most 500 epochs); the epoch with the lowest tune loss is kept.

Here the encoder is frozen (features from ``results/features``) and each gene gets a
small head (``linear`` or a one-hidden-layer ``mlp``). A chunk of G genes is trained in
ONE computation that is mathematically the same as G separate runs:

* parameters are stacked with the gene as leading dimension and used through
  matmul/einsum, so gene g's prediction only involves gene g's parameters;
* the loss is the SUM over active genes of each gene's batch MSE, so the gradient of
  gene g's parameters is exactly the gradient of its own loss;
* Adam is elementwise, so one stacked Adam state is G independent Adam states;
* early stopping is tracked per gene; a stopped gene's parameter updates are masked
  (frozen) and its best-epoch weights are kept;
* minibatch indices come from a seeded sampler that does not depend on the genes, and
  each gene's initial weights from a generator seeded by the gene name, so a run
  with one gene sees the same batches and starts from the same weights.

Features are standardised with the training tile pool's mean/sd; targets per gene
with the training patients' mean/sd (losses are therefore in units of the gene's
training variance). Predictions are transformed back to the expression scale.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .errors import ConfigError, InputTableError
from .stores.features import open_feature_store

log = logging.getLogger("emo")
FORMAT = "emo.gene_models/1"
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
# torch's fused Adam kernel (CPU and CUDA); the elementwise reference update is used
# where it is missing. Both are torch.optim.Adam's update.
FUSED_ADAM = hasattr(torch, "_fused_adam_")


@dataclasses.dataclass
class TrainConfig:
    """Training hyper-parameters (config section ``gene_models``); defaults come from the
    config schema through :meth:`from_config`."""

    head: str  # linear | mlp
    hidden: int  # mlp hidden units
    learning_rate: float  # EMO: 1e-6 (fine-tuning a whole Inception V3)
    weight_decay: float  # L2 added to the gradient (Adam, not AdamW)
    batch_size: int  # EMO: 32
    steps_per_epoch: int  # EMO: 150
    max_epochs: int  # EMO: 500
    patience: int  # EMO: 80
    min_delta: float  # EMO: 0.003
    objective: str  # slide (mean tile prediction of a bag of a patient's tiles) | tile (EMO)
    bag_tiles: int  # tiles per patient bag (objective slide)
    tune_criterion: str  # patient (MSE of the patient's mean prediction) | tile (EMO)
    refit: bool  # retrain on train + tune patients for each gene's best epoch count (EMO: no)
    untrained_candidate: bool  # epoch 0 (the untrained head) may be the best epoch (EMO/Keras: no)
    epoch_selection: str  # tune (EMO: the tune patients) | cross_validation (K folds of train + tune)
    cv_folds: int  # folds of epoch_selection: cross_validation
    max_tiles_per_slide: int  # training tile pool cap per slide (seeded)
    tune_tiles_per_slide: int  # tune tiles per slide used for the tune loss (seeded)
    seed: int
    device: str  # auto | cpu | cuda
    dtype: str  # float32 | float64
    eval_batch: int  # tiles per block when evaluating

    @classmethod
    def from_config(cls, section: Mapping | None) -> "TrainConfig":
        from .settings import section as settings_section

        values = settings_section("gene_models", section)  # validates head, dtype, ... and fills defaults
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls)})


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("config key 'gene_models.device' is 'cuda' but no CUDA device is available to this job; "
                          "use 'auto' or 'cpu', or request a GPU (resources: gpu=1)")
    return torch.device(name)


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


# ---------------------------------------------------------------------- tile pools
@dataclasses.dataclass
class TilePool:
    features: np.ndarray          # (N, D) float32, raw encoder features
    patient_index: np.ndarray     # (N,) int64 index into ``patients``
    patients: list[str]
    samples: list[str]
    tiles_per_sample: list[int]


def select_tiles(n_tiles: int, cap: int | None, seed: int, sample: str) -> np.ndarray:
    """Sorted indices of at most ``cap`` tiles of a slide; seeded by the sample name
    only, so the choice does not depend on other slides."""
    if cap is None or n_tiles <= cap:
        return np.arange(n_tiles)
    rng = np.random.default_rng([int(seed), _stable_int(sample)])
    return np.sort(rng.choice(n_tiles, size=int(cap), replace=False))


def load_tile_pool(feature_paths: Mapping[str, str], sample_patient: Mapping[str, str], cap: int | None,
                   seed: int, tumour: tuple[Mapping, float] | None = None) -> TilePool:
    """Concatenate (capped) tile features of the given samples, slide by slide, into
    one preallocated array (memory: sum of capped tiles x D x 4 bytes).

    ``tumour`` = (tumour classifier, threshold) keeps only each slide's tumour tiles
    (``gene_models.tile_selection: tumour``; all tiles of a slide with none) before the
    cap; None keeps every tile, as before."""
    samples = sorted(feature_paths)
    counts, dim = [], None
    selected: dict[str, np.ndarray] = {}
    for sample in samples:
        with open_feature_store(feature_paths[sample]) as store:
            n, d = store.shape
            if tumour is not None and n:
                from .tumour_regions import selected_rows

                selected[sample] = selected_rows(tumour[0], store.features(), tumour[1], sample, "training")
                n = len(selected[sample])
        if dim is None:
            dim = d
        elif d != dim:
            raise InputTableError(f"feature store {feature_paths[sample]} (slide {sample!r}) has {d}-d features, "
                                  f"others have {dim}; all stores must come from the same encoder")
        if n == 0:
            raise InputTableError(f"feature store {feature_paths[sample]} (slide {sample!r}) has no tiles; check "
                                  "its tile store / tiling QC thresholds or remove the slide from the sample sheet")
        counts.append(min(n, cap) if cap else n)
    total = int(sum(counts))
    features = np.empty((total, dim or 0), dtype=np.float32)
    patients = sorted({sample_patient[s] for s in samples})
    p_index = {p: i for i, p in enumerate(patients)}
    patient_index = np.empty(total, dtype=np.int64)
    row = 0
    for sample, count in zip(samples, counts):
        with open_feature_store(feature_paths[sample]) as store:
            if sample in selected:
                rows = selected[sample]
                block = store.features()[rows[select_tiles(len(rows), cap, seed, sample)]]
            else:
                idx = select_tiles(store.n_tiles, cap, seed, sample)
                block = store.features() if len(idx) == store.n_tiles else store.features()[idx]
        if not np.isfinite(block).all():
            raise InputTableError(f"feature store {feature_paths[sample]} (slide {sample!r}) contains NaN/inf "
                                  "features; recompute it")
        features[row:row + count] = block
        patient_index[row:row + count] = p_index[sample_patient[sample]]
        row += count
    return TilePool(features, patient_index, patients, samples, counts)


def standardiser(features: np.ndarray, block: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sd (ddof=0) over rows in float64, blockwise; sd < 1e-6 -> 1."""
    total = np.zeros(features.shape[1])
    total_sq = np.zeros(features.shape[1])
    for start in range(0, features.shape[0], block):
        x = features[start:start + block].astype(np.float64)
        total += x.sum(0)
        total_sq += (x * x).sum(0)
    n = max(features.shape[0], 1)
    mean = total / n
    sd = np.sqrt(np.maximum(total_sq / n - mean * mean, 0.0))
    sd[sd < 1e-6] = 1.0
    return mean, sd


# ------------------------------------------------------------------------- heads
def target_standardiser(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene mean and sd (ddof 0) over patients; a constant gene gets sd 1."""
    mean = targets.mean(0)
    sd = targets.std(0, ddof=0)
    sd[sd < 1e-8] = 1.0
    return mean, sd


def init_params(genes: Sequence[str], dim: int, cfg: TrainConfig) -> dict[str, np.ndarray]:
    """Per-gene initial parameters, each from a generator seeded by (seed, gene)."""
    g = len(genes)
    if cfg.head == "linear":
        # Zero start = the training-mean predictor for standardised targets.
        return {"W": np.zeros((g, dim)), "b": np.zeros(g)}
    h = int(cfg.hidden)
    w1 = np.empty((g, dim, h))
    w2 = np.empty((g, h))
    for i, gene in enumerate(genes):
        rng = np.random.default_rng([int(cfg.seed), 2, _stable_int(gene)])
        w1[i] = rng.uniform(-1, 1, size=(dim, h)) / math.sqrt(dim)
        w2[i] = rng.uniform(-1, 1, size=h) / math.sqrt(h)
    return {"W1": w1, "b1": np.zeros((g, h)), "W2": w2, "b2": np.zeros(g)}


def forward(params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """(B, D) standardised features -> (B, G) standardised predictions."""
    if "W" in params:
        return x @ params["W"].T + params["b"]
    hidden = torch.relu(torch.einsum("bd,gdh->bgh", x, params["W1"]) + params["b1"])
    return torch.einsum("bgh,gh->bg", hidden, params["W2"]) + params["b2"]


class MaskedAdam:
    """Adam (Kingma & Ba; torch.optim.Adam's update) on stacked per-gene tensors whose
    leading dimension is the gene. Adam is elementwise, so this is one independent Adam
    per gene. Genes with ``active == 0`` are frozen: their parameters are restored
    after the step (their moments are never used again)."""

    def __init__(self, params: Mapping[str, torch.Tensor], lr: float, weight_decay: float = 0.0,
                 betas: tuple[float, float] = ADAM_BETAS, eps: float = ADAM_EPS):
        self.params = params
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.m = {k: torch.zeros_like(p) for k, p in params.items()}
        self.v = {k: torch.zeros_like(p) for k, p in params.items()}
        self.t = 0

    @torch.no_grad()
    def step(self, active: torch.Tensor | None) -> None:
        self.t += 1
        names = list(self.params)
        frozen = None
        if active is not None:
            frozen = torch.nonzero(active == 0).squeeze(1)
            saved = {k: self.params[k][frozen].clone() for k in names}
        if FUSED_ADAM:
            # One pass over each tensor (torch.optim.Adam(fused=True)'s kernel).
            steps = [torch.tensor(float(self.t), device=self.params[k].device) for k in names]
            torch._fused_adam_([self.params[k] for k in names], [self.params[k].grad for k in names],
                               [self.m[k] for k in names], [self.v[k] for k in names], [], steps,
                               lr=self.lr, beta1=self.betas[0], beta2=self.betas[1], weight_decay=self.weight_decay,
                               eps=self.eps, amsgrad=False, maximize=False)
        else:
            self._step_reference()
        for k in names:
            if frozen is not None and frozen.numel():
                self.params[k][frozen] = saved[k]
            self.params[k].grad = None

    def _step_reference(self) -> None:
        b1, b2 = self.betas
        bc1 = 1 - b1 ** self.t
        bc2_sqrt = math.sqrt(1 - b2 ** self.t)
        for name, p in self.params.items():
            grad = p.grad
            if self.weight_decay:
                grad = grad.add(p, alpha=self.weight_decay)
            m, v = self.m[name], self.v[name]
            m.mul_(b1).add_(grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            denom = (v.sqrt() / bc2_sqrt).add_(self.eps)
            p.addcdiv_(m, denom, value=-self.lr / bc1)


@dataclasses.dataclass
class EarlyStopping:
    """Per-gene Keras-style early stopping (monitor = tune loss, mode = min).

    An epoch is an improvement when its loss < reference - min_delta; the reference is
    the loss of the last improvement; ``wait`` counts epochs since then and training of
    a gene stops when ``wait >= patience``. Independently the weights of the epoch with
    the lowest tune loss are kept (EMO: "the model with the lowest loss recorded on the
    tuning set")."""

    n_genes: int
    min_delta: float
    patience: int

    def __post_init__(self):
        self.reference = np.full(self.n_genes, np.inf)
        self.best_loss = np.full(self.n_genes, np.inf)
        self.best_epoch = np.zeros(self.n_genes, dtype=np.int64)
        self.wait = np.zeros(self.n_genes, dtype=np.int64)
        self.active = np.ones(self.n_genes, dtype=bool)
        self.epochs_run = np.zeros(self.n_genes, dtype=np.int64)
        self.stopped_early = np.zeros(self.n_genes, dtype=bool)

    def update(self, epoch: int, loss: np.ndarray) -> np.ndarray:
        """Record epoch ``epoch`` (1-based; 0 = the untrained head) for the active genes;
        returns the mask of genes whose best weights must be saved now."""
        act = self.active
        improved_best = act & (loss < self.best_loss)
        self.best_loss[improved_best] = loss[improved_best]
        self.best_epoch[improved_best] = epoch
        significant = act & (loss < self.reference - self.min_delta)
        self.reference[significant] = loss[significant]
        self.wait[significant] = 0
        self.wait[act & ~significant] += 1
        self.epochs_run[act] = epoch
        stop = act & (self.wait >= self.patience)
        self.stopped_early[stop] = True
        self.active = act & ~stop
        return improved_best


# ----------------------------------------------------------------------- training
def epoch_batches(n_tiles: int, cfg: TrainConfig, epoch: int) -> np.ndarray:
    """(steps, batch) tile indices of an epoch: uniform with replacement from the pool,
    seeded by (seed, epoch) only -- the same for every gene and chunk."""
    rng = np.random.default_rng([int(cfg.seed), 1, int(epoch)])
    return rng.integers(0, n_tiles, size=(cfg.steps_per_epoch, cfg.batch_size))


@dataclasses.dataclass
class PatientTiles:
    """The tiles of each patient of a pool, as contiguous runs of ``order``."""

    order: np.ndarray    # tile indices sorted by patient (stable)
    start: np.ndarray    # (patients,) first position of each patient in ``order``
    count: np.ndarray    # (patients,) tiles per patient

    @classmethod
    def from_index(cls, tile_patient: np.ndarray, n_patients: int, rows: np.ndarray | None = None) -> "PatientTiles":
        """``rows``: the pool rows these tiles are (default: all of them, in order)."""
        order = np.argsort(tile_patient, kind="stable")
        count = np.bincount(tile_patient, minlength=n_patients)
        start = np.concatenate([[0], np.cumsum(count)[:-1]])
        return cls(order if rows is None else np.asarray(rows)[order], start, count)


def epoch_bags(patient_tiles: PatientTiles, cfg: TrainConfig, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """Bags of an epoch for ``objective: slide``: (steps, batch) patients drawn uniformly
    with replacement among patients with tiles, and (steps, batch, bag_tiles) tile
    indices drawn uniformly with replacement from each patient's tiles; seeded by
    (seed, epoch) only, so every gene and chunk sees the same bags."""
    rng = np.random.default_rng([int(cfg.seed), 3, int(epoch)])
    with_tiles = np.flatnonzero(patient_tiles.count > 0)
    patients = with_tiles[rng.integers(0, with_tiles.size, size=(cfg.steps_per_epoch, cfg.batch_size))]
    offsets = np.floor(rng.random((cfg.steps_per_epoch, cfg.batch_size, cfg.bag_tiles))
                       * patient_tiles.count[patients][..., None]).astype(np.int64)
    tiles = patient_tiles.order[patient_tiles.start[patients][..., None] + offsets]
    return patients, tiles


def bag_predictions(params: Mapping[str, torch.Tensor], x: torch.Tensor, tiles: torch.Tensor) -> torch.Tensor:
    """(B, K) tile indices -> (B, G) mean of the K tile predictions of each bag. A linear
    head's mean prediction is the prediction of the mean feature vector, which is K times
    cheaper and the same number."""
    if "W" in params:
        return forward(params, x[tiles].mean(1))
    b, k = tiles.shape
    return forward(params, x[tiles.reshape(-1)]).reshape(b, k, -1).mean(1)


def _tune_loss(params, x_tune, t_tune, tile_patient_tune, eval_batch, criterion: str = "patient") -> torch.Tensor:
    """Per-gene tune loss: ``tile`` = MSE over tune tiles against their patient's target
    (EMO); ``patient`` = MSE over tune patients of the mean prediction of their tune
    tiles, the quantity the validation statistics measure."""
    n_patients = t_tune.shape[0]
    total = None
    with torch.no_grad():
        for start in range(0, x_tune.shape[0], eval_batch):
            xb = x_tune[start:start + eval_batch]
            rows = tile_patient_tune[start:start + eval_batch]
            pred = forward(params, xb)
            if criterion == "tile":
                err = pred - t_tune[rows]
                part = (err * err).sum(0)
            else:
                part = torch.zeros((n_patients, pred.shape[1]), dtype=pred.dtype, device=pred.device)
                part.index_add_(0, rows, pred)
            total = part if total is None else total + part
    if criterion == "tile":
        return total / x_tune.shape[0]
    counts = torch.bincount(tile_patient_tune, minlength=n_patients).to(total.dtype)
    present = counts > 0
    err = total[present] / counts[present, None] - t_tune[present]
    return (err * err).mean(0)


class _HeadRun:
    """One training run of a chunk's heads: its training tiles (rows of ``x``, all rows
    when ``train_rows`` is None), its tune tiles, its parameters and Adam state."""

    def __init__(self, x, targets, tile_patient, train_rows, x_tune, targets_tune, tile_patient_tune,
                 genes: Sequence[str], cfg: TrainConfig):
        self.x, self.y, self.cfg = x, targets, cfg
        self.train_rows = train_rows
        patients = np.asarray(tile_patient.cpu())
        # bag tiles index ``x`` directly, so a fold's bags never leave its training tiles
        self.patient_tiles = PatientTiles.from_index(patients if train_rows is None else patients[train_rows],
                                                     targets.shape[0], train_rows)
        self.tile_patient = tile_patient
        self.x_tune, self.y_tune, self.p_tune = x_tune, targets_tune, tile_patient_tune
        self.tune_patients = int(torch.unique(tile_patient_tune).numel()) if tile_patient_tune.numel() else 0
        to = dict(device=x.device, dtype=x.dtype)
        self.params = {k: torch.as_tensor(v).to(**to).requires_grad_(True)
                       for k, v in init_params(genes, x.shape[1], cfg).items()}
        self.optimiser = MaskedAdam(self.params, cfg.learning_rate, cfg.weight_decay)

    def train_epoch(self, epoch: int, active_genes: np.ndarray) -> np.ndarray:
        """``steps_per_epoch`` Adam steps; genes not in ``active_genes`` are frozen.
        Returns each gene's mean training loss over the epoch."""
        cfg, x, device = self.cfg, self.x, self.x.device
        all_active = bool(active_genes.all())
        active = torch.as_tensor(active_genes, device=device, dtype=x.dtype)
        if cfg.objective == "tile":
            n = x.shape[0] if self.train_rows is None else len(self.train_rows)
            batches = epoch_batches(n, cfg, epoch)
            if self.train_rows is not None:
                batches = np.asarray(self.train_rows)[batches]
            batches = torch.as_tensor(batches, device=device)
        else:
            bag_patients, bag_tiles = (torch.as_tensor(a, device=device)
                                       for a in epoch_bags(self.patient_tiles, cfg, epoch))
        running = torch.zeros(active.shape[0], device=device, dtype=x.dtype)
        for step in range(cfg.steps_per_epoch):
            if cfg.objective == "tile":
                idx = batches[step]
                err = forward(self.params, x[idx]) - self.y[self.tile_patient[idx]]
            else:
                err = bag_predictions(self.params, x, bag_tiles[step]) - self.y[bag_patients[step]]
            per_gene = (err * err).mean(0)
            loss = per_gene.sum() if all_active else (per_gene * active).sum()
            loss.backward()
            self.optimiser.step(None if all_active else active)
            running += per_gene.detach()
        return (running / cfg.steps_per_epoch).cpu().numpy().astype(np.float64)

    def tune_loss(self) -> np.ndarray:
        return _tune_loss(self.params, self.x_tune, self.y_tune, self.p_tune, self.cfg.eval_batch,
                          self.cfg.tune_criterion).cpu().numpy().astype(np.float64)


def _select_epochs(runs: Sequence[_HeadRun], genes: Sequence[str], cfg: TrainConfig, keep_best: bool) -> dict:
    """Train the runs in lockstep and early-stop every gene on the tune loss pooled over
    the runs (weighted by their tune patients: one run = its tune loss; K folds = the
    cross-validated loss). ``keep_best``: also keep the first run's best-epoch weights."""
    n_genes = len(genes)
    weights = np.array([r.tune_patients for r in runs], dtype=np.float64)
    weights = weights / weights.sum()
    pooled = lambda: sum(w * r.tune_loss() for w, r in zip(weights, runs))  # noqa: E731
    stopper = EarlyStopping(n_genes, cfg.min_delta, cfg.patience)
    best = {k: p.detach().clone() for k, p in runs[0].params.items()} if keep_best else None
    train_curve = np.full((n_genes, cfg.max_epochs), np.nan)
    tune_curve = np.full((n_genes, cfg.max_epochs), np.nan)
    if cfg.untrained_candidate:
        # Epoch 0 -- for the zero-initialised linear head, the training-mean predictor -- is
        # a candidate and the reference the trained epochs must beat by min_delta: a gene
        # the features cannot predict keeps predicting its mean instead of its first
        # epoch's noise.
        stopper.update(0, pooled())
    for epoch in range(1, cfg.max_epochs + 1):
        if not stopper.active.any():
            break
        was_active = stopper.active.copy()
        running = np.mean([r.train_epoch(epoch, was_active) for r in runs], axis=0)
        tune = pooled()
        train_curve[was_active, epoch - 1] = running[was_active]
        tune_curve[was_active, epoch - 1] = tune[was_active]
        save = stopper.update(epoch, tune)
        if keep_best and save.any():
            sel = torch.as_tensor(save, device=runs[0].x.device)
            with torch.no_grad():
                for k, p in runs[0].params.items():
                    best[k][sel] = p[sel]
        if epoch % 10 == 0 or not stopper.active.any():
            log.info("epoch %d: %d/%d genes active, median tune loss %.4f", epoch, int(stopper.active.sum()),
                     n_genes, float(np.median(tune)))
    last = int(stopper.epochs_run.max()) if n_genes else 0
    return {
        "params": {k: v.cpu().numpy() for k, v in best.items()} if keep_best else None,
        "best_epoch": stopper.best_epoch, "best_tune_loss": stopper.best_loss,
        "epochs_run": stopper.epochs_run, "stopped_early": stopper.stopped_early,
        "train_curve": train_curve[:, :last], "tune_curve": tune_curve[:, :last],
    }


def _tensors(cfg: TrainConfig, *arrays):
    device = resolve_device(cfg.device)
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    return [torch.as_tensor(a, device=device) if a.dtype.kind in "iu" else torch.as_tensor(a).to(device, dtype)
            for a in arrays]


def train_heads(x_train: np.ndarray, targets_train: np.ndarray, tile_patient_train: np.ndarray,
                x_tune: np.ndarray, targets_tune: np.ndarray, tile_patient_tune: np.ndarray,
                genes: Sequence[str], cfg: TrainConfig) -> dict:
    """Train one head per gene (batched), early-stopped on the tune tiles. Inputs are
    already standardised.

    ``targets_*``: (patients, G); ``tile_patient_*``: (tiles,) row into targets.
    Returns numpy arrays: ``params`` (best epoch), ``best_epoch``, ``best_tune_loss``,
    ``epochs_run``, ``stopped_early``, ``train_curve`` and ``tune_curve`` (G, epochs).
    """
    xt, yt, pt, xv, yv, pv = _tensors(cfg, np.asarray(x_train), np.asarray(targets_train),
                                      np.asarray(tile_patient_train), np.asarray(x_tune), np.asarray(targets_tune),
                                      np.asarray(tile_patient_tune))
    run = _HeadRun(xt, yt, pt, None, xv, yv, pv, genes, cfg)
    return _select_epochs([run], genes, cfg, keep_best=True)


def patient_folds(patients: Sequence[str], n_folds: int, seed: int) -> np.ndarray:
    """Fold (0..n_folds-1) of each patient: a seeded permutation of the sorted patient
    IDs dealt round-robin, so the folds differ in size by at most one patient."""
    if len(patients) < n_folds:
        raise InputTableError(f"gene_models.cv_folds is {n_folds} but only {len(patients)} train + tune patients "
                              "have slides; lower gene_models.cv_folds or use epoch_selection: tune")
    order = np.random.default_rng([int(seed), 7]).permutation(len(patients))
    folds = np.empty(len(patients), dtype=np.int64)
    folds[order] = np.arange(len(patients)) % n_folds
    return folds


def cross_validated_epochs(x: np.ndarray, targets: np.ndarray, tile_patient: np.ndarray, tune_cap: int,
                           genes: Sequence[str], cfg: TrainConfig) -> dict:
    """Each gene's best epoch by K-fold cross-validation over patients (``cv_folds``): K
    runs train in lockstep, run k without the patients of fold k, and every gene is
    early-stopped on the tune loss of the held-out patients pooled over the folds. Inputs
    standardised on the whole pool (as the ridge baseline's inner CV). ``tune_cap``:
    held-out tiles per patient used for the tune loss (seeded)."""
    n_patients = targets.shape[0]
    folds = patient_folds([str(i) for i in range(n_patients)], cfg.cv_folds, cfg.seed)
    tile_fold = folds[tile_patient]
    xt, yt, pt = _tensors(cfg, np.asarray(x), np.asarray(targets), np.asarray(tile_patient))
    runs = []
    for k in range(cfg.cv_folds):
        held_out = np.flatnonzero(tile_fold == k)
        # at most tune_cap tiles per held-out patient, seeded, as the tune pool of one run
        rng = np.random.default_rng([int(cfg.seed), 11, k])
        keep = held_out[rng.permutation(held_out.size)]
        keep = keep[_first_per_group(tile_patient[keep], tune_cap)]
        keep.sort()
        rows = torch.as_tensor(keep, device=xt.device)
        runs.append(_HeadRun(xt, yt, pt, np.flatnonzero(tile_fold != k), xt[rows], yt, pt[rows], genes, cfg))
    log.info("cross-validated epoch selection: %d folds over %d patients", cfg.cv_folds, n_patients)
    return _select_epochs(runs, genes, cfg, keep_best=False)


def _first_per_group(groups: np.ndarray, cap: int) -> np.ndarray:
    """Positions of the first ``cap`` occurrences of each group value, in order."""
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    rank = np.arange(groups.size) - np.repeat(starts, np.diff(np.r_[starts, groups.size]))
    return np.sort(order[rank < cap])


def refit_heads(x: np.ndarray, targets: np.ndarray, tile_patient: np.ndarray, genes: Sequence[str],
                cfg: TrainConfig, epochs: np.ndarray) -> dict[str, np.ndarray]:
    """Retrain each gene's head from its initial weights on a larger pool (train + tune
    patients) for exactly ``epochs[g]`` epochs (its selected best epoch), with the same
    batches, seeds and optimiser; a gene is frozen after its epoch count. Inputs are
    already standardised. Returns the parameters."""
    xt, yt, pt = _tensors(cfg, np.asarray(x), np.asarray(targets), np.asarray(tile_patient))
    run = _HeadRun(xt, yt, pt, None, xt[:0], yt, pt[:0], genes, cfg)
    epochs = np.asarray(epochs, dtype=np.int64)
    last = int(epochs.max()) if epochs.size else 0
    for epoch in range(1, last + 1):
        run.train_epoch(epoch, epochs >= epoch)
        if epoch % 10 == 0 or epoch == last:
            log.info("refit epoch %d/%d: %d/%d genes still training", epoch, last, int((epochs > epoch).sum()),
                     len(genes))
    return {k: v.detach().cpu().numpy() for k, v in run.params.items()}


def predict_standardised(params: Mapping[str, np.ndarray], x: np.ndarray, dtype=torch.float32,
                         block: int = 8192) -> np.ndarray:
    p = {k: torch.as_tensor(v).to(dtype) for k, v in params.items()}
    out = []
    with torch.no_grad():
        for start in range(0, x.shape[0], block):
            out.append(forward(p, torch.as_tensor(x[start:start + block]).to(dtype)).numpy())
    n_genes = next(iter(params.values())).shape[0]
    return np.concatenate(out, 0) if out else np.zeros((0, n_genes), dtype=np.float32)


# ------------------------------------------------------------------ chunk training
def patient_targets(values: np.ndarray, store_patients: Sequence[str], patients: Sequence[str]) -> np.ndarray:
    row = {p: i for i, p in enumerate(store_patients)}
    missing = [p for p in patients if p not in row]
    if missing:
        raise InputTableError(f"patient(s) {missing[:5]} have slides in the training/tune split but no expression "
                              "in results/expression/training.h5; check the expression matrices")
    return values[[row[p] for p in patients]]


def _standardised_pool(features: Mapping[str, str], sample_patient: Mapping[str, str], values: np.ndarray,
                       value_patients: Sequence[str], cfg: TrainConfig, tumour) -> tuple:
    """The train + tune tile pool (``max_tiles_per_slide`` per slide) with its features and
    targets standardised on itself: (pool, x, z, (f_mean, f_sd, t_mean, t_sd))."""
    pool = load_tile_pool(features, sample_patient, cfg.max_tiles_per_slide, cfg.seed, tumour)
    log.info("pool (train + tune): %d tiles from %d slides (%d patients)", pool.features.shape[0],
             len(pool.samples), len(pool.patients))
    f_mean, f_sd = standardiser(pool.features)
    y = patient_targets(values, value_patients, pool.patients)
    t_mean, t_sd = target_standardiser(y)
    x = ((pool.features - f_mean) / f_sd).astype(np.float32)
    del pool.features
    return pool, x, (y - t_mean) / t_sd, (f_mean, f_sd, t_mean, t_sd)


def train_chunk(genes: Sequence[str], expression: Mapping, train_features: Mapping[str, str],
                tune_features: Mapping[str, str], sample_patient: Mapping[str, str], cfg: TrainConfig,
                tumour: tuple[Mapping, float] | None = None) -> dict:
    """Train the given genes (all must be in ``expression['genes']``) on tile pools.

    ``expression``: dict with ``values`` (patients x genes), ``patients``, ``genes``
    (the training store). ``*_features``: sample -> feature store path. ``tumour``:
    (tumour classifier, threshold) to train on tumour tiles only (load_tile_pool).
    Returns the state saved in ``chunk_{k}.pt``.
    """
    genes = list(genes)
    col = {g: i for i, g in enumerate(expression["genes"])}
    gene_idx = [col[g] for g in genes]
    values = np.asarray(expression["values"], dtype=np.float64)[:, gene_idx]
    if not train_features:
        raise InputTableError("no training slides: the train split of the sample sheet is empty")
    if not tune_features:
        raise InputTableError("no tune slides: the tune split is empty; early stopping needs tune patients "
                              "(raise splits.proportions.tune or set split=tune in the sample sheet)")
    if cfg.epoch_selection == "cross_validation":
        # one pool of train + tune patients, standardised once; K folds choose each gene's
        # epoch count, then the head is refitted on the whole pool
        pool, x_pool, z_pool, (f_mean, f_sd, t_mean, t_sd) = _standardised_pool(
            {**train_features, **tune_features}, sample_patient, values, expression["patients"], cfg, tumour)
        log.info("%d-fold epoch selection", cfg.cv_folds)
        result = cross_validated_epochs(x_pool, z_pool, pool.patient_index, cfg.tune_tiles_per_slide, genes, cfg)
        params = refit_heads(x_pool, z_pool, pool.patient_index, genes, cfg, result["best_epoch"])
        train_samples, tune_samples, refit_samples = sorted(train_features), sorted(tune_features), pool.samples
    else:
        train_pool = load_tile_pool(train_features, sample_patient, cfg.max_tiles_per_slide, cfg.seed, tumour)
        tune_pool = load_tile_pool(tune_features, sample_patient, cfg.tune_tiles_per_slide, cfg.seed, tumour)
        log.info("training pool: %d tiles from %d slides (%d patients); tune pool: %d tiles from %d slides",
                 train_pool.features.shape[0], len(train_pool.samples), len(train_pool.patients),
                 tune_pool.features.shape[0], len(tune_pool.samples))
        f_mean, f_sd = standardiser(train_pool.features)
        y_train = patient_targets(values, expression["patients"], train_pool.patients)
        y_tune = patient_targets(values, expression["patients"], tune_pool.patients)
        t_mean, t_sd = target_standardiser(y_train)
        x_train = ((train_pool.features - f_mean) / f_sd).astype(np.float32)
        x_tune = ((tune_pool.features - f_mean) / f_sd).astype(np.float32)
        del train_pool.features, tune_pool.features
        result = train_heads(x_train, (y_train - t_mean) / t_sd, train_pool.patient_index,
                             x_tune, (y_tune - t_mean) / t_sd, tune_pool.patient_index, genes, cfg)
        del x_train, x_tune
        params = result["params"]
        train_samples, tune_samples, refit_samples = train_pool.samples, tune_pool.samples, []
        if cfg.refit:
            # The best epoch was chosen on the tune patients; the final model then learns
            # from them too, for that many epochs, as the ridge baseline fits on train + tune.
            pool, x_pool, z_pool, (f_mean, f_sd, t_mean, t_sd) = _standardised_pool(
                {**train_features, **tune_features}, sample_patient, values, expression["patients"], cfg, tumour)
            params = refit_heads(x_pool, z_pool, pool.patient_index, genes, cfg, result["best_epoch"])
            refit_samples = pool.samples
    return {
        "format": FORMAT, "genes": genes, "head": cfg.head, "config": dataclasses.asdict(cfg),
        "params": {k: torch.as_tensor(v, dtype=torch.float32) for k, v in params.items()},
        "feature_mean": torch.as_tensor(f_mean), "feature_sd": torch.as_tensor(f_sd),
        "target_mean": torch.as_tensor(t_mean), "target_sd": torch.as_tensor(t_sd),
        "best_epoch": torch.as_tensor(result["best_epoch"]),
        "best_tune_loss": torch.as_tensor(result["best_tune_loss"]),
        "epochs_run": torch.as_tensor(result["epochs_run"]),
        "stopped_early": torch.as_tensor(result["stopped_early"]),
        "train_curve": torch.as_tensor(result["train_curve"]), "tune_curve": torch.as_tensor(result["tune_curve"]),
        "train_samples": train_samples, "tune_samples": tune_samples, "refit_samples": refit_samples,
    }


def empty_state(cfg: TrainConfig) -> dict:
    """State of a chunk none of whose genes passed the variance filter."""
    return {"format": FORMAT, "genes": [], "head": cfg.head, "config": dataclasses.asdict(cfg), "params": {},
            "feature_mean": torch.zeros(0), "feature_sd": torch.zeros(0), "target_mean": torch.zeros(0),
            "target_sd": torch.zeros(0), "best_epoch": torch.zeros(0, dtype=torch.int64),
            "best_tune_loss": torch.zeros(0, dtype=torch.float64), "epochs_run": torch.zeros(0, dtype=torch.int64),
            "stopped_early": torch.zeros(0, dtype=torch.bool), "train_curve": torch.zeros((0, 0)),
            "tune_curve": torch.zeros((0, 0)), "train_samples": [], "tune_samples": [], "refit_samples": []}


def summary_table(state: Mapping) -> pd.DataFrame:
    return pd.DataFrame({
        "gene": list(state["genes"]),
        "best_epoch": np.asarray(state["best_epoch"], dtype=np.int64),
        "best_tune_loss": np.asarray(state["best_tune_loss"], dtype=np.float64),
        "epochs_run": np.asarray(state["epochs_run"], dtype=np.int64),
        "stopped_early": np.asarray(state["stopped_early"], dtype=bool),
    }, columns=["gene", "best_epoch", "best_tune_loss", "epochs_run", "stopped_early"])


def save_state(state: Mapping, path: str | Path) -> None:
    from .io import atomic_path

    with atomic_path(path) as tmp:
        torch.save(dict(state), tmp)


def load_state(path: str | Path) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("format") != FORMAT:
        raise InputTableError(f"{path} is not an emo gene-model chunk (format {state.get('format')!r}); "
                              "delete it and rerun")
    return state


def predict_features(state: Mapping, features: np.ndarray) -> np.ndarray:
    """Raw (N, D) features -> (N, G) predictions on the expression scale."""
    if not state["genes"]:
        return np.zeros((features.shape[0], 0), dtype=np.float32)
    mean = np.asarray(state["feature_mean"], dtype=np.float64)
    sd = np.asarray(state["feature_sd"], dtype=np.float64)
    if features.shape[1] != mean.shape[0]:
        raise InputTableError(f"features have {features.shape[1]} dimensions but the gene models were trained on "
                              f"{mean.shape[0]}; use feature stores from the same encoder")
    x = ((features - mean) / sd).astype(np.float32)
    params = {k: np.asarray(v) for k, v in state["params"].items()}
    z = predict_standardised(params, x).astype(np.float64)
    return (z * np.asarray(state["target_sd"]) + np.asarray(state["target_mean"])).astype(np.float32)
