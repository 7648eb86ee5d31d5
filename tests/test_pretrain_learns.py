"""Phase 1 on moving shapes: the loss falls and the targets keep their spread."""

from __future__ import annotations

import statistics

import pytest
import torch

from vjepa2.config import apply_overrides, get_preset
from vjepa2.train.builders import build_vjepa
from vjepa2.train.local import run_pretraining
from vjepa2.train.steps import pretrain_step


def _mean(rows, key, sl):
    return statistics.fmean(r[key] for r in rows[sl])


def _pretrain(tmp_path, *overrides):
    cfg = apply_overrides(
        get_preset("pretrain", "tiny"),
        [f"train.out_dir={tmp_path}", "train.steps=200", "train.log_every=5", *overrides],
    )
    return run_pretraining(cfg, progress=False).history


@pytest.mark.slow
def test_tiny_pretraining_learns_without_collapse_and_no_ema_degrades(tmp_path):
    ema = _pretrain(tmp_path / "ema")
    no_ema = _pretrain(tmp_path / "no_ema", "ema.enabled=false")
    for name, h in (("EMA", ema), ("no EMA", no_ema)):
        print(
            f"{name}: loss {_mean(h, 'loss', slice(0, 4)):.3f} -> "
            f"{_mean(h, 'loss', slice(-4, None)):.3f}; target per-dim std "
            f"{h[0]['target_std_mean']:.4f} -> {h[-1]['target_std_mean']:.4f} "
            f"(isotropic {h[-1]['target_std_isotropic']:.4f}); effective rank "
            f"{h[0]['target_effective_rank']:.1f} -> {h[-1]['target_effective_rank']:.1f}"
        )
    first, last = _mean(ema, "loss", slice(0, 4)), _mean(ema, "loss", slice(-4, None))
    assert last < 0.2 * first, f"loss did not fall clearly: {first:.3f} -> {last:.3f}"
    # Collapse sends the per-dim std to ~0 and the effective rank to ~1. Most tokens of these
    # videos are plain background, so healthy values sit below the isotropic ones.
    final = ema[-1]
    dim = round(final["target_std_isotropic"] ** -2)
    assert final["target_std_min"] > 0.02 * final["target_std_isotropic"]
    assert final["target_effective_rank"] > 0.25 * dim
    # The seed's ablation direction: without EMA the targets lose rank (towards collapse).
    assert no_ema[-1]["target_effective_rank"] < final["target_effective_rank"]
    assert all("target_effective_rank" in row for row in no_ema)


def test_pretrain_step_updates_online_and_target_but_not_by_gradient(tiny_pretrain):
    torch.manual_seed(0)
    model = build_vjepa(tiny_pretrain)
    from vjepa2.optim import build_optimizer

    opt = build_optimizer(model, tiny_pretrain.optim)
    assert all(not p.requires_grad for p in model.target_encoder.parameters())
    assert not any(
        p is q
        for g in opt.param_groups
        for p in g["params"]
        for q in model.target_encoder.parameters()
    )
    enc0 = [p.detach().clone() for p in model.encoder.parameters()]
    tgt0 = [p.detach().clone() for p in model.target_encoder.parameters()]
    video = torch.randn(2, 3, 8, 64, 64)
    res = pretrain_step(
        model,
        opt,
        video,
        step=5,
        total_steps=10,
        optim_cfg=tiny_pretrain.optim,
        generator=torch.Generator().manual_seed(0),
    )
    assert res.loss > 0 and res.momentum is not None and 0.99 <= res.momentum <= 1.0
    assert any(not torch.equal(a, b) for a, b in zip(enc0, model.encoder.parameters(), strict=True))
    assert any(
        not torch.equal(a, b) for a, b in zip(tgt0, model.target_encoder.parameters(), strict=True)
    )
    assert all(p.grad is None for p in model.target_encoder.parameters())


class _Regressor(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 1)

    def forward(self, x, y):
        return ((self.lin(x) - y) ** 2).mean(), {}


def test_grad_accumulation_matches_the_full_batch():
    """Two micro-batches of 4 give the same update as one batch of 8."""
    from vjepa2.config import OptimConfig
    from vjepa2.train.steps import optimize

    x, y = torch.randn(8, 3), torch.randn(8, 1)
    weights = []
    for accum in (1, 2):
        torch.manual_seed(0)
        model = _Regressor()
        cfg = OptimConfig(lr=0.1, warmup_steps=0, grad_clip=0, grad_accum_steps=accum)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        res = optimize(model, opt, (x, y), step=0, total_steps=1, optim_cfg=cfg)
        weights.append((res.loss, model.lin.weight.detach().clone()))
    assert weights[0][0] == pytest.approx(weights[1][0], rel=1e-6)
    assert torch.allclose(weights[0][1], weights[1][1], atol=1e-7)


def test_non_finite_loss_stops_before_the_update():
    from vjepa2.config import OptimConfig
    from vjepa2.train.steps import NonFiniteLossError, optimize

    model = _Regressor()
    before = model.lin.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.full((2, 3), float("nan"))
    with pytest.raises(NonFiniteLossError, match="step 7"):
        optimize(
            model,
            opt,
            (x, torch.zeros(2, 1)),
            step=7,
            total_steps=10,
            optim_cfg=OptimConfig(warmup_steps=0),
        )
    assert torch.equal(before, model.lin.weight)
