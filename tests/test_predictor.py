"""Phase-1 masked predictor: shapes, position and context dependence, gradients, checks."""

from __future__ import annotations

import pytest
import torch

from vjepa2.config.base import ConfigError
from vjepa2.models import MaskedPredictor, encoder_config, predictor_config

GRID = (2, 4, 4)  # 32 tokens
D = 64


def build(pos_embed: str = "sincos", seed: int = 0) -> MaskedPredictor:
    torch.manual_seed(seed)
    enc = encoder_config("tiny", img_size=32, num_frames=4, patch_size=8, pos_embed=pos_embed)
    return MaskedPredictor(predictor_config("tiny"), enc).eval()


def inputs(b: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    perm = torch.stack([torch.randperm(32, generator=g) for _ in range(b)])
    context_idx, target_idx = perm[:, :10], perm[:, 10:16]
    return torch.randn(b, 10, D, generator=g), context_idx, target_idx


@pytest.mark.parametrize("pos_embed", ["sincos", "rope"])
def test_output_shape(pos_embed):
    ctx, ci, ti = inputs()
    out = build(pos_embed)(ctx, ci, ti, GRID)
    assert out.shape == (2, 6, D)
    assert torch.isfinite(out).all()


def test_default_size():
    cfg = predictor_config("default")
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads) == (384, 12, 12)
    with pytest.raises(ConfigError, match="default"):
        predictor_config("huge")


@pytest.mark.parametrize("pos_embed", ["sincos", "rope"])
def test_target_output_depends_on_its_position(pos_embed):
    model = build(pos_embed)
    ctx, ci, ti = inputs()
    base = model(ctx, ci, ti, GRID)
    spare = torch.tensor([i for i in range(32) if i not in ci[0] and i not in ti[0]][0])
    moved_idx = ti.clone()
    moved_idx[0, 0] = spare  # a position neither in the context nor among the targets
    moved = model(ctx, ci, moved_idx, GRID)
    assert not torch.allclose(base[0, 0], moved[0, 0], atol=1e-5)
    torch.testing.assert_close(base[1], moved[1])  # other samples are untouched


@pytest.mark.parametrize("pos_embed", ["sincos", "rope"])
def test_target_output_depends_on_context(pos_embed):
    model = build(pos_embed)
    ctx, ci, ti = inputs()
    base = model(ctx, ci, ti, GRID)
    changed = model(ctx + torch.randn_like(ctx), ci, ti, GRID)
    assert not torch.allclose(base, changed, atol=1e-5)


def test_gradient_reaches_mask_token_and_context():
    model = build().train()
    ctx, ci, ti = inputs()
    ctx.requires_grad_(True)
    model(ctx, ci, ti, GRID).square().mean().backward()
    assert model.mask_token.grad is not None and model.mask_token.grad.abs().sum() > 0
    assert ctx.grad is not None and ctx.grad.abs().sum() > 0


def test_mask_token_starts_at_zero():
    assert torch.count_nonzero(build().mask_token) == 0


def test_deterministic_under_manual_seed():
    ctx, ci, ti = inputs()
    a = build(seed=7)(ctx, ci, ti, GRID)
    b = build(seed=7)(ctx, ci, ti, GRID)
    c = build(seed=8)(ctx, ci, ti, GRID)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)


def test_bad_shapes_raise_clear_errors():
    model = build()
    ctx, ci, ti = inputs()
    with pytest.raises(ValueError, match=r"\[B, Nc, 64\]"):
        model(ctx[..., :32], ci, ti, GRID)
    with pytest.raises(ValueError, match="batch"):
        model(ctx, ci[:1], ti, GRID)
    with pytest.raises(ValueError, match="batch"):
        model(ctx, ci, ti[:1], GRID)
    with pytest.raises(ValueError, match="indices"):
        model(ctx, ci[:, :5], ti, GRID)
    with pytest.raises(ValueError, match=r"target_idx values must lie in \[0, 32\)"):
        model(ctx, ci, ti + 32, GRID)
    with pytest.raises(ValueError, match="grid"):
        model(ctx, ci, ti, (2, 4))
