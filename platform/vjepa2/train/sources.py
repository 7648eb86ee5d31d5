"""In-memory batch sources: clips (Phase 1) and windows (Phase 2), synthetic or from a dataset.

Batches are drawn with an explicit ``torch.Generator`` so a resumed run draws exactly the
batches the uninterrupted run would have.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from vjepa2.config.components import EncoderConfig
from vjepa2.config.jobs import DataConfig
from vjepa2.data.clips import episode_proprio
from vjepa2.data.synthetic import moving_shapes
from vjepa2.data.transforms import normalize_frames, normalize_video


def _decode_split(
    root: str, split: str, img_size: int | None, proprio_dims: tuple[int, ...]
) -> tuple[list[Tensor], list[Tensor], list[np.ndarray]]:
    """One dataset folder's split: frames uint8 [T, H, W, 3], actions float32 [T-1, d_a]
    (none when the dataset has none) and proprio [T, d_p] (none without ``proprio_dims``),
    one of each per episode."""
    from vjepa2.data.dataset import VideoActionDataset
    from vjepa2.data.splits import split_episodes

    ds = VideoActionDataset.open(root)
    episodes = split_episodes(ds.episodes).get(split, [])
    if not episodes:
        raise ValueError(f"{root}: no episodes in split {split!r}")
    videos, actions = [], []
    for ep in episodes:
        with ds.open_video(ep) as reader:
            frames = reader.get_frames(range(ep.num_frames))
        if img_size is not None and frames.shape[1:3] != (img_size, img_size):
            raise ValueError(
                f"{ds.video_path(ep)}: frames are {frames.shape[1:3]}, the encoder takes "
                f"{img_size}x{img_size}; stream it with the Ray job, which resizes"
            )
        videos.append(torch.from_numpy(frames))
        if ep.actions is not None:
            actions.append(torch.from_numpy(np.asarray(ep.actions, np.float32)))
    if len(actions) != len(videos):
        actions = []
    proprio = episode_proprio(episodes, proprio_dims, root) if proprio_dims else []
    return videos, actions, proprio


class SyntheticSource:
    """Moving-shape videos held as uint8 on ``device``; normalised per batch. Their true
    state (the agent's centre) is what ``proprio_dims`` selects from."""

    def __init__(
        self,
        data: DataConfig,
        encoder: EncoderConfig,
        num_frames: int,
        device: torch.device,
        *,
        proprio_dims: tuple[int, ...] = (),
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
        if proprio_dims and max(proprio_dims) >= self.states.shape[-1]:
            raise ValueError(
                f"synthetic data: state.proprio_dims {proprio_dims} index true states of "
                f"{self.states.shape[-1]} entries"
            )
        self.proprio_dims = list(proprio_dims)

    def __len__(self) -> int:
        return self.frames.shape[0]

    def clips(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor]:
        idx = torch.randint(len(self), (batch_size,), generator=generator)
        return (normalize_video(self.frames[idx.to(self.frames.device)]),)

    def windows(
        self, batch_size: int, horizon: int, generator: torch.Generator
    ) -> tuple[Tensor, ...]:
        """(frames [B, horizon+1, C, H, W], actions [B, horizon, d_a]) at random offsets,
        and proprio [B, horizon+1, d_p] with ``proprio_dims``."""
        n, t = self.frames.shape[:2]
        if horizon + 1 > t:
            raise ValueError(f"a window of {horizon} steps needs {horizon + 1} frames; have {t}")
        idx = torch.randint(n, (batch_size,), generator=generator)
        start = torch.randint(t - horizon, (batch_size,), generator=generator)
        offsets = start[:, None] + torch.arange(horizon + 1)[None, :]
        idx, offsets = idx.to(self.frames.device), offsets.to(self.frames.device)
        frames = self.frames[idx[:, None], offsets]
        actions = self.actions[idx[:, None], offsets[:, :-1]]
        if not self.proprio_dims:
            return normalize_frames(frames), actions
        proprio = self.states[idx[:, None], offsets][..., self.proprio_dims]
        return normalize_frames(frames), actions, proprio


class DatasetSource:
    """Video-action datasets' split decoded into memory: the laptop path without Ray.

    ``root`` is one dataset folder or several, whose episodes are pooled (each folder split on
    its own). Episodes are held as one uint8 tensor padded to the longest, with their lengths,
    so a batch is one gather. Clips and windows start uniformly in each episode's valid range.
    """

    def __init__(
        self,
        root: str | Sequence[str],
        split: str,
        device: torch.device,
        *,
        frame_stride: int = 1,
        frameskip: int = 1,
        img_size: int | None = None,
        proprio_dims: tuple[int, ...] = (),
    ) -> None:
        videos, actions, proprio = [], [], []
        for r in [root] if isinstance(root, str) else root:
            got = _decode_split(r, split, img_size, proprio_dims)
            if actions and got[1] and got[1][0].shape[1] != actions[0].shape[1]:
                raise ValueError(
                    f"{r}: {got[1][0].shape[1]}-dimensional actions, the first dataset's are "
                    f"{actions[0].shape[1]}-dimensional"
                )
            videos += got[0]
            actions += got[1]
            proprio += got[2]
        if not videos:
            raise ValueError("DatasetSource needs at least one dataset folder")
        if len({v.shape[1:] for v in videos}) > 1:
            raise ValueError(
                "the datasets' frames differ in size; the in-memory path needs one size "
                "(pass img_size to check it, or stream them with the Ray job, which resizes)"
            )
        t_max = max(v.shape[0] for v in videos)
        self.lengths = torch.tensor([v.shape[0] for v in videos], device=device)
        self.frames = torch.zeros((len(videos), t_max, *videos[0].shape[1:]), dtype=torch.uint8)
        for i, v in enumerate(videos):
            self.frames[i, : v.shape[0]] = v
        self.frames = self.frames.to(device)
        self.actions = None
        if len(actions) == len(videos):
            self.actions = torch.zeros((len(videos), t_max - 1, actions[0].shape[1]))
            for i, a in enumerate(actions):
                self.actions[i, : a.shape[0]] = a
            self.actions = self.actions.to(device)
        self.proprio: Tensor | None = None
        if proprio_dims:
            self.proprio = torch.zeros((len(videos), t_max, len(proprio_dims)))
            for i, p in enumerate(proprio):
                self.proprio[i, : len(p)] = torch.from_numpy(p)
            self.proprio = self.proprio.to(device)
        self.frame_stride, self.frameskip = frame_stride, frameskip

    def __len__(self) -> int:
        return self.frames.shape[0]

    def _starts(
        self, batch_size: int, span: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        idx = torch.randint(len(self), (batch_size,), generator=generator)
        room = (self.lengths.cpu()[idx] - span + 1).clamp_min(0)
        if bool((room == 0).any()):
            raise ValueError(f"an episode is shorter than one sample of {span} frames")
        start = (torch.rand(batch_size, generator=generator) * room).long()
        return idx, start

    def clips(self, batch_size: int, num_frames: int, generator: torch.Generator) -> tuple[Tensor]:
        span = (num_frames - 1) * self.frame_stride + 1
        idx, start = self._starts(batch_size, span, generator)
        t = start[:, None] + self.frame_stride * torch.arange(num_frames)[None]
        dev = self.frames.device
        return (normalize_video(self.frames[idx.to(dev)[:, None], t.to(dev)]),)

    def windows(
        self, batch_size: int, horizon: int, generator: torch.Generator
    ) -> tuple[Tensor, ...]:
        """Frames t, t+k, ..., t+Hk and the H actions between them, k raw actions each; with
        ``proprio_dims`` also the proprio at those frames [B, H+1, d_p]."""
        if self.actions is None:
            raise ValueError("Phase-2 windows need a dataset with actions")
        k = self.frameskip
        idx, start = self._starts(batch_size, horizon * k + 1, generator)
        t = start[:, None] + k * torch.arange(horizon + 1)[None]
        a_t = start[:, None] + torch.arange(horizon * k)[None]
        dev = self.frames.device
        idx, t, a_t = idx.to(dev), t.to(dev), a_t.to(dev)
        frames = self.frames[idx[:, None], t]
        actions = self.actions[idx[:, None], a_t].reshape(batch_size, horizon, -1)
        if self.proprio is None:
            return normalize_frames(frames), actions
        return normalize_frames(frames), actions, self.proprio[idx[:, None], t]
