"""UNI and CONCH against their reference implementations.

emo's ViT modules are re-implementations (no timm / open_clip at run time). Here the
reference models are built with random weights — UNI exactly as its model card creates
it with timm, CONCH's image tower as CONCH's ``conch_ViT-B-16`` config builds it (timm
``VisionTransformer`` trunk + open_clip ``AttentionalPooler``) — their state dicts are
saved as the published checkpoints are laid out and loaded through the registry
(``load_encoder``: ``read_state_dict`` + ``adapt_state_dict`` + strict load), and the
features must equal the reference's on a random batch.

timm and open_clip_torch are pinned in the ``test`` extra; a missing package fails the
test (it is the only check that an official checkpoint computes what it should).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from emo import encoders as E
from emo.features import Preprocess
from features_fixtures import ArrayTiles


def _reference_packages():
    # torchvision's PyPI wheel is a CUDA build: with the CPU torch `import timm` fails on
    # `torchvision::nms does not exist` unless the op schemas are defined first.
    E.import_torchvision_models()
    try:
        import open_clip
        import timm
    except ImportError as error:
        pytest.fail(f"{error}: the encoder reference tests need timm and open_clip_torch "
                    "(pip install -e '.[test]', pins in pyproject.toml)")
    return timm, open_clip


def _randomise_(module: nn.Module, seed: int) -> None:
    """Random LayerNorm affines, biases and LayerScale gammas: at their init values
    (ones, zeros, 1e-5) a wrong eps, a missing bias or a skipped residual branch would
    hardly change the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith(("bias", "gamma")) or "norm" in name or ".ln_" in name or name.startswith("ln_"):
                param.copy_(torch.randn(param.shape, generator=gen) * 0.5 + (1.0 if name.endswith("weight") else 0.0))


def _batch(spec: E.EncoderSpec, n: int) -> torch.Tensor:
    tiles = ArrayTiles(n, spec.input_px, seed=11)
    raw = torch.from_numpy(np.stack([tiles[i] for i in range(n)]))
    return Preprocess(spec.input_px, spec.mean, spec.std, torch.device("cpu"), False)(raw)


def test_uni_matches_timm_model_card(tmp_path):
    timm, _ = _reference_packages()
    torch.manual_seed(0)
    # the UNI model card's constructor (MahmoodLab/UNI, "Using UNI as a feature extractor")
    ref = timm.create_model("vit_large_patch16_224", img_size=224, patch_size=16, init_values=1e-5,
                            num_classes=0, dynamic_img_size=True).eval()
    _randomise_(ref, seed=1)
    state = ref.state_dict()
    # the published checkpoint's layout: timm's names, 14 x 14 patches + class token, LayerScale
    assert tuple(state["pos_embed"].shape) == (1, 197, 1024)
    assert tuple(state["blocks.23.ls2.gamma"].shape) == (1024,)
    weights = tmp_path / "uni" / "pytorch_model.bin"
    weights.parent.mkdir()
    torch.save(state, weights)
    del state
    enc = E.load_encoder("uni", weights)
    x = _batch(enc.spec, 2)
    with torch.inference_mode():
        ours, theirs = enc.module(x), ref(x)
    assert ours.shape == theirs.shape == (2, enc.spec.feature_dim)
    assert not torch.allclose(theirs[0], theirs[1], atol=1e-3)  # the batch is not degenerate
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


class _ConchVisualReference(nn.Module):
    """CONCH's ``model.visual`` (``conch/open_clip_custom/vision_tower.py: VisualModel``
    as ``coca_model._build_vision_tower`` builds it from ``conch_ViT-B-16.json``), from
    timm and open_clip parts: a timm ViT-B/16 at 448 px whose ``forward`` is
    ``forward_features``, attentional poolers for the contrastive (512-d, 1 query) and
    caption (768-d, 256 queries) heads, 8 heads each, and the contrastive projection."""

    def __init__(self, timm, open_clip):
        super().__init__()
        from open_clip.transformer import AttentionalPooler
        from timm.models.vision_transformer import VisionTransformer

        self.trunk = VisionTransformer(embed_dim=768, depth=12, num_heads=12, mlp_ratio=4, img_size=448,
                                       patch_size=16, num_classes=0, dynamic_img_size=True)
        self.attn_pool_contrast = AttentionalPooler(d_model=512, context_dim=768, n_head=8, n_queries=1)
        self.ln_contrast = nn.LayerNorm(512)
        self.proj_contrast = nn.Parameter(768 ** -0.5 * torch.randn(512, 512))
        self.attn_pool_caption = AttentionalPooler(d_model=768, context_dim=768, n_head=8, n_queries=256)
        self.ln_caption = nn.LayerNorm(768)

    def forward_no_head(self, x: torch.Tensor) -> torch.Tensor:
        """CONCH's ``encode_image(x, proj_contrast=False, normalize=False)``."""
        tokens = self.trunk.forward_features(x)
        return self.ln_contrast(self.attn_pool_contrast(tokens)[:, 0])


def test_conch_matches_timm_open_clip_reference(tmp_path):
    timm, open_clip = _reference_packages()
    torch.manual_seed(0)
    ref = _ConchVisualReference(timm, open_clip).eval()
    _randomise_(ref, seed=2)
    # the published file holds the whole CoCa model: visual.* plus the text towers
    state = {f"visual.{k}": v for k, v in ref.state_dict().items()}
    state["text.token_embedding.weight"] = torch.randn(32007, 8)
    state["logit_scale"] = torch.tensor(2.65)
    assert tuple(state["visual.trunk.pos_embed"].shape) == (1, 785, 768)  # 28 x 28 patches + class token
    assert "visual.attn_pool_contrast.attn.k_proj_weight" in state  # kdim 768 != 512: separate projections
    weights = tmp_path / "conch" / "pytorch_model.bin"
    weights.parent.mkdir()
    torch.save(state, weights)
    enc = E.load_encoder("conch", weights)
    x = _batch(enc.spec, 2)
    with torch.inference_mode():
        ours, theirs = enc.module(x), ref.forward_no_head(x)
    assert ours.shape == theirs.shape == (2, enc.spec.feature_dim)
    assert not torch.allclose(theirs[0], theirs[1], atol=1e-3)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
