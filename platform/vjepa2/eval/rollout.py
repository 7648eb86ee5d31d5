"""Prediction quality: cosine similarity of rolled-out latents to encoded futures (seed 9.2).

Reported beside the "copy" baseline (predict that nothing changes, s_hat_{t+k} = s_t): a
world model is only informative where it beats that baseline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vjepa2.world_model import WorldModel


def cosine(a: Tensor, b: Tensor) -> Tensor:
    """Mean cosine over tokens (pooled states are one token): [B]."""
    if a.dim() == 2:
        a, b = a.unsqueeze(1), b.unsqueeze(1)
    return F.cosine_similarity(a.float(), b.float(), dim=-1).mean(dim=-1)


@torch.no_grad()
def rollout_cosine(
    model: WorldModel,
    frames: Tensor,
    actions: Tensor,
    horizons: tuple[int, ...] = (1, 5, 10),
) -> dict[str, dict[int, float]]:
    """frames [B, T, C, H, W] (normalised), actions [B, T-1, d_a] -> cos-sim per horizon.

    Returns ``{"model": {k: cos}, "copy": {k: cos}, "error_vs_copy": {k: ratio}}``.
    """
    max_h = max(horizons)
    if frames.shape[1] < max_h + 1:
        raise ValueError(f"horizon {max_h} needs {max_h + 1} frames; got {frames.shape[1]}")
    was_training = model.training
    model.eval()
    states = model.encode(frames[:, : max_h + 1])
    predicted = model.rollout(states[:, 0], actions[:, :max_h])
    model.train(was_training)

    def err(pred: Tensor, k: int) -> Tensor:
        return (pred.float() - states[:, k].float()).pow(2).sum()

    return {
        "model": {k: float(cosine(predicted[:, k - 1], states[:, k]).mean()) for k in horizons},
        "copy": {k: float(cosine(states[:, 0], states[:, k]).mean()) for k in horizons},
        # Squared error of the model relative to the copy baseline's: < 1 means the model
        # predicts the change, not only the (often dominant) static content.
        "error_vs_copy": {
            k: float(err(predicted[:, k - 1], k) / err(states[:, 0], k).clamp_min(1e-12))
            for k in horizons
        },
    }


def load_episode_windows(
    root: str, split: str = "val", num_frames: int = 11, max_episodes: int = 64
) -> tuple[Tensor, Tensor]:
    """The first ``num_frames`` frames (normalised) and their actions of a split's episodes.

    Returns frames [B, num_frames, C, H, W] and actions [B, num_frames-1, d_a]; episodes
    shorter than ``num_frames`` are left out, and none at all is an error.
    """
    from vjepa2.data.dataset import VideoActionDataset
    from vjepa2.data.transforms import normalize_frames

    ds = VideoActionDataset.open(root)
    frames, actions = [], []
    for ep in ds:
        if ep.split != split or ep.num_frames < num_frames or ep.actions is None:
            continue
        with ds.open_video(ep) as reader:
            frames.append(torch.from_numpy(reader.get_frames(range(num_frames))))
        actions.append(torch.from_numpy(ep.actions[: num_frames - 1]).float())
        if len(frames) == max_episodes:
            break
    if not frames:
        raise ValueError(f"{root}: no {split!r} episode has {num_frames} frames")
    return normalize_frames(torch.stack(frames)), torch.stack(actions)
