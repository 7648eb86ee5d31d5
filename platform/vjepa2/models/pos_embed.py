"""Spatiotemporal positional encodings: fixed 3-D sin-cos tables and 3-D rotary embeddings."""

from __future__ import annotations

import torch
from torch import Tensor


def grid_positions(t: int, h: int, w: int, device: torch.device | str | None = None) -> Tensor:
    """(t, h, w) coordinates of every token of a grid, in raster order: [t*h*w, 3] float."""
    tt, hh, ww = torch.meshgrid(
        torch.arange(t, device=device),
        torch.arange(h, device=device),
        torch.arange(w, device=device),
        indexing="ij",
    )
    return torch.stack([tt, hh, ww], dim=-1).reshape(-1, 3).float()


def _sincos_1d(dim: int, pos: Tensor) -> Tensor:
    """[N] positions -> [N, dim] (dim even): half sines, half cosines."""
    omega = torch.arange(dim // 2, dtype=torch.float64, device=pos.device) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    out = pos.double()[:, None] * omega[None, :]
    return torch.cat([out.sin(), out.cos()], dim=1).float()


def sincos_3d(dim: int, t: int, h: int, w: int, device: torch.device | str | None = None) -> Tensor:
    """Fixed 3-D sin-cos table [t*h*w, dim].

    Time gets a quarter of the channels and each spatial axis three eighths (rounded to even),
    following V-JEPA; with a single time step the time quarter is constant, as it should be.
    """
    if dim % 2:
        raise ValueError(f"sin-cos positions need an even width, got {dim}")
    dim_t = 2 * (dim // 8)
    dim_h = 2 * ((dim - dim_t) // 4)
    dim_w = dim - dim_t - dim_h
    pos = grid_positions(t, h, w, device)
    return torch.cat(
        [_sincos_1d(dim_t, pos[:, 0]), _sincos_1d(dim_h, pos[:, 1]), _sincos_1d(dim_w, pos[:, 2])],
        dim=1,
    )


class Rope3D(torch.nn.Module):
    """Rotary embeddings over (t, h, w): each axis rotates its own slice of every head.

    The head is split into three even slices; channels left over (head_dim not divisible by 6)
    pass through unrotated. ``forward(x, pos)`` takes x [B, heads, N, head_dim] and positions
    [N, 3] or [B, N, 3] and returns the rotated tensor.
    """

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        self.axis_dim = 2 * ((head_dim // 3) // 2)
        if self.axis_dim == 0:
            raise ValueError(f"head_dim {head_dim} is too small for 3-D rotary embeddings")
        inv_freq = 1.0 / base ** (torch.arange(0, self.axis_dim, 2).float() / self.axis_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x: Tensor, pos: Tensor) -> Tensor:
        if pos.dim() == 2:
            pos = pos.unsqueeze(0)
        pos = pos.to(x.device, torch.float32)
        parts = []
        d = self.axis_dim
        for axis in range(3):
            chunk = x[..., axis * d : (axis + 1) * d]
            angles = pos[..., axis, None] * self.inv_freq  # [B, N, d/2]
            cos = angles.cos().repeat_interleave(2, dim=-1).unsqueeze(1).to(x.dtype)
            sin = angles.sin().repeat_interleave(2, dim=-1).unsqueeze(1).to(x.dtype)
            pairs = chunk.unflatten(-1, (-1, 2))
            rotated = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)
            parts.append(chunk * cos + rotated * sin)
        parts.append(x[..., 3 * d :])
        return torch.cat(parts, dim=-1)
