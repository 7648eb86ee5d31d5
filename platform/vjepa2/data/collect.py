"""Collecting video-action episodes from an environment into a dataset folder.

Episode ``i`` is a pure function of (config, ``i``): its env seed and policy generator come from
``episode_seed(seed, i)``, its split from ``i``, and each episode gets a fresh env. So any worker
may run any episode, a rerun skips the episodes already in ``episodes.parquet`` (resuming), and
the finished folder is the same however the work was divided or interrupted.

Workers return ``EncodedEpisode``s (the mp4 as bytes, a few KB, plus the arrays) rather than raw
frames: encoding costs ~10x a TwoRoom rollout, so it must run in parallel, and bytes are far
cheaper to ship than frames. ``EpisodeSink`` is the single writer on the driver side;
``collect_local`` drives it in-process, ``jobs/collect.py`` from Ray tasks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from vjepa2.config.base import ConfigError
from vjepa2.data.video import encode_video

CONFIG_FILE = "collect.json"
# Fields that shape the episodes; a resumed collection must match them (episodes may grow).
CONTENT_FIELDS = (
    "env",
    "env_kwargs",
    "policy",
    "policy_kwargs",
    "steps_per_episode",
    "img_size",
    "fps",
    "seed",
    "val_fraction",
    "crf",
)


@dataclass
class CollectConfig:
    """What to collect and where. ``steps_per_episode`` actions give ``steps + 1`` frames (fewer
    if a Gymnasium env terminates first)."""

    out: str  # dataset folder (local path or pyarrow filesystem URI)
    env: str = "tworoom"  # "tworoom", "pusht" or "gym:<env_id>"
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # the env config's fields
    policy: str = "default"  # see vjepa2.envs.policies.POLICY_NAMES
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    episodes: int = 100
    steps_per_episode: int = 100
    img_size: int = 64  # frames are img_size x img_size (H.264 needs it even)
    fps: int = 10
    seed: int = 0
    val_fraction: float = 0.1  # every 1/val_fraction-th episode, from episode 0, is "val"
    crf: int = 18
    workers: int = 0  # Ray tasks in flight; 0 = one per cluster CPU
    episodes_per_task: int = 0  # 0 = auto (a few tasks per worker, at most 16 episodes each)
    flush_every: int = 50  # rewrite episodes.parquet every this many new episodes

    def __post_init__(self) -> None:
        from vjepa2.envs.policies import POLICY_NAMES

        known_env = self.env in ("tworoom", "pusht") or (
            self.env.startswith("gym:") and len(self.env) > len("gym:")
        )
        _check(known_env, f"unknown env {self.env!r}; valid: tworoom, pusht, gym:<env_id>")
        _check(self.policy in POLICY_NAMES, f"unknown policy {self.policy!r}; {POLICY_NAMES}")
        _check(bool(self.out), "out (the dataset folder) must be set")
        _check(self.episodes >= 1, "episodes must be >= 1")
        _check(self.steps_per_episode >= 1, "steps_per_episode must be >= 1")
        _check(self.img_size >= 8 and self.img_size % 2 == 0, "img_size must be even and >= 8")
        _check(self.fps >= 1, "fps must be >= 1")
        _check(self.seed >= 0, "seed must be >= 0 (numpy SeedSequence entropy)")
        _check(0.0 <= self.val_fraction < 1.0, "val_fraction must be in [0, 1)")
        _check(0 <= self.crf <= 51, "crf must be in [0, 51]")
        _check(self.workers >= 0 and self.episodes_per_task >= 0, "workers, episodes_per_task >= 0")
        _check(self.flush_every >= 1, "flush_every must be >= 1")
        _check("render_size" not in self.env_kwargs, "set img_size, not env_kwargs.render_size")


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(f"collect: {msg}")


# --- one episode -------------------------------------------------------------------------


def episode_id(index: int) -> str:
    # Fixed width so that sorting ids sorts indices (up to a million episodes).
    return f"ep_{index:06d}"


def episode_seed(base_seed: int, index: int) -> np.random.SeedSequence:
    """The ``index``-th child of ``SeedSequence(base_seed)``, built without spawning the others."""
    return np.random.SeedSequence(base_seed, spawn_key=(index,))


def episode_split(index: int, val_fraction: float) -> str:
    """The split of episode ``index``: "val" for 0, ~1/f, ~2/f, ..., so that exactly
    ceil(n f) of the first n episodes are "val", for every n (a prefix is a fair sample)."""
    f = Fraction(val_fraction).limit_denominator(1_000_000)
    return "val" if math.ceil((index + 1) * f) > math.ceil(index * f) else "train"


def build_env(cfg: CollectConfig, render_size: int | None = None) -> Any:
    """The env that draws the episodes: tworoom and pusht at ``render_size`` (default: the
    dataset's img_size), other envs at their own size."""
    from vjepa2.envs import make_env

    if cfg.env in ("tworoom", "pusht"):
        return make_env(cfg.env, render_size=render_size or cfg.img_size, **cfg.env_kwargs)
    return make_env(cfg.env, **cfg.env_kwargs)


def check_env(cfg: CollectConfig) -> None:
    """Build the env and policy once and reset, so a bad name or kwarg fails here, clearly,
    before any file is written or task launched."""
    from vjepa2.envs import make_policy

    try:
        env = build_env(cfg)
        try:
            make_policy(cfg.policy, env, **cfg.policy_kwargs)
            env.reset(seed=0)
        finally:
            env.close()
    # Broad on purpose: gymnasium raises its own error types (unknown id, missing extra).
    except Exception as e:
        raise ConfigError(
            f"collect: cannot build env {cfg.env!r} with policy {cfg.policy!r}: "
            f"{type(e).__name__}: {e}"
        ) from e


def rollout_episode(
    cfg: CollectConfig, index: int, render_size: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames uint8 [T, S, S, 3], actions float32 [T-1, d_a], states float32 [T, d_s]).
    ``render_size`` draws tworoom's or pusht's frames at another size before the resize to
    img_size (``benchmarks/frame_gap.py``: what a mismatched evaluation shows a model)."""
    from vjepa2.data.transforms import resize_square  # (torch) only where frames are made
    from vjepa2.envs import make_policy

    env_ss, policy_ss = episode_seed(cfg.seed, index).spawn(2)
    env = build_env(cfg, render_size)
    try:
        policy = make_policy(cfg.policy, env, **cfg.policy_kwargs)
        frame, info = env.reset(seed=int(env_ss.generate_state(1)[0]))
        policy.reset(env, np.random.default_rng(policy_ss))
        frames, actions, states = [frame], [], [env.state_vector(info)]
        for _ in range(cfg.steps_per_episode):
            action = np.asarray(policy(frame, info), np.float32)
            frame, _, terminated, truncated, info = env.step(action)
            frames.append(frame)
            actions.append(action)
            states.append(env.state_vector(info))
            if terminated or truncated:
                break
    finally:
        env.close()
    return (
        np.stack([resize_square(f, cfg.img_size) for f in frames]),
        np.stack(actions).astype(np.float32),
        np.stack(states).astype(np.float32),
    )


@dataclass
class EncodedEpisode:
    """An episode ready to store: the mp4 bytes, its frame geometry, and its arrays."""

    episode_id: str
    split: str
    video: bytes
    num_frames: int
    height: int
    width: int
    actions: np.ndarray
    states: np.ndarray | None


def encode_episode(cfg: CollectConfig, index: int) -> EncodedEpisode:
    frames, actions, states = rollout_episode(cfg, index)
    video = encode_video(frames, cfg.fps, crf=cfg.crf)
    t, h, w, _ = frames.shape
    return EncodedEpisode(
        episode_id=episode_id(index),
        split=episode_split(index, cfg.val_fraction),
        video=video,
        num_frames=t,
        height=h,
        width=w,
        actions=actions,
        # Envs without a numeric state (some Gymnasium ones) store no states column.
        states=states if states.shape[1] else None,
    )


def encode_batch(cfg: CollectConfig, indices: list[int]) -> list[EncodedEpisode]:
    """One worker task's share; the unit ``jobs/collect.py`` wraps in ``ray.remote``."""
    return [encode_episode(cfg, i) for i in indices]


# --- the driver side ---------------------------------------------------------------------
