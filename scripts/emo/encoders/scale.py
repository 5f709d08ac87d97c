"""Scale of an encoder's input: the tile geometry its features are extracted from, and
how far that is from the scale the encoder was pretrained at (docs/features.md, "Scale")."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import ConfigError
from .registry import EncoderSpec, get_spec


@dataclass(frozen=True)
class Geometry:
    """A tile geometry: ``tile_um`` µm square tiles rendered at ``tile_px`` pixels."""

    tile_um: float
    tile_px: int

    @property
    def um_per_px(self) -> float:
        return self.tile_um / self.tile_px

    @property
    def name(self) -> str:
        """Path component of its tile stores, e.g. ``112um_224px``."""
        return f"{self.tile_um:g}um_{self.tile_px}px"


def tiling_geometry(tiling: Mapping[str, Any]) -> Geometry:
    return Geometry(float(tiling["tile_um"]), int(tiling["tile_px"]))


def native_geometry(spec: EncoderSpec) -> Geometry | None:
    """The encoder's pretraining geometry (its input size at its native µm/px), or None
    for encoders without a histology scale (ImageNet CNNs)."""
    if spec.native_um_per_px is None:
        return None
    return Geometry(float(spec.native_um_per_px * spec.input_px), int(spec.input_px))


def encoder_geometry(encoder: str, features: Mapping[str, Any], tiling: Mapping[str, Any]) -> tuple[Geometry, str]:
    """(geometry, where it comes from) of ``encoder``'s feature store: config
    ``features.encoder_geometry.<encoder>``, else its native geometry when
    ``features.geometry`` is ``native`` and it has one, else the ``tiling`` config's."""
    spec = get_spec(encoder)
    explicit = (features.get("encoder_geometry") or {}).get(encoder)
    if explicit:
        return Geometry(float(explicit["tile_um"]), int(explicit["tile_px"])), f"features.encoder_geometry.{encoder}"
    mode = features.get("geometry", "native")
    if mode not in ("native", "tiling"):
        raise ConfigError(f"config key features.geometry: {mode!r} is not one of native, tiling")
    native = native_geometry(spec)
    if mode == "native" and native is not None:
        return native, "native"
    return tiling_geometry(tiling), "tiling"


@dataclass(frozen=True)
class ScaleCheck:
    input_um_per_px: float            # what the encoder sees: tile_um / input_px
    native_um_per_px: float | None    # what it was pretrained at (None: no histology scale)
    tolerance: float

    @property
    def ratio(self) -> float | None:
        return None if self.native_um_per_px is None else self.input_um_per_px / self.native_um_per_px

    @property
    def mismatch(self) -> bool:
        """Off the native scale by more than ``tolerance``, coarser or finer (symmetric in log)."""
        ratio = self.ratio
        return ratio is not None and abs(math.log(ratio)) > math.log1p(self.tolerance)

    def attrs(self) -> dict[str, Any]:
        """Feature-store attributes. HDF5 has no None: an encoder without a native scale gets
        "" (as the tile store writes None), not NaN, so reruns compare equal."""
        return {"input_um_per_px": float(self.input_um_per_px),
                "encoder_native_um_per_px": "" if self.native_um_per_px is None else float(self.native_um_per_px),
                "scale_ratio": "" if self.ratio is None else float(self.ratio),
                "scale_tolerance": float(self.tolerance),
                "scale_mismatch": bool(self.mismatch)}

    def warning(self, encoder: str, tile_um: float, input_px: int) -> str:
        native = native_geometry(get_spec(encoder))
        direction = "coarser" if self.ratio > 1 else "finer"
        return (f"encoder {encoder} sees {self.input_um_per_px:.3g} µm/px ({tile_um:g} µm tiles at its {input_px} px "
                f"input) but was pretrained at {self.native_um_per_px:g} µm/px: {max(self.ratio, 1 / self.ratio):.2f}x "
                f"{direction}, beyond features.scale_tolerance {self.tolerance:g}. Its features are off the native "
                f"scale; for its native tiles set features.geometry: native and remove "
                f"features.encoder_geometry.{encoder}, or set features.encoder_geometry.{encoder} to "
                f"{{tile_um: {native.tile_um:g}, tile_px: {native.tile_px}}}")


def check_scale(spec: EncoderSpec, tile_um: float, tolerance: float) -> ScaleCheck:
    return ScaleCheck(float(tile_um) / spec.input_px, spec.native_um_per_px, float(tolerance))


__all__ = ["Geometry", "ScaleCheck", "check_scale", "encoder_geometry", "native_geometry", "tiling_geometry"]
