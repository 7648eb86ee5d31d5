"""Recorded video-action episodes for the planning baselines (BC, the pixel world model).

Both baselines train on the same split of the same dataset the latent world model learns
from, so they load it the same way: decoded into memory, padded to the longest episode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class ActionEpisodes:
    frames: Tensor  # uint8 [E, T, H, W, 3], padded past each episode's length
    actions: Tensor  # float [E, T-1, d_a]: actions[e, t] leads from frame t to frame t+1
    lengths: Tensor  # [E] frames per episode

    @property
    def img_size(self) -> int:
        return int(self.frames.shape[2])

    @property
    def action_dim(self) -> int:
        return int(self.actions.shape[-1])

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def transitions(self) -> tuple[Tensor, Tensor, Tensor]:
        """Every real (frame_t, a_t, frame_t+1) of every episode, padding excluded."""
        t = torch.arange(self.frames.shape[1] - 1)
        ep, step = torch.nonzero(t[None] < (self.lengths[:, None] - 1), as_tuple=True)
        return self.frames[ep, step], self.actions[ep, step], self.frames[ep, step + 1]


def load_action_episodes(dataset: str, split: str = "train") -> ActionEpisodes:
    """A dataset split on the CPU; a dataset recorded without actions is refused."""
    from vjepa2.train.sources import DatasetSource

    src = DatasetSource(dataset, split, torch.device("cpu"))
    if src.actions is None:
        raise ValueError(f"{dataset}: split {split!r} has no actions to learn from")
    return ActionEpisodes(src.frames, src.actions, src.lengths.cpu())
