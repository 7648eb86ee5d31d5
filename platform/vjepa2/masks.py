"""Multi-block spatiotemporal masking (seed 4.5).

Each sample draws target blocks (a box over the (t, h, w) token grid) from every group in the
``MaskConfig``. The union of the blocks is the target set and the rest is the context. The
whole batch is drawn with tensor ops: blocks become per-axis interval tests broadcast over the
grid, so the cost does not grow with a Python loop over samples or blocks.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import torch
from torch import Tensor

from vjepa2.config.components import MaskBlockGroup, MaskConfig

# Rows below min_context are redrawn; a config that keeps failing after this many rounds
# leaves too little context to ever satisfy, and looping on would only hide that.
_MAX_REDRAWS = 50


@dataclass
class MaskBatch:
    """Per-row partition of the token grid into context and target indices.

    Indices are raster order over the (t, h, w) grid and each row is sorted ascending; every
    row has the same lengths so the batch stacks into dense tensors.
    """

    context_idx: Tensor  # long [B, Nc]
    target_idx: Tensor  # long [B, Nt]
    target_mask: Tensor  # bool [B, N], True = target

    @property
    def masked_fraction(self) -> Tensor:
        """Fraction of each row's tokens that are targets, float [B]."""
        return self.target_mask.float().mean(dim=1)


def _uniform(lo: float, hi: float, shape: tuple[int, ...], gen, device) -> Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=gen, device=device)


def _offsets(size: Tensor, extent: int, gen, device) -> Tensor:
    """Start positions uniform over the valid offsets [0, extent - size] for each block."""
    u = torch.rand(size.shape, generator=gen, device=device)
    return (u * (extent - size + 1)).floor().long().clamp_max(extent - size)


