"""One optimisation step for each phase, as plain functions a unit test can call.

Ray Train's worker loop and the local loop both call these; they know nothing of Ray.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from vjepa2.config.components import OptimConfig
from vjepa2.jepa import VJEPA
from vjepa2.schedules import lr_at, set_lr
from vjepa2.world_model import WorldModel


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN/inf: stop before the parameters are poisoned."""


@dataclass
class StepResult:
    loss: float
    lr: float
    grad_norm: float
    momentum: float | None = None
    aux: dict[str, Tensor] = field(default_factory=dict)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def _no_sync(model: nn.Module, last: bool) -> contextlib.AbstractContextManager:
    # Only the last micro-batch all-reduces gradients under gradient accumulation.
    if isinstance(model, DistributedDataParallel) and not last:
        return model.no_sync()
    return contextlib.nullcontext()


def _autocast(device: torch.device, amp_dtype: torch.dtype | None):
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype)


def _micro_batches(inputs: tuple[Tensor, ...], n: int) -> Iterator[tuple[Tensor, ...]]:
    if n > inputs[0].shape[0]:
        raise ValueError(f"grad_accum_steps {n} exceeds the batch size {inputs[0].shape[0]}")
    yield from zip(*(x.chunk(n) for x in inputs), strict=True)


def optimize(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: tuple[Tensor, ...],
    *,
    step: int,
    total_steps: int,
    optim_cfg: OptimConfig,
    amp_dtype: torch.dtype | None = None,
    **forward_kwargs,
) -> StepResult:
    """Set the lr for ``step``, accumulate gradients over micro-batches, clip, update.

    ``model(*micro_batch, **forward_kwargs)`` must return ``(loss, aux)``.
    """
    lr = lr_at(step, total_steps, optim_cfg)
    set_lr(optimizer, lr)
    n = optim_cfg.grad_accum_steps
    device = inputs[0].device
    total_loss = 0.0
    aux: dict[str, Tensor] = {}
    for i, micro in enumerate(_micro_batches(inputs, n)):
        with _no_sync(model, last=i == n - 1), _autocast(device, amp_dtype):
            loss, aux = model(*micro, **forward_kwargs)
        if not torch.isfinite(loss):
            optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLossError(f"loss is {loss.item()} at step {step}; update skipped")
        (loss / n).backward()
        total_loss += loss.item() / n
    params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    max_norm = optim_cfg.grad_clip if optim_cfg.grad_clip > 0 else math.inf
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return StepResult(loss=total_loss, lr=lr, grad_norm=grad_norm, aux=aux)


def pretrain_step(
    model: VJEPA | DistributedDataParallel,
    optimizer: torch.optim.Optimizer,
    video: Tensor,
    *,
    step: int,
    total_steps: int,
    optim_cfg: OptimConfig,
    generator: torch.Generator | None = None,
    amp_dtype: torch.dtype | None = None,
) -> StepResult:
    """Phase 1: masked latent prediction on clips [B, C, T, H, W], then the EMA update."""
    result = optimize(
        model,
        optimizer,
        (video,),
        step=step,
        total_steps=total_steps,
        optim_cfg=optim_cfg,
        amp_dtype=amp_dtype,
        generator=generator,
    )
    result.momentum = unwrap(model).update_target(step, total_steps)
    return result


def dynamics_step(
    model: WorldModel | DistributedDataParallel,
    optimizer: torch.optim.Optimizer,
    frames: Tensor,
    actions: Tensor,
    proprio: Tensor | None = None,
    *,
    step: int,
    total_steps: int,
    optim_cfg: OptimConfig,
    amp_dtype: torch.dtype | None = None,
) -> StepResult:
    """Phase 2: next-state (or multi-step) latent loss; the encoder is frozen unless it
    adapts slowly, in which case its EMA target moves after the update. ``proprio``
    [B, H+1, d_p] comes with the windows of a state that has a proprio token."""
    inputs = (frames, actions) if proprio is None else (frames, actions, proprio)
    result = optimize(
        model,
        optimizer,
        inputs,
        step=step,
        total_steps=total_steps,
        optim_cfg=optim_cfg,
        amp_dtype=amp_dtype,
    )
    result.momentum = unwrap(model).update_target()
    return result
