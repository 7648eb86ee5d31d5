"""FLOPs per rollout step: what one candidate costs the planner at each horizon step.

CEM's compute is K x H x I of these per plan, so the per-step count compares planners on
different state spaces (a pooled latent against a full-resolution frame) independently of
the machine they ran on.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode


def flops_per_step(
    step_fn: Callable[[Tensor, Tensor], Tensor], state: Tensor, action: Tensor
) -> int:
    """FLOPs of ``step_fn`` on one candidate (the first row of ``state`` and ``action``).

    Counted by ``FlopCounterMode``: matmuls, convolutions and attention, a multiply-add being
    two FLOPs; elementwise work (activations, norms, the residual add) is not counted, as in
    the usual model-FLOPs convention.
    """
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        step_fn(state[:1], action[:1])
    return int(counter.get_total_flops())
