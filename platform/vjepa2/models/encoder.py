"""Video ViT encoder f_theta (seed 4.1): tubelet patches, 3-D positions, pre-norm blocks."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vjepa2.config.components import EncoderConfig
from vjepa2.models.blocks import Block, init_weights, rescale_residual_projections
from vjepa2.models.pos_embed import grid_positions, sincos_3d


def check_indices(idx: Tensor, batch: int, limit: int, name: str) -> Tensor:
    """Validate token indices [B, K] against a batch size and a token count; returns int64.

    The range check costs one host sync, but an out-of-range gather on GPU is an opaque
    device-side assert, which is far more expensive to debug.
    """
    if idx.dim() != 2:
        raise ValueError(f"{name} must be [B, K] token indices, got shape {tuple(idx.shape)}")
    if idx.dtype.is_floating_point or idx.dtype == torch.bool or idx.is_complex():
        raise ValueError(f"{name} must hold integer token indices, got {idx.dtype}")
    if idx.shape[0] != batch:
        raise ValueError(f"{name} has batch {idx.shape[0]} but the input has batch {batch}")
    if idx.numel():
        lo, hi = torch.stack(torch.aminmax(idx)).tolist()
        if lo < 0 or hi >= limit:
            raise ValueError(f"{name} values must lie in [0, {limit}), got [{lo}, {hi}]")
    return idx.long()


class VideoViT(nn.Module):
    """ViT over spatiotemporal tubelets of a clip [B, C, T, H, W] (or an image [B, C, H, W]).

    Tokens are in raster order over the (t, h, w) grid. Positions are fixed 3-D sin-cos added
    after the patch embedding, or 3-D RoPE inside every block (``cfg.pos_embed == "rope"``);
    both are computed for whatever grid the input has, so any resolution divisible by the
    patch size works.
    """

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        self.use_rope = cfg.pos_embed == "rope"
        kernel = (cfg.tubelet_size, cfg.patch_size, cfg.patch_size)
        self.patch_embed = nn.Conv3d(cfg.in_chans, d, kernel_size=kernel, stride=kernel)
        # Stochastic depth grows linearly with depth (the usual ViT schedule).
        rates = torch.linspace(0, cfg.drop_path, cfg.depth, device="cpu").tolist()
        self.blocks = nn.ModuleList(
            Block(d, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias, drop_path=r, rope=self.use_rope)
            for r in rates
        )
        self.norm = nn.LayerNorm(d, eps=1e-6)
        # Position tables per (grid, device). A dict, not a buffer: they are functions of the
        # input shape, never learned, and must not appear in checkpoints.
        self._pos_cache: dict[tuple, Tensor] = {}
        self._init_weights()

    def _init_weights(self) -> None:
        init_weights(self)
        # The tubelet conv is a linear map of the flattened patch: initialise it as one.
        w = self.patch_embed.weight
        nn.init.trunc_normal_(w.view(w.shape[0], -1), std=0.02)
        nn.init.zeros_(self.patch_embed.bias)
        rescale_residual_projections(self.blocks)

    @property
    def embed_dim(self) -> int:
        return self.cfg.embed_dim

    def grid(self, T: int, H: int, W: int) -> tuple[int, int, int]:
        """Token grid (t, h, w) for a clip of T frames of H x W pixels."""
        c = self.cfg
        if T % c.tubelet_size:
            raise ValueError(f"{T} frames do not divide by tubelet_size {c.tubelet_size}")
        if H % c.patch_size or W % c.patch_size:
            raise ValueError(f"frame size {H}x{W} does not divide by patch_size {c.patch_size}")
        return T // c.tubelet_size, H // c.patch_size, W // c.patch_size

    def num_patches(self, T: int | None = None, H: int | None = None, W: int | None = None) -> int:
        """Token count for a clip; defaults to the config's num_frames x img_size x img_size."""
        c = self.cfg
        t, h, w = self.grid(T or c.num_frames, H or c.img_size, W or c.img_size)
        return t * h * w

    def positions(self, grid: tuple[int, int, int], device: torch.device) -> Tensor:
        """Sin-cos table [N, D], or (t, h, w) coordinates [N, 3] under RoPE, for a grid."""
        key = (*grid, self.use_rope, str(device))
        if key not in self._pos_cache:
            if self.use_rope:
                table = grid_positions(*grid, device=device)
            else:
                table = sincos_3d(self.embed_dim, *grid, device=device)
            self._pos_cache[key] = table
        return self._pos_cache[key]

    def _as_clip(self, video: Tensor) -> Tensor:
        c = self.cfg
        if video.dim() == 4:
            # An image becomes a static clip of one tubelet, as the reference repo does when
            # encoding single frames for the action-conditioned phase.
            video = video.unsqueeze(2).expand(-1, -1, c.tubelet_size, -1, -1)
        elif video.dim() != 5:
            raise ValueError(
                f"expected a clip [B, C, T, H, W] or images [B, C, H, W], "
                f"got shape {tuple(video.shape)}"
            )
        if not video.is_floating_point():
            raise ValueError(f"expected a normalised float input, got {video.dtype}")
        if video.shape[1] != c.in_chans:
            raise ValueError(
                f"expected {c.in_chans} channels at dim 1, got {video.shape[1]} "
                f"(shape {tuple(video.shape)}; layout is [B, C, T, H, W])"
            )
        return video

    def forward(self, video: Tensor, keep: Tensor | None = None) -> Tensor:
        """Encode normalised clips [B, C, T, H, W] (or images [B, C, H, W]) to tokens [B, N, D].

        ``keep`` [B, K] selects token indices (raster order over the grid) to encode, e.g.
        the context tokens of a masked clip; the result is then [B, K, D].
        """
        video = self._as_clip(video)
        grid = self.grid(*video.shape[2:])
        x = self.patch_embed(video).flatten(2).transpose(1, 2)  # [B, N, D]
        pos = self.positions(grid, x.device)
        if not self.use_rope:
            x = x + pos.to(x.dtype)
        if keep is not None:
            keep = check_indices(keep, x.shape[0], x.shape[1], "keep")
            x = torch.gather(x, 1, keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
            if self.use_rope:
                pos = pos[keep]  # [B, K, 3]
        rope_pos = pos if self.use_rope else None
        for blk in self.blocks:
            x = blk(x, pos=rope_pos)
        return self.norm(x)

    def pooled(self, video: Tensor) -> Tensor:
        """Mean token embedding [B, D] of clips or images."""
        return self(video).mean(dim=1)
