"""AdamW with the usual ViT exemption of biases, norms and embeddings from weight decay."""

from __future__ import annotations

import torch
from torch import nn

from vjepa2.config.components import OptimConfig

# Parameters whose names contain these are positional/learned tokens: decaying them toward
# zero only hurts (mask tokens and position tables carry no scale to regularise).
_NO_DECAY_NAMES = ("pos_embed", "mask_token", "cls_token")


def param_groups(model: nn.Module, weight_decay: float, lr_scale: float = 1.0) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or any(key in name for key in _NO_DECAY_NAMES):
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay, "lr_scale": lr_scale},
        {"params": no_decay, "weight_decay": 0.0, "lr_scale": lr_scale},
    ]


def build_optimizer(
    model: nn.Module, cfg: OptimConfig, extra: list[dict] | None = None
) -> torch.optim.AdamW:
    """AdamW over ``model``; ``extra`` adds groups (e.g. a slowly adapting encoder)."""
    groups = param_groups(model, cfg.weight_decay) + (extra or [])
    if not any(g["params"] for g in groups):
        raise ValueError("the model has no trainable parameters")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
