"""Learning-rate schedule: linear warmup, then cosine decay to ``min_lr`` (seed section 5).

The rate is a pure function of the step, so resuming needs only the step count.
"""

from __future__ import annotations

import math

import torch

from vjepa2.config.components import OptimConfig


def lr_at(step: int, total_steps: int, cfg: OptimConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.warmup_lr + (cfg.lr - cfg.warmup_lr) * step / cfg.warmup_steps
    decay_steps = max(total_steps - cfg.warmup_steps, 1)
    progress = min((step - cfg.warmup_steps) / decay_steps, 1.0)
    return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
