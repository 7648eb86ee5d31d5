"""Standardised states: exact moments over the fitting batches, frozen after, carried by
checkpoints, and the space the world model trains and plans in."""

from __future__ import annotations

import pytest
import torch

from vjepa2.config import apply_overrides, get_preset
from vjepa2.models.standardizer import StateStandardizer
from vjepa2.train.builders import build_world_model, load_world_model
from vjepa2.train.local import run_dynamics_training


def test_moments_equal_the_whole_sample_and_freeze_after_the_fitting_batches():
    torch.manual_seed(0)
    # A large constant with a small moving part: float32 E[x^2] - E[x]^2 would lose it.
    batches = [1.0 + 1e-3 * torch.randn(7 + i, 4, 3) for i in range(3)]
    std = StateStandardizer((4, 3), fit_batches=3)
    x = torch.randn(5, 4, 3)
    assert torch.equal(std(x), x)  # the identity until fitted
    for b in batches:
        std.update(b)
    assert std.fitted
    whole = torch.cat(batches).double()
    torch.testing.assert_close(std.mean, whole.mean(0))
    torch.testing.assert_close(std.scale, whole.std(0, unbiased=False).float(), rtol=1e-4, atol=0)
    out = std(torch.cat(batches))
    torch.testing.assert_close(out.mean(0), torch.zeros(4, 3), atol=1e-3, rtol=0)
    torch.testing.assert_close(out.std(0, unbiased=False), torch.ones(4, 3), atol=1e-3, rtol=0)
    frozen = {k: v.clone() for k, v in std.state_dict().items()}
    std.update(torch.randn(9, 4, 3) * 50)
    assert all(torch.equal(frozen[k], v) for k, v in std.state_dict().items())
    with pytest.raises(ValueError, match="do not match"):
        StateStandardizer((4, 3)).update(torch.zeros(2, 3, 4))


def test_a_feature_that_never_moves_is_floored_not_blown_up():
    std = StateStandardizer((3,), fit_batches=1, rel_floor=0.1)
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(1))
    x[:, 2] = 5.0  # constant: its std is 0
    std.update(x)
    rms = (std.m2 / 64).mean().sqrt()
    assert float(std.scale[2]) == pytest.approx(0.1 * float(rms), rel=1e-5)
    assert torch.all(std(x)[:, 2].abs() < 1e-6)


@pytest.fixture
def standardized_cfg(tmp_path):
    return apply_overrides(
        get_preset("dynamics", "tiny"),
        [
            f"train.out_dir={tmp_path}",
            "train.steps=6",
            "train.checkpoint_every=6",
            "data.synthetic.num_videos=8",
            "state.pooled=false",
            "state.standardize=true",
            "state.standardize_batches=4",
        ],
    )


def test_the_world_model_trains_and_plans_in_the_fitted_space(standardized_cfg):
    torch.manual_seed(0)
    model, cfg = build_world_model(standardized_cfg)
    assert model.standardizer is not None and model.standardizer.mean.shape == (16, 96)
    frames = torch.randn(6, 3, 3, 64, 64)
    actions = torch.randn(6, 2, cfg.dynamics.action_dim)
    raw = model.encode(frames)
    model.eval()
    model(frames, actions)  # evaluation never fits
    assert int(model.standardizer.batches) == 0
    model.train()
    for _ in range(4):
        model(frames, actions)
    assert model.standardizer.fitted
    model.eval()
    z = model.encode(frames)
    torch.testing.assert_close(z, (raw - model.standardizer.shift) / model.standardizer.scale)
    moving = model.standardizer.scale > 2 * model.standardizer.scale.min()
    flat = z.reshape(-1, 16, 96)
    torch.testing.assert_close(flat.mean(0), torch.zeros(16, 96), atol=1e-4, rtol=0)
    assert torch.allclose(flat.std(0, unbiased=False)[moving], torch.ones(()), atol=1e-3)


def test_training_fits_the_statistics_and_the_checkpoint_carries_them(standardized_cfg):
    run = run_dynamics_training(standardized_cfg, progress=False)
    model, cfg = load_world_model(run.checkpoint)
    assert cfg.state.standardize and model.standardizer.fitted
    assert int(model.standardizer.batches) == 4  # 6 steps, fitted on the first 4 batches
    assert float(model.standardizer.scale.mean()) < 0.5  # frozen states vary little
    # An old checkpoint (no standardizer) still loads: the option defaults to off.
    plain = apply_overrides(standardized_cfg, ["state.standardize=false"])
    assert build_world_model(plain)[0].standardizer is None
