"""Loading an encoder: read a checkpoint (``weights_only=True``), adapt it to the
architecture, load it strictly and freeze the module."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from ..errors import ConfigError
from ..provenance import file_sha256
from .registry import EncoderSpec, get_spec, resolve_weights

log = logging.getLogger("emo")


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
