"""Target-encoder momentum: xi <- tau * xi + (1 - tau) * theta (seed 4.2)."""

from __future__ import annotations

import math

import torch
from torch import nn

from vjepa2.config.components import EMAConfig


def momentum_at(step: int, total_steps: int, cfg: EMAConfig) -> float:
    """tau at ``step``: cosine from ``start`` to ``end`` over training, or constant ``start``."""
    if cfg.schedule == "constant" or total_steps <= 0:
        return cfg.start
    progress = min(max(step / total_steps, 0.0), 1.0)
    return cfg.end - (cfg.end - cfg.start) * (math.cos(math.pi * progress) + 1.0) / 2.0


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """In-place EMA of every parameter; buffers are copied (they are not learned)."""
    t_params = [p for p in target.parameters()]
    o_params = [p.detach() for p in online.parameters()]
    if len(t_params) != len(o_params):
        raise ValueError("target and online modules have different parameter lists")
    torch._foreach_mul_(t_params, tau)
    torch._foreach_add_(t_params, o_params, alpha=1.0 - tau)
    for tb, ob in zip(target.buffers(), online.buffers(), strict=True):
        tb.copy_(ob)
