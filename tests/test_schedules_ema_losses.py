from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vjepa2.config import EMAConfig, OptimConfig
from vjepa2.diagnostics import collapse_stats, effective_rank, per_dim_std
from vjepa2.ema import ema_update, momentum_at
from vjepa2.losses import latent_loss, multistep_loss, normalize_targets
from vjepa2.optim import build_optimizer
from vjepa2.schedules import lr_at


def test_lr_warms_up_linearly_then_decays_by_cosine():
    cfg = OptimConfig(lr=1e-3, min_lr=1e-5, warmup_steps=10, warmup_lr=0.0)
    assert lr_at(0, 110, cfg) == 0.0
    assert lr_at(5, 110, cfg) == pytest.approx(5e-4)
    assert lr_at(10, 110, cfg) == pytest.approx(1e-3)
    assert lr_at(60, 110, cfg) == pytest.approx((1e-3 + 1e-5) / 2)
    assert lr_at(110, 110, cfg) == pytest.approx(1e-5)
    lrs = [lr_at(s, 110, cfg) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


def test_cosine_momentum_goes_from_start_to_end():
    cfg = EMAConfig(start=0.996, end=1.0)
    assert momentum_at(0, 100, cfg) == pytest.approx(0.996)
    assert momentum_at(50, 100, cfg) == pytest.approx(0.998)
    assert momentum_at(100, 100, cfg) == pytest.approx(1.0)
    assert momentum_at(70, 100, EMAConfig(schedule="constant", start=0.99)) == 0.99


def test_ema_update_moves_target_toward_online():
    torch.manual_seed(0)
    online, target = nn.Linear(3, 3), nn.Linear(3, 3)
    t0 = target.weight.detach().clone()
    ema_update(target, online, tau=0.9)
    expected = 0.9 * t0 + 0.1 * online.weight.detach()
    assert torch.allclose(target.weight, expected)
    ema_update(target, online, tau=1.0)
    assert torch.allclose(target.weight, expected)


def test_l2_loss_matches_the_seed_formula():
    pred, target = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    manual = ((pred - target) ** 2).sum(-1).mean()
    assert torch.allclose(latent_loss(pred, target, "l2"), manual)
    assert torch.allclose(latent_loss(pred, target, "l1"), (pred - target).abs().sum(-1).mean())
    with pytest.raises(ValueError, match="differ"):
        latent_loss(pred, target[:, :4])


def test_loss_does_not_backpropagate_into_targets():
    pred = torch.randn(2, 4, requires_grad=True)
    target = torch.randn(2, 4, requires_grad=True)
    latent_loss(pred, target).backward()
    assert pred.grad is not None and target.grad is None


def test_multistep_loss_discounts_later_steps():
    pred = torch.zeros(1, 3, 2)
    target = torch.ones(1, 3, 2)  # per-step loss 2.0
    assert multistep_loss(pred, target, 1.0).item() == pytest.approx(2.0)
    assert multistep_loss(pred, target, 0.5).item() == pytest.approx(2.0 * (1 + 0.5 + 0.25) / 3)


def test_normalized_targets_have_zero_mean_unit_var():
    z = normalize_targets(torch.randn(4, 7, 32) * 5 + 3)
    assert torch.allclose(z.mean(-1), torch.zeros(4, 7), atol=1e-5)
    assert torch.allclose(z.var(-1, unbiased=False), torch.ones(4, 7), atol=1e-3)


def test_collapse_diagnostics_separate_healthy_from_collapsed():
    torch.manual_seed(0)
    healthy = torch.randn(512, 32)
    collapsed = torch.randn(1, 32).expand(512, 32) + 1e-4 * torch.randn(512, 32)
    assert effective_rank(healthy) > 25
    assert effective_rank(torch.randn(512, 1) @ torch.randn(1, 32)) < 1.5
    assert per_dim_std(collapsed).max() < 1e-3
    h, c = collapse_stats(healthy), collapse_stats(collapsed)
    assert h["std_mean"] > 0.8 * h["std_isotropic"] and c["std_mean"] < 0.01 * h["std_mean"]
    assert h["std_isotropic"] == pytest.approx(1 / math.sqrt(32))


def test_optimizer_exempts_biases_norms_and_tokens_from_decay():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)
            self.norm = nn.LayerNorm(4)
            self.mask_token = nn.Parameter(torch.zeros(1, 1, 4, 4))

    opt = build_optimizer(M(), OptimConfig(weight_decay=0.05))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.05 and len(decay["params"]) == 1
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 4


def test_variance_covariance_terms_vanish_for_spread_features_and_punish_collapse():
    from vjepa2.losses import variance_covariance

    gen = torch.Generator().manual_seed(0)
    spread = 2.0 * torch.randn(4, 512, 8, generator=gen)
    var, cov = variance_covariance(spread)
    assert var.item() == 0.0 and cov.item() < 0.1
    collapsed = torch.ones(4, 512, 8) + 1e-3 * torch.randn(4, 512, 8, generator=gen)
    var_c, _ = variance_covariance(collapsed)
    assert var_c.item() > 0.9  # every feature's std is ~0 against a target of 1
    one_direction = torch.randn(2048, 1, generator=gen) * torch.ones(1, 8)
    assert variance_covariance(one_direction)[1].item() > 5.0  # 8 copies of one feature
    # The hinge's gradient spreads a collapsed batch out.
    z = collapsed.clone().requires_grad_(True)
    variance_covariance(z)[0].backward()
    with torch.no_grad():
        stepped = z - 10.0 * z.grad
    assert per_dim_std(stepped.reshape(-1, 8)).mean() > per_dim_std(collapsed.reshape(-1, 8)).mean()
    with pytest.raises(ValueError, match="2 tokens"):
        variance_covariance(torch.zeros(1, 8))


def test_phase1_regulariser_is_off_by_default_and_adds_its_terms_when_asked():
    from vjepa2.config import get_preset
    from vjepa2.train.builders import build_vjepa

    cfg = get_preset("pretrain", "tiny")
    video = torch.randn(2, 3, 8, 64, 64, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    plain, aux = build_vjepa(cfg)(video, torch.Generator().manual_seed(2))
    assert "variance_loss" not in aux
    cfg.loss.variance_weight, cfg.loss.covariance_weight = 1.0, 0.5
    torch.manual_seed(0)
    regularised, aux = build_vjepa(cfg)(video, torch.Generator().manual_seed(2))
    expected = plain + aux["variance_loss"] + 0.5 * aux["covariance_loss"]
    assert aux["variance_loss"].item() > 0
    assert torch.allclose(regularised, expected, atol=1e-5)
    with pytest.raises(ValueError, match="variance_weight"):
        type(cfg.loss)(variance_weight=-1.0)
