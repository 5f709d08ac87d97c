"""Glue for thin Snakemake entry scripts: logging into the rule's log file with
visible progress, and user-facing errors printed plainly (no traceback noise)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Iterator

from .errors import EmoError


@contextlib.contextmanager
def rule_logging(log_path: str | None) -> Iterator[logging.Logger]:
    """Send logging and stderr (tqdm progress bars) to the rule's log file.

    An :class:`EmoError` is written as one clear line (also to the real stderr so it
    shows in Snakemake's console output) and the job fails with exit code 1.
    """
    logger = logging.getLogger("emo")
    handle = open(log_path, "w", buffering=1) if log_path else None
    real_stderr = sys.stderr
    if handle is not None:
        sys.stderr = handle
    handler = logging.StreamHandler(handle or real_stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    try:
        yield logger
    except EmoError as error:
        message = f"emo error: {error}"
        logger.error(message)
        print(message, file=real_stderr)
        sys.stderr = real_stderr
        if handle is not None:
            handle.close()
        raise SystemExit(1) from None
    except Exception:
        traceback.print_exc()
        raise
    finally:
        sys.stderr = real_stderr
        if handle is not None and not handle.closed:
            handle.close()


def job_slides(sm, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> list[dict]:
    """The slides of one per-slide-stage job, in order: one for a per-slide rule, several for
    a batched one (config ``slide_batches``). ``sm.params.samples`` lists the samples; each
    named input / output is one path (per-slide rule) or a list aligned with the samples.
    Returns one {"sample": ..., name: path, ...} per slide."""
    samples = list(sm.params.samples)

    def aligned(files, name: str) -> list[str]:
        value = getattr(files, name)
        paths = [value] if isinstance(value, str) else list(value)
        if len(paths) != len(samples):
            raise RuntimeError(f"rule input/output {name!r} has {len(paths)} paths for {len(samples)} samples")
        return [str(p) for p in paths]

    columns = {name: aligned(sm.input, name) for name in inputs}
    columns.update({name: aligned(sm.output, name) for name in outputs})
    return [{"sample": s, **{name: paths[i] for name, paths in columns.items()}} for i, s in enumerate(samples)]


# Finished outputs of a failed slide batch, kept for the batch's next run (below).
KEPT_DIR = Path(".snakemake") / "emo_kept"
_BATCH_PARAMS = ("samples", "mpp")  # per-batch lists: a slide's own entry is fingerprinted instead


def _file_stamp(path: str) -> list:
    stat = os.stat(path)
    return [str(path), stat.st_size, stat.st_mtime_ns]


def slide_fingerprint(sm, slide: dict, inputs: tuple[str, ...], batch_inputs: set[str]) -> str:
    """What a slide's output depends on: its own inputs (size, mtime), the job's shared
    inputs (those of no slide: ``batch_inputs`` are all slides' own), the params except
    the per-batch lists, and the slide's own mpp."""
    own = {str(slide[name]) for name in inputs}
    everything = [str(f) for f in sm.input if str(f) not in batch_inputs]
    params = {k: v for k, v in sm.params.items() if k not in _BATCH_PARAMS}
    mpp = dict(sm.params.items()).get("mpp") or {}
    payload = {"sample": slide["sample"], "own": [_file_stamp(p) for p in sorted(own)],
               "shared": [_file_stamp(p) for p in sorted(set(everything) - own) if os.path.exists(p)],
               "params": params, "mpp": mpp.get(slide["sample"]) if isinstance(mpp, dict) else None}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _kept(path: str, suffix: str = "") -> Path:
    return KEPT_DIR / (str(path).lstrip("/") + suffix)


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copy2(source, target)


@contextlib.contextmanager
def isolated_batch(sm, slides: list[dict], inputs: tuple[str, ...], outputs: tuple[str, ...],
                   log: logging.Logger | None = None) -> Iterator[list[dict]]:
    """One failing slide must not cost a batch's finished slides (config slide_batches).

    Snakemake deletes every output of a failed job. When a batch fails, the outputs its
    finished slides already wrote are kept (hard links under .snakemake/emo_kept/ with the
    slide's fingerprint); the batch's next run puts back those whose inputs, params and
    code are unchanged and yields only the slides still to do. A one-slide job is left as is."""
    log = log or logging.getLogger("emo")
    if len(slides) < 2:
        yield slides
        return
    pending, fingerprints = [], {}
    batch_inputs = {str(s[name]) for s in slides for name in inputs}
    for slide in slides:
        fingerprint = fingerprints[slide["sample"]] = slide_fingerprint(sm, slide, inputs, batch_inputs)
        kept = [_kept(slide[name]) for name in outputs]
        meta = _kept(slide[outputs[0]], ".fingerprint")
        if all(k.is_file() for k in kept) and meta.is_file() and meta.read_text() == fingerprint:
            for name, k in zip(outputs, kept):
                _link(k, Path(slide[name]))
            log.info("%s: reusing the outputs it finished before its batch failed (%s)", slide["sample"],
                     ", ".join(slide[name] for name in outputs))
        else:
            pending.append(slide)
    started = time.time_ns() - 2_000_000_000  # file systems' mtime granularity: a stale output is older

    def written_now(path: str) -> bool:
        return os.path.isfile(path) and os.stat(path).st_mtime_ns >= started

    try:
        yield pending
    except BaseException:
        finished = [s for s in pending if all(written_now(s[name]) for name in outputs)]
        for slide in finished:
            for name in outputs:
                _link(Path(slide[name]), _kept(slide[name]))
            _kept(slide[outputs[0]], ".fingerprint").write_text(fingerprints[slide["sample"]])
        if finished:
            log.error("the batch failed; the %d slide(s) it finished are kept for its next run: %s", len(finished),
                      ", ".join(s["sample"] for s in finished))
        raise
    for slide in slides:  # done: nothing of this batch needs keeping
        for name in outputs:
            _kept(slide[name]).unlink(missing_ok=True)
        _kept(slide[outputs[0]], ".fingerprint").unlink(missing_ok=True)


def clinical_mapping(sm) -> dict | None:
    """The job's config key clinical_mapping (its param ``clinical_mapping``; absent = none)."""
    return dict(sm.params.items()).get("clinical_mapping")

