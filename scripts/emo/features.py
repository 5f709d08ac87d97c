"""Streaming feature extraction: tiles of one slide -> frozen encoder -> HDF5 feature store.

Pipeline per slide (docs/features.md)::

    TileReader (DataLoader workers: read from the slide's pyramid, resize, optional
    Macenko)  ->  uint8 batches (B, H, W, 3)  ->  device: float, resize to the encoder's
    input, normalise, channels_last  ->  encoder under inference_mode (+ autocast on
    CUDA)  ->  float32 rows written straight into ``/features`` of a temporary HDF5 file
    (and the same uint8 batch -> 40 colour/texture descriptors -> ``/colour_texture``,
    the baseline's input)  ->  atomic rename to ``results/features/{encoder}/{sample}.h5``.

Memory is bounded by ``batch_size x (num_workers x prefetch + 2)`` tiles whatever the
slide size. Output is deterministic for a given device, precision and batch size.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from . import __version__
from .encoders import Encoder, check_scale, load_encoder
from .errors import ConfigError
from .io import atomic_path
from .provenance import hdf5_content_sha256, now_iso, params_json
from .stores._h5 import as_str
from .colour_texture import tile_descriptors
from .stores.features import open_feature_store_writer
from .stores.tiles import TileStoreHeader, read_tile_store_header

log = logging.getLogger("emo")

PRECISIONS = ("auto", "float32", "bfloat16", "float16")


# --------------------------------------------------------------------------- device and numerics


def select_device(requested: str = "auto", key: str = "features.device") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error naming
    config ``key`` (the stage's device setting)."""
    if requested == "cpu":
        return torch.device("cpu")
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"config key {key} is 'cuda' but no CUDA GPU is visible to this job; "
                              "request a GPU (resources gpu=1 / the Slurm profile's GPU partition) or set "
                              f"{key} to 'auto' or 'cpu'")
        return torch.device("cuda")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    raise ConfigError(f"config key {key}: {requested!r} is not one of auto, cpu, cuda")


def select_precision(requested: str, device: torch.device) -> torch.dtype:
    """Compute dtype: float32 on CPU; on CUDA ``auto`` is bfloat16 where supported, else float16."""
    if requested not in PRECISIONS:
        raise ConfigError(f"config key features.precision: {requested!r} is not one of {', '.join(PRECISIONS)}")
    if device.type != "cuda":
        return torch.float32
    if requested == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return getattr(torch, requested)


@contextlib.contextmanager
def deterministic(threads: int | None, device: torch.device, seed: int = 0) -> Iterator[None]:
    """Fixed seeds, deterministic kernels and a fixed thread count (restored on exit).

    CPU inference kernels are deterministic for a fixed thread count, so
    ``torch.use_deterministic_algorithms`` is only switched on for CUDA: on CPU it would
    import torch's compiler stack (several seconds per job, longer than encoding a
    small slide)."""
    cuda = device.type == "cuda"
    if cuda:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    previous = (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads())
    torch.manual_seed(seed)
    np.random.seed(seed)
    if cuda:
        torch.use_deterministic_algorithms(True)
    if threads:
        torch.set_num_threads(max(1, int(threads)))
    try:
        yield
    finally:
        if cuda:
            torch.use_deterministic_algorithms(previous[0])
        torch.set_num_threads(previous[1])


# --------------------------------------------------------------------------- batches


def collate_uint8(tiles: Sequence[np.ndarray]) -> torch.Tensor:
    """Stack uint8 (H, W, 3) tiles into one (B, H, W, 3) uint8 tensor (no float copy in workers)."""
    first = np.asarray(tiles[0])
    if first.dtype != np.uint8 or first.ndim != 3 or first.shape[2] != 3:
        raise ValueError(f"tile source must yield uint8 (H, W, 3) arrays, got {first.dtype} {first.shape}")
    return torch.from_numpy(np.stack([np.asarray(t) for t in tiles]))


