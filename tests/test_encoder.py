"""Video ViT encoder: sizes, token counts, shapes, positions, masking and input checks."""

from __future__ import annotations

import pytest
import torch

from vjepa2.config.base import ConfigError
from vjepa2.models import ENCODER_SIZES, PUBLISHED_PARAMS, VideoViT, encoder_config


def tiny(**overrides) -> VideoViT:
    torch.manual_seed(0)
    kw = {"img_size": 32, "num_frames": 4, "patch_size": 8, "depth": 2, **overrides}
    return VideoViT(encoder_config("tiny", **kw)).eval()


def clip(b: int = 2, t: int = 4, s: int = 32) -> torch.Tensor:
    return torch.randn(b, 3, t, s, s, generator=torch.Generator().manual_seed(1))


def count_on_meta(name: str) -> int:
    with torch.device("meta"):
        model = VideoViT(encoder_config(name))
    return sum(p.numel() for p in model.parameters())


def test_default_token_count_is_1568():
    with torch.device("meta"):
        model = VideoViT(encoder_config("vit_l"))
    assert model.num_patches() == 1568  # 8 x 14 x 14 for 16 x 224 x 224
    assert model.grid(16, 224, 224) == (8, 14, 14)
    assert model.num_patches(T=2, H=224, W=224) == 196


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_large_sizes_match_published_param_counts(name):
    n = count_on_meta(name)
    assert abs(n - PUBLISHED_PARAMS[name]) / PUBLISHED_PARAMS[name] < 0.02, n


@pytest.mark.parametrize("name", sorted(ENCODER_SIZES))
def test_every_size_builds_on_meta(name):
    with torch.device("meta"):
        model = VideoViT(encoder_config(name))
    assert model.embed_dim == ENCODER_SIZES[name]["embed_dim"]
    assert len(model.blocks) == ENCODER_SIZES[name]["depth"]


def test_unknown_size_lists_valid_names():
    with pytest.raises(ConfigError, match="vit_l"):
        encoder_config("vit_xl")
    with pytest.raises(ConfigError, match="patchsize"):
        encoder_config("tiny", patchsize=8)


@pytest.mark.parametrize("pos_embed", ["sincos", "rope"])
def test_forward_shapes_video_and_image(pos_embed):
    model = tiny(pos_embed=pos_embed)
    assert model(clip()).shape == (2, 2 * 4 * 4, 64)
    assert model(torch.randn(3, 3, 32, 32)).shape == (3, 16, 64)  # one tubelet per image
    assert model.pooled(clip()).shape == (2, 64)
    # Positions are computed for any grid, not only the configured one.
    assert model(clip(t=6, s=48)).shape == (2, 3 * 6 * 6, 64)


def test_image_equals_static_clip():
    model = tiny()
    img = torch.randn(2, 3, 32, 32)
    static = img.unsqueeze(2).repeat(1, 1, 2, 1, 1)
    torch.testing.assert_close(model(img), model(static))


@pytest.mark.parametrize("pos_embed", ["sincos", "rope"])
def test_keep_all_in_order_equals_full_forward(pos_embed):
    model = tiny(pos_embed=pos_embed)
    video = clip()
    full = model(video)
    keep = torch.arange(full.shape[1]).expand(2, -1)
    torch.testing.assert_close(model(video, keep=keep), full)


@pytest.mark.parametrize("pos_embed", ["sincos", "rope"])
def test_keep_subset_carries_positions(pos_embed):
    model = tiny(pos_embed=pos_embed)
    video = clip()
    keep = torch.tensor([[0, 5, 9, 30], [1, 2, 3, 31]])
    out = model(video, keep=keep)
    assert out.shape == (2, 4, 64)
    # Each kept token keeps its own position, so the order of ``keep`` only permutes rows.
    torch.testing.assert_close(model(video, keep=keep.flip(1)), out.flip(1))
    # Tokens 5 and 6 (grid (0, 1, 1) and (0, 1, 2)) get the same pixels: keeping one or the
    # other differs only in position.
    twin = video[:1].clone()
    twin[..., 0:2, 8:16, 16:24] = twin[..., 0:2, 8:16, 8:16]
    a = model(twin, keep=torch.tensor([[0, 5]]))
    b = model(twin, keep=torch.tensor([[0, 6]]))
    assert not torch.allclose(a, b, atol=1e-4)


def test_rope_encoder_has_no_absolute_positions():
    model = tiny(pos_embed="rope")
    # A constant clip gives identical patch tokens; under RoPE only relative offsets matter,
    # so before attention nothing distinguishes tokens and the output is constant too.
    out = model(torch.ones(1, 3, 4, 32, 32))
    torch.testing.assert_close(out, out[:, :1].expand_as(out))
    sincos = tiny()(torch.ones(1, 3, 4, 32, 32))
    assert not torch.allclose(sincos, sincos[:, :1].expand_as(sincos))


def test_gradients_reach_patch_embedding():
    model = tiny(pos_embed="rope").train()
    model(clip(), keep=torch.tensor([[0, 3, 7], [2, 4, 6]])).square().mean().backward()
    grad = model.patch_embed.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_bfloat16_autocast():
    model = tiny()
    video = clip()
    ref = model(video)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(video, keep=torch.arange(32).expand(2, -1))
    assert out.shape == ref.shape and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, atol=0.1, rtol=0.1)


def test_bad_inputs_raise_clear_errors():
    model = tiny()
    with pytest.raises(ValueError, match=r"\[B, C, T, H, W\]"):
        model(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="channels"):
        model(torch.randn(2, 1, 4, 32, 32))
    with pytest.raises(ValueError, match="tubelet_size"):
        model(torch.randn(2, 3, 3, 32, 32))
    with pytest.raises(ValueError, match="patch_size"):
        model(torch.randn(2, 3, 4, 30, 32))
    with pytest.raises(ValueError, match="float"):
        model(torch.zeros(2, 3, 4, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"in \[0, 32\)"):
        model(clip(), keep=torch.tensor([[0, 32], [1, 2]]))
    with pytest.raises(ValueError, match="batch"):
        model(clip(), keep=torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match="integer"):
        model(clip(), keep=torch.zeros(2, 3))


def test_positions_are_not_in_the_state_dict():
    model = tiny()
    model(clip())
    assert all("pos" not in k for k in model.state_dict())
