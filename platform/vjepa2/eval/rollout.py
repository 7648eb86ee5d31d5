"""Prediction quality: cosine similarity of rolled-out latents to encoded futures (seed 9.2).

Reported beside two baselines a world model must beat to be informative: "copy" (predict that
nothing changes, s_hat_{t+k} = s_t) and "mean" (predict the average state k steps ahead over
the episodes evaluated, whatever the start and the actions). Where states decorrelate within
k steps, copy's squared error is about twice the states' variance and the mean's about once,
so an error/copy near 0.5 says no more than the average frame.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vjepa2.diagnostics import collapse_stats
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
    proprio: Tensor | None = None,
    by_view: bool = False,
    other_actions: bool = False,
) -> dict[str, dict]:
    """frames [B, T, C, H, W] (normalised), actions [B, T-1, d_a] -> cos-sim per horizon.
    A model with proprioception also takes ``proprio`` [B, T, d_p]; its figures cover the
    frames' tokens only, so they compare with frames-only models.

    Returns ``{"model": {k: cos}, "copy": {k: cos}, "error_vs_copy": {k: ratio},
    "error_vs_mean": {k: ratio}}``; ``by_view`` adds ``"by_view": {view: {the same four}}``
    per part of the state (``WorldModel.state_views``: the plain
    grid, each blurred grid, the proprio token), to tell which part the model misses.

    ``other_actions`` adds ``"other_actions"``: the same four figures for rollouts from the
    same starts driven by another episode's actions (episode i gets episode i-1's), plus
    ``"error_vs_true_actions"``, their squared error over the true actions'. Near 1, the
    model predicts these futures without reading the actions (the data's policy makes them
    guessable from the state), which is no use to a planner asking what other actions do.
    """
    max_h = max(horizons)
    if frames.shape[1] < max_h + 1:
        raise ValueError(f"horizon {max_h} needs {max_h + 1} frames; got {frames.shape[1]}")
    if other_actions and frames.shape[0] < 2:
        raise ValueError("other_actions needs at least 2 episodes to swap actions between")
    was_training = model.training
    model.eval()
    seen = frames[:, : max_h + 1]
    p = None if proprio is None else proprio[:, : max_h + 1]
    states = model.encode(seen) if p is None else model.encode(seen, p)
    predicted = model.rollout(states[:, 0], actions[:, :max_h])
    swapped = model.rollout(states[:, 0], actions[:, :max_h].roll(1, 0)) if other_actions else None
    model.train(was_training)
    views = None
    if by_view:  # per part of the state; a pooled state [B, T, D] is one token
        s, pr = (
            (states, predicted)
            if states.dim() == 4
            else (states[:, :, None], predicted[:, :, None])
        )
        views = {n: _figures(s[:, :, t], pr[:, :, t], horizons) for n, t in model.state_views()}
    if p is not None:  # the proprio token is the last one
        states, predicted = states[..., :-1, :], predicted[..., :-1, :]
        swapped = None if swapped is None else swapped[..., :-1, :]
    out: dict[str, dict] = _figures(states, predicted, horizons)
    if views is not None:
        out["by_view"] = views
    if swapped is not None:
        other = _figures(states, swapped, horizons)
        other["error_vs_true_actions"] = {
            k: other["error_vs_copy"][k] / max(out["error_vs_copy"][k], 1e-12) for k in horizons
        }
        out["other_actions"] = other
    return out


def _figures(states: Tensor, predicted: Tensor, horizons: tuple[int, ...]) -> dict[str, dict]:
    """Encoded states [B, T, ...] and the rollout's predictions of states 1.. [B, T-1, ...]
    -> the cos-sims and squared-error ratios per horizon (``rollout_cosine``'s figures)."""

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
        # Against the average future (taken over these same episodes, so the baseline is, if
        # anything, flattered): < 1 means the model knows something about this episode's future.
        "error_vs_mean": {
            k: float(
                err(predicted[:, k - 1], k)
                / err(states[:, k].float().mean(0, keepdim=True), k).clamp_min(1e-12)
            )
            for k in horizons
        },
    }


