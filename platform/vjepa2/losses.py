"""Latent regression losses (seed 4.6).

Both kinds reduce the same way: a norm over the feature dimension per token, then a mean over
tokens and batch. For ``l2`` that is the seed's (1/|M|) sum_i ||z_hat_i - sg(z*_i)||_2^2.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

LossKind = Literal["l2", "l1"]


def latent_loss(pred: Tensor, target: Tensor, kind: LossKind = "l2") -> Tensor:
    """Per-token squared L2 (or L1) distance over the last dim, averaged over the rest."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    diff = pred.float() - target.detach().float()
    if kind == "l2":
        per_token = diff.pow(2).sum(dim=-1)
    elif kind == "l1":
        per_token = diff.abs().sum(dim=-1)
    else:
        raise ValueError(f"unknown loss kind {kind!r}; expected 'l2' or 'l1'")
    return per_token.mean()


def variance_covariance(z: Tensor, target_std: float = 1.0) -> tuple[Tensor, Tensor]:
    """VICReg's anti-collapse terms over the tokens of ``z`` [..., D]: the mean hinge
    ``relu(target_std - std_d)`` over features, and the squared off-diagonal covariance
    summed and divided by D. Both are 0 for decorrelated features with std >= target_std."""
    x = z.reshape(-1, z.shape[-1]).float()
    if x.shape[0] < 2:
        raise ValueError("variance_covariance needs at least 2 tokens")
    x = x - x.mean(dim=0)
    std = torch.sqrt(x.var(dim=0) + 1e-4)
    variance = F.relu(target_std - std).mean()
    d = x.shape[1]
    cov = (x.T @ x) / (x.shape[0] - 1)
    off_diagonal = cov - torch.diag(torch.diagonal(cov))
    return variance, off_diagonal.pow(2).sum() / d


def normalize_targets(z: Tensor) -> Tensor:
    """Parameter-free layer norm over features: keeps the target scale from drifting."""
    return F.layer_norm(z, z.shape[-1:])


def multistep_loss(
    predictions: Tensor, targets: Tensor, discount: float = 1.0, kind: LossKind = "l2"
) -> Tensor:
    """(1/H) sum_k discount^(k-1) * loss(s_hat_{t+k}, s*_{t+k}) over rollouts [B, H, ...]."""
    if predictions.shape != targets.shape:
        raise ValueError(
            f"rollout {tuple(predictions.shape)} and targets {tuple(targets.shape)} differ"
        )
    horizon = predictions.shape[1]
    weights = discount ** torch.arange(horizon, dtype=torch.float32, device=predictions.device)
    per_step = torch.stack(
        [latent_loss(predictions[:, k], targets[:, k], kind) for k in range(horizon)]
    )
    return (weights * per_step).sum() / horizon
