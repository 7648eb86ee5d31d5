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
