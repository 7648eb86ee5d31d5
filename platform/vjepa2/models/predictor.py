"""Narrow Phase-1 predictor p_psi (seed 4.3): context tokens + mask tokens -> target latents."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vjepa2.config.components import EncoderConfig, PredictorConfig
from vjepa2.models.blocks import Block, init_weights, rescale_residual_projections
from vjepa2.models.encoder import check_indices
from vjepa2.models.pos_embed import grid_positions, sincos_3d


class MaskedPredictor(nn.Module):
    """Predicts the encoder's embeddings at masked positions from the visible context.

    Context embeddings are projected D -> Dp; every target position gets a shared learnable
    mask token plus its position; the narrow transformer runs over both and the target part
    is projected back to D. Positions follow the encoder: sin-cos at width Dp, or 3-D RoPE.
    """

    def __init__(self, cfg: PredictorConfig, encoder: EncoderConfig) -> None:
        super().__init__()
        self.cfg, self.encoder_cfg = cfg, encoder
        dp = cfg.embed_dim
        self.use_rope = encoder.pos_embed == "rope"
        self.embed = nn.Linear(encoder.embed_dim, dp)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dp))
        rates = torch.linspace(0, cfg.drop_path, cfg.depth, device="cpu").tolist()
        self.blocks = nn.ModuleList(
            Block(dp, cfg.num_heads, cfg.mlp_ratio, drop_path=r, rope=self.use_rope) for r in rates
        )
        self.norm = nn.LayerNorm(dp, eps=1e-6)
        self.proj = nn.Linear(dp, encoder.embed_dim)
        self._pos_cache: dict[tuple, Tensor] = {}
        init_weights(self)
        rescale_residual_projections(self.blocks)
        # The mask token stays zero at init, as in the reference repo: a target starts as
        # its position alone.

    def positions(self, grid: tuple[int, int, int], device: torch.device) -> Tensor:
        key = (*grid, self.use_rope, str(device))
        if key not in self._pos_cache:
            if self.use_rope:
                self._pos_cache[key] = grid_positions(*grid, device=device)
            else:
                self._pos_cache[key] = sincos_3d(self.cfg.embed_dim, *grid, device=device)
        return self._pos_cache[key]

    def _check(
        self, context: Tensor, context_idx: Tensor, target_idx: Tensor, grid: tuple[int, int, int]
    ) -> tuple[Tensor, Tensor]:
        d = self.encoder_cfg.embed_dim
        if context.dim() != 3 or context.shape[-1] != d:
            raise ValueError(f"context must be [B, Nc, {d}], got {tuple(context.shape)}")
        if len(grid) != 3 or any(int(g) < 1 for g in grid):
            raise ValueError(f"grid must be three positive sizes (t, h, w), got {grid}")
        n = grid[0] * grid[1] * grid[2]
        b = context.shape[0]
        context_idx = check_indices(context_idx, b, n, "context_idx")
        target_idx = check_indices(target_idx, b, n, "target_idx")
        if context_idx.shape[1] != context.shape[1]:
            raise ValueError(
                f"context has {context.shape[1]} tokens but context_idx has "
                f"{context_idx.shape[1]} indices"
            )
        return context_idx, target_idx

    def forward(
        self,
        context: Tensor,
        context_idx: Tensor,
        target_idx: Tensor,
        grid: tuple[int, int, int],
    ) -> Tensor:
        """context [B, Nc, D] at context_idx [B, Nc] -> predictions [B, Nt, D] at target_idx."""
        context_idx, target_idx = self._check(context, context_idx, target_idx, grid)
        grid = (int(grid[0]), int(grid[1]), int(grid[2]))
        pos = self.positions(grid, context.device)
        ctx = self.embed(context)
        b, nt = target_idx.shape
        tgt = self.mask_token.to(ctx.dtype).expand(b, nt, -1)
        if self.use_rope:
            rope_pos = pos[torch.cat([context_idx, target_idx], dim=1)]  # [B, Nc + Nt, 3]
        else:
            ctx = ctx + pos[context_idx].to(ctx.dtype)
            tgt = tgt + pos[target_idx].to(ctx.dtype)
            rope_pos = None
        # Attention is permutation-equivariant, so the order context-then-targets is free.
        x = torch.cat([ctx, tgt], dim=1)
        for blk in self.blocks:
            x = blk(x, pos=rope_pos)
        return self.proj(self.norm(x[:, context.shape[1] :]))