def held_out_rollout_cosine(
    model: WorldModel,
    root: str,
    frameskip: int = 1,
    horizons: tuple[int, ...] = (1, 5, 10),
    split: str = "val",
    by_view: bool = False,
    other_actions: bool = False,
) -> tuple[dict[str, dict], int]:
    """``rollout_cosine`` on a dataset split's episodes at the model's frameskip, and how many
    episodes it used.

    A model trained with frameskip k steps k frames per action (its actions are k raw ones
    concatenated), so horizon h needs h*k + 1 frames. Horizons longer than the split's
    episodes allow are dropped and the longest that fits is added in their place (41-frame
    episodes at k=5 give 1, 5 and 8).
    ``by_view`` and ``other_actions`` add those figures, as in ``rollout_cosine``.
    """
    from vjepa2.data.dataset import VideoActionDataset

    if frameskip < 1:
        raise ValueError(f"frameskip must be >= 1, got {frameskip}")
    lengths = [
        ep.num_frames
        for ep in VideoActionDataset.open(root)
        if ep.split == split and ep.actions is not None
    ]
    if not lengths:
        raise ValueError(f"{root}: no {split!r} episode with actions")
    reach = (max(lengths) - 1) // frameskip
    if reach < 1:
        raise ValueError(f"{root}: {split!r} episodes are too short for frameskip {frameskip}")
    fits = tuple(h for h in horizons if h <= reach)
    if len(fits) < len(horizons) and reach not in fits:
        fits = (*fits, reach)
    frames, actions, states = load_episode_windows(
        root, split, num_frames=max(fits) + 1, frameskip=frameskip, true_states=True
    )
    proprio = None
    if model.proprio_dims:
        if states is None:
            raise ValueError(
                f"{root}: the model reads proprioception from true states, and "
                f"some {split!r} episodes have none"
            )
        proprio = model.proprio_of(states)
    figures = rollout_cosine(model, frames, actions, fits, proprio, by_view, other_actions)
    return figures, len(frames)


def load_episode_windows(
    root: str,
    split: str = "val",
    num_frames: int = 11,
    max_episodes: int = 64,
    frameskip: int = 1,
    true_states: bool = False,
):
    """The first ``num_frames`` frames (normalised, every ``frameskip``-th) and their actions
    of a split's episodes.

    Returns frames [B, num_frames, C, H, W] and actions [B, num_frames-1, d_a * frameskip]
    (each row the k raw actions between two kept frames, concatenated as in training);
    episodes too short are left out, and none at all is an error. With ``true_states`` a
    third tensor holds the kept frames' true states [B, num_frames, S], or is None when an
    episode lacks them.
    """
    from vjepa2.data.clips import window_actions
    from vjepa2.data.dataset import VideoActionDataset
    from vjepa2.data.transforms import normalize_frames

    ds = VideoActionDataset.open(root)
    span = (num_frames - 1) * frameskip + 1
    frames, actions, states = [], [], []
    for ep in ds:
        if ep.split != split or ep.num_frames < span or ep.actions is None:
            continue
        with ds.open_video(ep) as reader:
            frames.append(torch.from_numpy(reader.get_frames(range(0, span, frameskip))))
        actions.append(torch.from_numpy(window_actions(ep.actions, 0, num_frames - 1, frameskip)))
        if ep.states is not None:
            states.append(torch.from_numpy(np.asarray(ep.states[:span:frameskip], np.float32)))
        if len(frames) == max_episodes:
            break
    if not frames:
        raise ValueError(f"{root}: no {split!r} episode has {span} frames")
    out = normalize_frames(torch.stack(frames)), torch.stack(actions)
    if not true_states:
        return out
    return (*out, torch.stack(states) if len(states) == len(frames) else None)


@torch.no_grad()
def encoder_spread(model: WorldModel, frames: Tensor) -> dict[str, float]:
    """``collapse_stats`` of the model's encoder tokens on plain frames [..., C, H, W]
    (normalised; ``load_episode_windows`` gives a split's): how far the representation the
    world model stands on is from collapse (the seed's no-EMA ablation "collapses"),
    whatever view of it the state then takes (blurred, pooled, standardised)."""
    was_training = model.training
    model.eval()
    tokens = model.encoder(frames.reshape(-1, *frames.shape[-3:]))
    model.train(was_training)
    return collapse_stats(tokens)
