"""Glue for thin Snakemake entry scripts: logging into the rule's log file with
visible progress, and user-facing errors printed plainly (no traceback noise)."""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
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


def clinical_mapping(sm) -> dict | None:
    """The job's config key clinical_mapping (its param ``clinical_mapping``; absent = none)."""
    return dict(sm.params.items()).get("clinical_mapping")