class Preprocess:
    """uint8 (B, H, W, 3) batch -> normalised float (B, 3, S, S) on ``device``.

    Conversion, resizing (bilinear with antialiasing, only when ``H != S``) and
    normalisation are tensor ops on the whole batch.
    """

    def __init__(self, input_px: int, mean: Sequence[float], std: Sequence[float], device: torch.device,
                 channels_last: bool):
        self.input_px = int(input_px)
        self.device = device
        self.channels_last = channels_last
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-2:] != (self.input_px, self.input_px):
            x = F.interpolate(x, size=(self.input_px, self.input_px), mode="bilinear", align_corners=False,
                              antialias=True).clamp_(0.0, 1.0)
        x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def make_loader(tiles, batch_size: int, num_workers: int, pin_memory: bool = False,
                prefetch_factor: int = 4) -> DataLoader:
    """Ordered DataLoader over an indexable tile source (``len`` and ``[i]`` -> uint8 tile)."""
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs.update(prefetch_factor=prefetch_factor, persistent_workers=False)
    return DataLoader(tiles, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      collate_fn=collate_uint8, pin_memory=pin_memory, drop_last=False, **kwargs)


class Embedder:
    """A loaded encoder on a device with its batch preprocessing."""

    def __init__(self, encoder: Encoder, device: torch.device | str = "cpu", precision: str = "auto"):
        self.encoder = encoder
        self.device = torch.device(device) if isinstance(device, str) else device
        self.dtype = select_precision(precision, self.device)
        channels_last = self.device.type == "cpu"
        module = encoder.module.to(self.device)
        if channels_last:
            module = module.to(memory_format=torch.channels_last)
        self.module = module
        spec = encoder.spec
        self.preprocess = Preprocess(spec.input_px, spec.mean, spec.std, self.device, channels_last)

    @property
    def precision_name(self) -> str:
        return str(self.dtype).replace("torch.", "")

    def forward_normalised(self, x: torch.Tensor) -> torch.Tensor:
        """Features of an already preprocessed batch (float32 on the device)."""
        with torch.inference_mode():
            if self.device.type == "cuda" and self.dtype != torch.float32:
                with torch.autocast("cuda", dtype=self.dtype):
                    out = self.module(x)
            else:
                out = self.module(x)
            return out.float()

    def __call__(self, batch_uint8: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            out = self.forward_normalised(self.preprocess(batch_uint8))
        return out.cpu().numpy()


# --------------------------------------------------------------------------- stores


def _stale_temporaries(out_path: Path) -> list[Path]:
    return sorted(out_path.parent.glob(f".{out_path.name}.tmp.*"))


@contextlib.contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """Turn SIGTERM (Snakemake/Slurm cancelling the job) into SystemExit so the
    temporary file is removed by the ``finally`` of :func:`emo.io.atomic_path`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def write_feature_store(out_path: str | Path, tiles, embedder: Embedder, coords: np.ndarray,
                        coords_attrs: Mapping[str, Any], attrs: Mapping[str, Any], *, batch_size: int = 32,
                        num_workers: int = 0, progress: bool = True, desc: str = "") -> int:
    """Embed every tile of ``tiles`` (in order) into ``out_path`` (atomic). Returns N."""
    out_path = Path(out_path)
    n = len(tiles)
    if len(coords) != n:
        raise ValueError(f"{n} tiles but {len(coords)} coords")
    dim = embedder.encoder.spec.feature_dim
    for stale in _stale_temporaries(out_path):  # left by a killed run (SIGKILL, node failure)
        log.warning("removing temporary file of an interrupted run: %s", stale)
        stale.unlink(missing_ok=True)
    from tqdm import tqdm

    loader = make_loader(tiles, batch_size, num_workers, pin_memory=embedder.device.type == "cuda")
    with _terminate_as_exit(), atomic_path(out_path) as tmp:
        with open_feature_store_writer(tmp, n, dim, coords, coords_attrs) as store:
            start = 0
            with tqdm(total=n, unit="tile", desc=desc, file=sys.stderr, disable=not progress,
                      mininterval=5.0, dynamic_ncols=False) as bar:
                for batch in loader:
                    # the baseline's descriptors of exactly the pixels the encoder embeds
                    descriptors = tile_descriptors(batch.numpy())
                    rows = embedder(batch)
                    if rows.shape != (len(batch), dim):
                        raise RuntimeError(f"encoder returned {rows.shape}, expected ({len(batch)}, {dim})")
                    if not np.isfinite(rows).all():
                        raise RuntimeError(f"non-finite features in tiles {start}..{start + len(batch) - 1}")
                    store.write(rows, descriptors)
                    start += len(batch)
                    bar.update(len(batch))
            if start != n:
                raise RuntimeError(f"tile source yielded {start} tiles, expected {n}")
            store.set_attrs(attrs)
    return n


def _json_attr(attrs: Mapping[str, Any]) -> str:
    def plain(value):
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, bytes):
            return as_str(value)
        return value
    return params_json({k: plain(v) for k, v in attrs.items()})


def stain_description(method: str, info: TileStoreHeader, sample: str, tile_store_path: str = "") -> str:
    if method == "none":
        return params_json({"method": "none"})
    if info.stain is None:
        store = tile_store_path or f"results/tiles/{sample}.h5"
        raise ConfigError(f"config key stain_normalisation.method is {method!r} but the tile store of slide "
                          f"{sample!r} has no /stain parameters; rerun tiling (delete {store})")
    return _json_attr(info.stain)


def _tile_geometry(info: TileStoreHeader) -> tuple[float, int]:
    """(tile_um, tile_px) of a tile store (root attrs; older stores: the params JSON)."""
    import json

    params = json.loads(as_str(info.attrs.get("params", "{}")) or "{}")
    tile_um = info.attrs.get("tile_um", params.get("tile_um"))
    tile_px = info.attrs.get("tile_px", params.get("tile_px"))
    if tile_um is None or tile_px is None:
        raise ConfigError("tile store has neither tile_um/tile_px attributes nor params; rerun tiling")
    return float(tile_um), int(tile_px)


def extract_slide(*, sample: str, slide_path: str, tile_store_path: str, out_path: str, encoder: str,
                  weights: str | None = None, batch_size: int = 32, num_workers: int = 2, device: str = "auto",
                  precision: str = "auto", threads: int | None = None, stain_method: str = "none",
                  mpp: float | None = None, geometry: Mapping[str, Any] | None = None, scale_tolerance: float = 0.1,
                  code_version: str = "", tiles=None, progress: bool = True) -> Path:
    """Extract the feature store of one slide (the ``extract_features`` rule).

    ``tiles`` overrides the tile source (tests); by default it is
    ``emo.tiling.TileReader(slide_path, tile_store_path, mpp=mpp, normalise=...)``.
    """
    slide = {"sample": sample, "slide": slide_path, "tiles": tile_store_path, "features": out_path, "mpp": mpp}
    if tiles is not None:
        slide["reader"] = tiles
    return extract_slides([slide], encoder=encoder, weights=weights, batch_size=batch_size,
                          num_workers=num_workers, device=device, precision=precision, threads=threads,
                          stain_method=stain_method, geometry=geometry, scale_tolerance=scale_tolerance,
                          code_version=code_version, progress=progress)[0]


def extract_slides(slides: Sequence[Mapping], *, encoder: str, weights: str | None = None, batch_size: int = 32,
                   num_workers: int = 2, device: str = "auto", precision: str = "auto", threads: int | None = None,
                   stain_method: str = "none", geometry: Mapping[str, Any] | None = None,
                   scale_tolerance: float = 0.1, code_version: str = "", progress: bool = True) -> list[Path]:
    """Feature stores of several slides with one encoder load (batched ``extract_features``
    jobs, config ``slide_batches``). Each slide: {"sample", "slide", "tiles" (tile store),
    "features" (output path), "mpp" (override or None)}, optionally "reader" (a tile source).

    ``geometry`` ({"tile_um", "tile_px", "source"}, the rule's ``params.geometry``): the
    tile geometry the plan chose for this encoder; a tile store of another geometry is an
    error. ``scale_tolerance``: config ``features.scale_tolerance`` (docs/features.md, "Scale")."""
    dev = select_device(device)
    with deterministic(threads, dev):
        loaded = load_encoder(encoder, weights)
        embedder = Embedder(loaded, dev, precision)
        written = []
        for n, slide in enumerate(slides, 1):
            if len(slides) > 1:
                log.info("[%d/%d] slide %s", n, len(slides), slide["sample"])
            written.append(_extract_slide(slide, loaded=loaded, embedder=embedder, encoder=encoder,
                                          batch_size=batch_size, num_workers=num_workers, dev=dev,
                                          stain_method=stain_method, geometry=geometry,
                                          scale_tolerance=scale_tolerance, code_version=code_version,
                                          progress=progress))
        return written


def _extract_slide(slide: Mapping, *, loaded, embedder, encoder, batch_size, num_workers, dev, stain_method,
                   geometry, scale_tolerance, code_version, progress) -> Path:
    sample, tile_store_path, out_path = slide["sample"], slide["tiles"], slide["features"]
    info = read_tile_store_header(tile_store_path)
    stain = stain_description(stain_method, info, sample, str(tile_store_path))
    tile_um, tile_px = _tile_geometry(info)
    if geometry is not None and (not np.isclose(tile_um, float(geometry["tile_um"]), rtol=1e-9)
                                 or tile_px != int(geometry["tile_px"])):
        raise ConfigError(
            f"slide {sample}: tile store {tile_store_path} has {tile_um:g} µm / {tile_px} px tiles but encoder "
            f"{encoder} extracts from {float(geometry['tile_um']):g} µm / {int(geometry['tile_px'])} px tiles "
            f"({geometry.get('source', 'features.geometry')}); pass the tile store of that geometry "
            "(emo.workflow.plan.Plan.tile_store) or delete the stale store and rerun tiling")
    scale = check_scale(loaded.spec, tile_um, scale_tolerance)
    if scale.mismatch:
        log.warning("slide %s: %s", sample, scale.warning(encoder, tile_um, loaded.spec.input_px))
    tiles = slide.get("reader")
    if tiles is None:
        from .tiling import TileReader

        tiles = TileReader(slide["slide"], tile_store_path, mpp=slide.get("mpp"), normalise=stain_method != "none")
    if tile_px != loaded.spec.input_px:
        log.warning("slide %s: tiles are %d px, encoder %s runs at %d px: tiles are resized on the fly "
                    "(set tile_px %d in features.encoder_geometry.%s, or tiling.tile_px for tiling-geometry "
                    "encoders, to avoid resampling)", sample, tile_px, encoder, loaded.spec.input_px,
                    loaded.spec.input_px, encoder)
    attrs = {
        "sample": sample,
        "encoder": encoder,
        "feature_dim": int(loaded.spec.feature_dim),
        "weights_path": str(loaded.weights_path),
        "weights_sha256": loaded.weights_sha256,
        "input_px": int(loaded.spec.input_px),
        "tile_store_sha256": hdf5_content_sha256(tile_store_path),
        "tiling_params": as_str(info.attrs.get("params", "{}")),
        "tile_um": float(tile_um),
        "tile_px": int(tile_px),
        **scale.attrs(),
        "stain_normalisation": stain,
        "device": dev.type,
        "precision": embedder.precision_name,
        "batch_size": int(batch_size),
        "code_version": code_version,
        "emo_version": __version__,
        "torch_version": str(torch.__version__),
        "created": now_iso(),
    }
    log.info("slide %s: %d tiles, encoder %s on %s (%s), batch %d, %d workers, %d torch threads",
             sample, len(info.coords), encoder, dev.type, embedder.precision_name, batch_size, num_workers,
             torch.get_num_threads())
    n = write_feature_store(out_path, tiles, embedder, info.coords, info.coords_attrs, attrs,
                            batch_size=batch_size, num_workers=num_workers, progress=progress, desc=sample)
    if n == 0:
        log.warning("slide %s: no accepted tiles; wrote an empty feature store", sample)
    log.info("slide %s: wrote %s (%d x %d)", sample, out_path, n, loaded.spec.feature_dim)
    return Path(out_path)


__all__ = ["Embedder", "Preprocess", "collate_uint8", "deterministic", "extract_slide", "extract_slides", "make_loader",
           "select_device", "select_precision", "write_feature_store"]