class MultiBlockMaskSampler:
    """Samples ``MaskBatch``es for one token grid ``(t, h, w)`` under a ``MaskConfig``.

    Block geometry follows the reference multi-block scheme: ``spatial_scale`` is the fraction
    of the h x w area, the block's height/width come from that area and the aspect ratio
    (height / width), and ``temporal_scale`` is the fraction of the t axis. Each block's start
    is uniform over the offsets that keep it inside the grid.

    Batching needs equal row lengths, so ``partition`` cuts every row's context to the batch
    minimum and moves the surplus to its targets. That minimum is a tail value of the context
    size distribution, so the masked fraction training sees grows with batch size (compare
    the ``*_batched`` entries of ``mask_statistics``). Two knobs narrow the gap:
    ``equalize_quantile`` redraws rows below that quantile of the batch's context sizes, and
    ``share_shapes`` draws block counts and sizes once per batch (positions stay per sample),
    as the reference repo does.
    """

    def __init__(
        self,
        cfg: MaskConfig,
        grid: tuple[int, int, int],
        *,
        equalize_quantile: float | None = None,
        share_shapes: bool | None = None,
    ) -> None:
        # The config is the source of truth; the keyword arguments override it (tests, sweeps).
        if equalize_quantile is None:
            equalize_quantile = cfg.equalize_quantile
        if share_shapes is None:
            share_shapes = cfg.share_shapes
        try:
            dims = tuple(operator.index(g) for g in grid)
        except TypeError:
            dims = ()
        if len(dims) != 3 or min(dims) < 1:
            raise ValueError(f"mask grid must be three positive ints (t, h, w), got {grid!r}")
        if not 0.0 <= equalize_quantile < 1.0:
            raise ValueError(f"equalize_quantile must be in [0, 1), got {equalize_quantile}")
        self.cfg = cfg
        self.grid: tuple[int, int, int] = dims  # type: ignore[assignment]
        self.num_tokens = math.prod(dims)
        self.equalize_quantile = equalize_quantile
        self.share_shapes = share_shapes
        if cfg.min_context >= self.num_tokens:
            raise ValueError(
                f"mask.min_context={cfg.min_context} leaves no targets on grid {self.grid} "
                f"({self.num_tokens} tokens)"
            )

    def __repr__(self) -> str:
        return f"MultiBlockMaskSampler(grid={self.grid}, groups={len(self.cfg.groups)})"

    def _group_union(self, g: MaskBlockGroup, b: int, gen, device) -> Tensor:
        """bool [b, t, h, w]: union of this group's blocks for each of b samples."""
        t, h, w = self.grid
        m_lo, m_hi = g.num_blocks
        shape = (b, m_hi)
        # Draw all m_hi blocks and disable the surplus, so every row consumes the same random
        # stream length and the batch stays a single tensor op.
        rows = 1 if self.share_shapes else b
        count = torch.randint(m_lo, m_hi + 1, (rows, 1), generator=gen, device=device)
        active = (torch.arange(m_hi, device=device) < count).expand(shape)

        area = _uniform(*g.spatial_scale, (rows, m_hi), gen, device) * (h * w)
        ar = _uniform(*g.aspect_ratio, (rows, m_hi), gen, device)
        bh = torch.sqrt(area * ar).round().long().clamp(1, h).expand(shape)
        bw = torch.sqrt(area / ar).round().long().clamp(1, w).expand(shape)
        bt = (_uniform(*g.temporal_scale, (rows, m_hi), gen, device) * t).round().long()
        bt = bt.clamp(1, t).expand(shape)

        t0 = _offsets(bt, t, gen, device)
        h0 = _offsets(bh, h, gen, device)
        w0 = _offsets(bw, w, gen, device)

        def inside(start: Tensor, size: Tensor, extent: int) -> Tensor:
            pos = torch.arange(extent, device=device)
            return (pos >= start[..., None]) & (pos < (start + size)[..., None])  # [b, m, n]

        in_t = inside(t0, bt, t) & active[..., None]
        in_h = inside(h0, bh, h)
        in_w = inside(w0, bw, w)
        blocks = in_t[..., :, None, None] & in_h[..., None, :, None] & in_w[..., None, None, :]
        return blocks.any(dim=1)

    def _union(self, b: int, gen, device) -> Tensor:
        """bool [b, N]: union of every group's blocks, flattened in raster order."""
        out = torch.zeros((b, *self.grid), dtype=torch.bool, device=device)
        for g in self.cfg.groups:
            out |= self._group_union(g, b, gen, device)
        return out.reshape(b, self.num_tokens)

    def _redraw_below(self, target: Tensor, floor: int, gen, device) -> bool:
        """Redraw, in place, the rows of ``target`` that keep fewer than ``floor`` context
        tokens; True once every row keeps at least ``floor``."""
        n = self.num_tokens
        for _ in range(_MAX_REDRAWS):
            short = (n - target.sum(dim=1)) < floor
            if not bool(short.any()):
                return True
            rows = short.nonzero().squeeze(1)
            target[rows] = self._union(rows.numel(), gen, device)
        return not bool(((n - target.sum(dim=1)) < floor).any())

    def draw_union(
        self, batch_size: int, generator: torch.Generator | None = None, device=None
    ) -> Tensor:
        """bool [B, N]: each sample's block union (True = target), before equalisation.

        Rows keeping fewer than ``cfg.min_context`` context tokens are redrawn (an error if
        that keeps failing). With ``equalize_quantile`` q > 0, rows below the batch's q-th
        quantile of context size are also redrawn (a soft goal, no error), so the batch
        minimum that ``partition`` equalises to is no longer an extreme tail.
        """
        if device is None:
            device = generator.device if generator is not None else torch.device("cpu")
        min_ctx = self.cfg.min_context
        target = self._union(batch_size, generator, device)
        if not self._redraw_below(target, min_ctx, generator, device):
            raise RuntimeError(
                f"mask sampler could not keep min_context={min_ctx} context tokens on grid "
                f"{self.grid} after {_MAX_REDRAWS} redraws; the blocks cover too much of the "
                "grid (lower the block counts/scales or min_context)"
            )
        if self.equalize_quantile > 0.0 and batch_size > 1:
            ctx = (self.num_tokens - target.sum(dim=1)).float()
            goal = int(torch.quantile(ctx, self.equalize_quantile).floor())
            self._redraw_below(target, max(goal, min_ctx), generator, device)
        return target

    def partition(self, target: Tensor, generator: torch.Generator | None = None) -> MaskBatch:
        """Equal-length context/target indices from per-row target masks bool [B, N].

        Every row keeps a random subset of its context of the smallest context size in the
        batch and the surplus joins its targets, so the two index sets still partition it.
        """
        b, n = target.shape
        n_ctx = int((n - target.sum(dim=1)).min())
        scores = torch.rand((b, n), generator=generator, device=target.device)
        scores = scores.masked_fill(target, 2.0)  # targets sort after every context token
        keep = scores.argsort(dim=1)[:, :n_ctx]
        target_mask = torch.ones((b, n), dtype=torch.bool, device=target.device)
        target_mask.scatter_(1, keep, False)
        # Boolean indexing walks rows in raster order, so each row comes out sorted.
        pos = torch.arange(n, device=target.device).expand(b, n)
        context_idx = pos[~target_mask].view(b, n_ctx)
        target_idx = pos[target_mask].view(b, n - n_ctx)
        return MaskBatch(context_idx, target_idx, target_mask)

    def sample(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> MaskBatch:
        """Draw ``batch_size`` masks; the same generator state gives the same masks.

        Random numbers are drawn on the generator's device (a generator only feeds tensors on
        its own device); the result is then moved to ``device``.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        out_device = torch.device(device) if device is not None else None
        if generator is not None:
            draw_device = generator.device
        else:
            draw_device = out_device or torch.device("cpu")
        batch = self.partition(self.draw_union(batch_size, generator, draw_device), generator)
        if out_device is not None and out_device != draw_device:
            batch = MaskBatch(
                batch.context_idx.to(out_device),
                batch.target_idx.to(out_device),
                batch.target_mask.to(out_device),
            )
        return batch


@torch.no_grad()
def mask_statistics(
    sampler: MultiBlockMaskSampler, num_samples: int, seed: int = 0, batch_size: int = 256
) -> dict[str, float | int]:
    """Masked-fraction and context-size statistics over ``num_samples`` masks.

    The main figures use each sample's own block union, before the batch equalisation that
    moves surplus context to the targets, so they describe the scheme independent of batch
    size; the ``*_batched`` entries are what training sees at ``batch_size``.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    gen = torch.Generator().manual_seed(seed)
    raw, batched = [], []
    for start in range(0, num_samples, batch_size):
        union = sampler.draw_union(min(batch_size, num_samples - start), gen)
        raw.append(union.float().mean(dim=1))
        batched.append(sampler.partition(union, gen).masked_fraction)
    frac, frac_b = torch.cat(raw), torch.cat(batched)
    n = sampler.num_tokens
    return {
        "num_samples": num_samples,
        "num_tokens": n,
        "mean_masked_fraction": frac.mean().item(),
        "std_masked_fraction": frac.std(unbiased=False).item(),
        "min_masked_fraction": frac.min().item(),
        "max_masked_fraction": frac.max().item(),
        "mean_context_size": ((1.0 - frac) * n).mean().item(),
        "mean_masked_fraction_batched": frac_b.mean().item(),
        "mean_context_size_batched": ((1.0 - frac_b) * n).mean().item(),
    }
