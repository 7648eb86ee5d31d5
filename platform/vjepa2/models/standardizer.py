"""Per-feature standardisation of latent states, fitted on the first training batches.

Frozen-encoder states of a mostly static scene are a large constant per token plus a small
part that moves with the agent (on TwoRoom's blurred grid the moving part is ~0.1% of the
token's norm). A dynamics model fed such states must learn to amplify a signal a thousand
times smaller than its input, and its squared loss is dominated by nothing at all.
Subtracting each feature's mean and dividing by its spread over the data puts the moving part
at unit scale, for the model and for the planning energy alike.

The statistics are exact running moments (Chan et al.'s parallel update, in float64) over
the states of the first ``fit_batches`` training batches; after that they are frozen, so the
space the dynamics model predicts in stops moving. They live in buffers: checkpoints carry
them, DDP broadcasts rank 0's, and an untrained standardizer is the identity.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class StateStandardizer(nn.Module):
    """``(z - mean) / max(std, floor)`` per feature of a state [*S]; statistics from the
    first ``fit_batches`` calls to ``update`` (batches [B, *S]).

    ``floor`` is ``rel_floor`` x the root-mean-square std over all features: a feature that
    never moves (a background token of a deterministic scene) stays near zero instead of
    having float rounding blown up to unit scale.
    """

    def __init__(self, shape: tuple[int, ...], fit_batches: int = 50, rel_floor: float = 0.1):
        super().__init__()
        if fit_batches < 1 or rel_floor <= 0:
            raise ValueError("StateStandardizer needs fit_batches >= 1 and rel_floor > 0")
        self.fit_batches, self.rel_floor = fit_batches, rel_floor
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("batches", torch.zeros((), dtype=torch.long))
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("m2", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("scale", torch.ones(shape))
        self.register_buffer("shift", torch.zeros(shape))

    @property
    def fitted(self) -> bool:
        return int(self.batches) >= self.fit_batches

    @torch.no_grad()
    def update(self, states: Tensor) -> None:
        """Fold a batch of states [B, *S] into the moments, until ``fit_batches`` were seen."""
        if self.fitted:
            return
        if tuple(states.shape[1:]) != tuple(self.mean.shape):
            raise ValueError(
                f"states {tuple(states.shape)} do not match the standardizer's "
                f"{tuple(self.mean.shape)} per row"
            )
        x = states.detach().to(torch.float64)
        n_b = float(x.shape[0])
        mean_b = x.mean(0)
        m2_b = (x - mean_b).pow(2).sum(0)
        n = float(self.count)
        total = n + n_b
        delta = mean_b - self.mean
        self.mean += delta * (n_b / total)
        self.m2 += m2_b + delta.pow(2) * (n * n_b / total)
        self.count.fill_(total)
        self.batches += 1
        std = (self.m2 / total).sqrt()
        floor = self.rel_floor * std.pow(2).mean().sqrt()
        self.shift.copy_(self.mean.float())
        self.scale.copy_(std.clamp_min(float(floor)).clamp_min(1e-12).float())

    def standardized_variance(self) -> Tensor:
        """The fitted data's variance summed over features, in standardised units: the
        number of features that move, less those held under the floor. 0 before any fit."""
        if float(self.count) == 0:
            return torch.zeros((), dtype=self.scale.dtype, device=self.scale.device)
        std = (self.m2 / self.count).sqrt()
        return (std / self.scale.double()).pow(2).sum().to(self.scale.dtype)

    def forward(self, states: Tensor) -> Tensor:
        return (states - self.shift) / self.scale
