"""Collapse diagnostics for embeddings: per-dimension spread and effective rank.

A collapsed encoder maps every input to (nearly) the same vector: the per-dimension standard
deviation across samples falls toward zero and the effective rank toward one.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _flatten(z: Tensor) -> Tensor:
    return z.detach().float().reshape(-1, z.shape[-1])


def per_dim_std(z: Tensor) -> Tensor:
    """Std of each feature over all samples/tokens: [D]."""
    return _flatten(z).std(dim=0)


def effective_rank(z: Tensor, eps: float = 1e-12) -> float:
    """exp(entropy) of the normalised singular values of centred embeddings (RankMe)."""
    x = _flatten(z)
    x = x - x.mean(dim=0, keepdim=True)
    s = torch.linalg.svdvals(x)
    p = s / (s.sum() + eps)
    entropy = -(p * (p + eps).log()).sum()
    return float(entropy.exp())


def collapse_stats(z: Tensor) -> dict[str, float]:
    """Summary for logs: mean/min per-dim std (of L2-normalised rows) and effective rank."""
    x = _flatten(z)
    # Normalising rows makes the std comparable across widths and scales (1/sqrt(D) is the
    # value for isotropic embeddings).
    x_unit = torch.nn.functional.normalize(x, dim=-1)
    std = x_unit.std(dim=0)
    return {
        "std_mean": float(std.mean()),
        "std_min": float(std.min()),
        "std_isotropic": float(x.shape[-1] ** -0.5),
        "effective_rank": effective_rank(x),
    }
