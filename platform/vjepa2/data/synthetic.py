"""Moving-shape videos made in memory, with the actions that steered them.

Shape 0 is the "agent": its position follows ``pos += max_speed * a_t`` (clipped to the frame),
so the actions fully explain its motion. The other shapes drift at constant velocity and bounce
off the borders, giving the encoder motion it must model without an action. Deterministic by
seed. Used by the tiny preset, the unit tests and the laptop demo; real environments live in
``vjepa2.envs``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_PALETTE = np.array(
    [[230, 60, 60], [60, 200, 90], [70, 110, 240], [240, 200, 50], [200, 80, 220]], np.uint8
)


@dataclass
class SyntheticVideos:
    frames: np.ndarray  # uint8 [n, T, H, W, 3]
    actions: np.ndarray  # float32 [n, T-1, 2], in [-1, 1]
    states: np.ndarray  # float32 [n, T, 2]: the agent's (y, x) centre in pixels


def moving_shapes(
    num_videos: int,
    num_frames: int,
    size: int,
    *,
    num_shapes: int = 2,
    max_speed: float = 3.0,
    seed: int = 0,
) -> SyntheticVideos:
    if num_videos < 1 or num_frames < 2 or size < 8 or num_shapes < 1:
        raise ValueError(
            "moving_shapes needs num_videos >= 1, num_frames >= 2, size >= 8, num_shapes >= 1"
        )
    rng = np.random.default_rng(seed)
    half = max(size // 10, 2)  # half side of each square
    lo, hi = float(half), float(size - 1 - half)
    n, t, k = num_videos, num_frames, num_shapes

    # Smoothly varying actions (a random walk, clipped) so motion is coherent across frames.
    steps = rng.normal(0.0, 0.35, size=(n, t - 1, 2))
    actions = np.clip(np.cumsum(steps, axis=1) * 0.5, -1.0, 1.0).astype(np.float32)

    pos = np.empty((n, t, k, 2), np.float64)
    pos[:, 0] = rng.uniform(lo, hi, size=(n, k, 2))
    vel = rng.uniform(-max_speed, max_speed, size=(n, k, 2))
    vel[:, 0] = 0.0
    for i in range(1, t):
        nxt = pos[:, i - 1] + vel
        nxt[:, 0] = pos[:, i - 1, 0] + max_speed * actions[:, i - 1]
        # Drifting shapes bounce: reflect position and velocity at the borders.
        over, under = nxt > hi, nxt < lo
        nxt = np.where(over, 2 * hi - nxt, np.where(under, 2 * lo - nxt, nxt))
        vel = np.where(over | under, -vel, vel)
        pos[:, i] = np.clip(nxt, lo, hi)

    colors = _PALETTE[rng.permuted(np.tile(np.arange(len(_PALETTE)), (n, 1)), axis=1)[:, :k]]
    frames = np.full((n, t, size, size, 3), 16, np.uint8)
    grid = np.arange(size, dtype=np.float64)
    for j in range(k - 1, -1, -1):  # draw the agent last so it stays visible on top
        cy = pos[:, :, j, 0, None]
        cx = pos[:, :, j, 1, None]
        in_y = np.abs(grid[None, None, :] - cy) <= half  # [n, t, H]
        in_x = np.abs(grid[None, None, :] - cx) <= half  # [n, t, W]
        inside = in_y[:, :, :, None] & in_x[:, :, None, :]
        frames = np.where(inside[..., None], colors[:, None, None, None, j], frames)
    return SyntheticVideos(frames, actions, pos[:, :, 0].astype(np.float32))
