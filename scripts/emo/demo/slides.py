"""One demo slide: layout -> truth npz + rendered pyramidal SVS (both written atomically)."""

from __future__ import annotations

import io
import logging
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..io import atomic_path
from . import design
from .layout import make_layout, truth_arrays
from .render import render, write_svs

log = logging.getLogger("emo")


def write_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Deterministic compressed npz (fixed zip timestamps, sorted members), atomic."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def make_slide(demo_cfg: Mapping[str, Any], sample: str, slide_path: str | Path, truth_path: str | Path) -> dict:
    cfg = design.settings(demo_cfg)
    spec = design.slide_spec(cfg, sample)
    layout = make_layout(spec)
    truth = truth_arrays(layout, float(cfg["truth_um_per_px"]))
    log.info("demo slide %s: patient %s, mpp %.2f, %.0f x %.0f um, mixing %.0f um, pen %s, blur %s, fractions %s",
             sample, spec.patient, spec.mpp, spec.width_um, spec.height_um, spec.mixing_um, spec.pen, spec.blur,
             {k: round(v, 3) for k, v in layout.fractions.items()})
    image = render(layout, float(cfg["render_um_per_px"]))
    with atomic_path(slide_path) as tmp:
        width, height = write_svs(image, tmp, float(cfg["render_um_per_px"]), spec.mpp, int(cfg["jpeg_quality"]),
                                  sample)
    if (width, height) != (int(truth["level0_width"]), int(truth["level0_height"])):
        raise RuntimeError(f"{sample}: level-0 size {width}x{height} != truth "
                           f"{int(truth['level0_width'])}x{int(truth['level0_height'])}")
    write_npz(truth_path, truth)
    return {"sample": sample, "width": width, "height": height, "mpp": spec.mpp}


def make_truth(demo_cfg: Mapping[str, Any], sample: str, truth_path: str | Path) -> None:
    """Only the truth file of a slide (no pixels): what the tables need; used by tests."""
    cfg = design.settings(demo_cfg)
    layout = make_layout(design.slide_spec(cfg, sample))
    write_npz(truth_path, truth_arrays(layout, float(cfg["truth_um_per_px"])))
