"""Tile encoder registry: frozen image encoders that turn an RGB tile into a feature vector.

Every encoder is described by an :class:`EncoderSpec` (input size, native µm/px,
normalisation, feature dimension, where its weights come from; :mod:`.registry`) and
the tile geometry of its features follows from it (:mod:`.scale`). It is loaded with
:func:`load_encoder` (:mod:`.loading`), which returns the frozen feature module plus
the weights file and its sha256.

Weights are always read from a local file with ``torch.load(..., weights_only=True)``;
nothing is downloaded at run time. ``efficientnet_lite0`` ships its ImageNet weights in
a pip package; ``resnet50`` and ``inception_v3`` look for torchvision's published files
in the torch hub cache (:mod:`.cnn`); ``uni`` and ``conch`` need the user's local copy
of the (gated) Hugging Face checkpoints. A missing file raises
:class:`~emo.errors.ConfigError` naming config key ``features.weights``, the expected
file and where to get it.

The ViTs (UNI, CONCH; :mod:`.vit`, :mod:`.conch`) are minimal re-implementations of
the timm/open_clip modules whose parameter names match the published checkpoints, so
the official files load strictly; tests/unit/test_features_reference.py checks them
against timm and open_clip built with the same random weights.
"""

from __future__ import annotations

from .cnn import import_torchvision_models
from .conch import ConchVisual
from .loading import Encoder, load_encoder, read_state_dict
from .registry import (CLIP_MEAN, CLIP_STD, ENCODERS, HALF, IMAGENET_MEAN, IMAGENET_STD, EncoderSpec,
                       configured_weights, encoder_names, get_spec, resolve_weights)
from .scale import Geometry, ScaleCheck, check_scale, encoder_geometry, native_geometry, tiling_geometry
from .vit import VisionTransformer

__all__ = [
    "CLIP_MEAN", "CLIP_STD", "ENCODERS", "HALF", "IMAGENET_MEAN", "IMAGENET_STD", "ConchVisual", "Encoder",
    "EncoderSpec", "Geometry", "ScaleCheck", "VisionTransformer", "check_scale", "configured_weights",
    "encoder_geometry", "encoder_names", "get_spec", "import_torchvision_models", "load_encoder",
    "native_geometry", "read_state_dict", "resolve_weights", "tiling_geometry",
]
