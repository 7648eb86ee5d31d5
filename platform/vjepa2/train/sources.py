"""In-memory batch sources for the local loop: clips (Phase 1) and windows (Phase 2).

Batches are drawn with an explicit ``torch.Generator`` so a resumed run draws exactly the
batches the uninterrupted run would have.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vjepa2.config.components import EncoderConfig
from vjepa2.config.jobs import DataConfig
from vjepa2.data.synthetic import moving_shapes
from vjepa2.data.transforms import normalize_frames, normalize_video


class SyntheticSource:
    """Moving-shape videos held as uint8 on ``device``; normalised per batch."""

    def __init__(
        self, data: DataConfig, encoder: EncoderConfig, num_frames: int, device: torch.device
    ) -> None:
        syn = data.synthetic
        videos = moving_shapes(
            syn.num_videos,
            num_frames,
            encoder.img_size,
            num_shapes=syn.num_shapes,
            max_speed=syn.max_speed,
            seed=syn.seed,
        )
        self.frames = torch.from_numpy(videos.frames).to(device)
        self.actions = torch.from_numpy(videos.actions).to(device)
        self.states = torch.from_numpy(videos.states).to(device)

    def __len__(self) -> int:
        return self.frames.shape[0]

    def clips(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor]:
        idx = torch.randint(len(self), (batch_size,), generator=generator)
        return (normalize_video(self.frames[idx.to(self.frames.device)]),)

    def windows(
        self, batch_size: int, horizon: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """(frames [B, horizon+1, C, H, W], actions [B, horizon, d_a]) at random offsets."""
        n, t = self.frames.shape[:2]
        if horizon + 1 > t:
            raise ValueError(f"a window of {horizon} steps needs {horizon + 1} frames; have {t}")
        idx = torch.randint(n, (batch_size,), generator=generator)
        start = torch.randint(t - horizon, (batch_size,), generator=generator)
        offsets = start[:, None] + torch.arange(horizon + 1)[None, :]
        idx, offsets = idx.to(self.frames.device), offsets.to(self.frames.device)
        frames = self.frames[idx[:, None], offsets]
        actions = self.actions[idx[:, None], offsets[:, :-1]]
        return normalize_frames(frames), actions
