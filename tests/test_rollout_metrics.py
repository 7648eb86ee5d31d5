"""The rollout metrics' baselines, on stub models whose predictions are known exactly."""

from __future__ import annotations

import pytest
import torch

from vjepa2.eval.report import rollout_table
from vjepa2.eval.rollout import rollout_cosine


class StubModel(torch.nn.Module):
    """States are the frames themselves; ``rollout`` is the function given."""

    def __init__(self, rollout):
        super().__init__()
        self._rollout = rollout

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        return frames.flatten(2)  # [B, T, D]: one pooled token per frame

    def rollout(self, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self._rollout(state, actions)


def _episodes(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    frames = torch.randn(16, 6, 1, 2, 2, generator=g) + 3.0  # [B, T, C, H, W], non-zero mean
    return frames, torch.zeros(16, 5, 2)


def test_error_against_the_average_future_state():
    frames, actions = _episodes()
    truth = frames.flatten(2)
    perfect = StubModel(lambda s, a: truth[:, 1:])
    average = StubModel(lambda s, a: truth[:, 1:].mean(0, keepdim=True).expand(len(s), -1, -1))
    copy = StubModel(lambda s, a: s[:, None].expand(-1, a.shape[1], -1))

    got = rollout_cosine(perfect, frames, actions, horizons=(1, 5))
    assert got["error_vs_mean"] == {1: pytest.approx(0.0), 5: pytest.approx(0.0)}
    got = rollout_cosine(average, frames, actions, horizons=(1, 5))
    assert got["error_vs_mean"] == {1: pytest.approx(1.0), 5: pytest.approx(1.0)}
    # Independent frames: copying errs about twice as much as the average does.
    got = rollout_cosine(copy, frames, actions, horizons=(1, 5))
    assert got["error_vs_copy"] == {1: pytest.approx(1.0), 5: pytest.approx(1.0)}
    assert all(1.5 < r < 3.0 for r in got["error_vs_mean"].values())
    table = rollout_table(got, 16)
    assert "| squared error / the average state's (< 1 beats it) |" in table


def test_the_table_reads_results_written_before_the_average_baseline():
    old = {
        "model": {1: 0.9, 5: 0.8},
        "copy": {1: 0.95, 5: 0.5},
        "error_vs_copy": {1: 1.1, 5: 0.4},
    }
    table = rollout_table(old, 8)
    assert "copy's" in table and "average" not in table


def test_state_views_name_each_part_of_the_state():
    from vjepa2.config import apply_overrides, get_preset
    from vjepa2.train.builders import build_world_model

    model, _ = build_world_model(get_preset("dynamics", "pusht_small"))
    assert model.state_views() == [
        ("sharp", slice(0, 16)),
        ("blur 12 px", slice(16, 32)),
        ("proprio", slice(32, 33)),
    ]
    blurred = ["state.pooled=false", "state.sharp_view=false", "state.blur_px=[4.0, 8.0]"]
    model, _ = build_world_model(apply_overrides(get_preset("dynamics", "tiny"), blurred))
    assert model.state_views() == [("blur 4 px", slice(0, 16)), ("blur 8 px", slice(16, 32))]
    pooled = ["state.pooled=true"]
    model, _ = build_world_model(apply_overrides(get_preset("dynamics", "tiny"), pooled))
    assert model.state_views() == [("pooled", slice(0, 1))]


def test_figures_by_view_tell_which_part_the_model_misses():
    frames, actions = _episodes()
    truth = frames.flatten(2)[:, :, :, None].expand(-1, -1, -1, 3)  # [B, T, 4 tokens, D=3]

    def half_right(s, a):  # the first two tokens exact, the last two copied from the start
        out = truth[:, 1:].clone()
        out[:, :, 2:] = s[:, None, 2:]
        return out

    model = StubModel(half_right)
    model.encode = lambda f: f.flatten(2)[:, :, :, None].expand(-1, -1, -1, 3)
    model.state_views = lambda: [("exact", slice(0, 2)), ("copied", slice(2, 4))]
    got = rollout_cosine(model, frames, actions, horizons=(1, 5), by_view=True)
    assert got["by_view"]["exact"]["error_vs_copy"] == {1: 0.0, 5: 0.0}
    assert got["by_view"]["exact"]["model"] == {1: pytest.approx(1.0), 5: pytest.approx(1.0)}
    assert got["by_view"]["copied"]["error_vs_copy"] == {1: 1.0, 5: 1.0}
    assert 0.0 < got["error_vs_copy"][1] < 1.0  # the whole state: between the two
    assert "by_view" not in rollout_cosine(model, frames, actions, horizons=(1,))


def test_training_loss_by_part_of_the_state():
    """``view_losses`` splits the training loss by part: token-weighted, the parts give back
    the whole loss, and an error in one part shows in that part alone."""
    from vjepa2.config import get_preset
    from vjepa2.losses import latent_loss
    from vjepa2.train.builders import build_world_model

    model, _ = build_world_model(get_preset("dynamics", "pusht_small"))
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(2, 3, 33, 96, generator=g), torch.randn(2, 3, 33, 96, generator=g)
    got = model.view_losses(pred, target)
    assert list(got) == ["loss_sharp", "loss_blur_12_px", "loss_proprio"]
    weighted = (16 * got["loss_sharp"] + 16 * got["loss_blur_12_px"] + got["loss_proprio"]) / 33
    assert weighted == pytest.approx(float(latent_loss(pred, target)), rel=1e-5)

    off = pred.clone()
    off[:, :, :16] += 1.0  # every channel of the plain grid's tokens one unit away
    got = model.view_losses(off, pred)
    assert got == {
        "loss_sharp": pytest.approx(96.0),
        "loss_blur_12_px": 0.0,
        "loss_proprio": 0.0,
    }
    pooled, _ = build_world_model(get_preset("dynamics", "tiny"))
    assert pooled.view_losses(torch.zeros(2, 3, 96), torch.ones(2, 3, 96)) == {}
