"""Goal-conditioned behaviour cloning: the seed's BC baseline (table 9.3).

A small conv net reads the current frame and the goal frame (stacked on channels) and
regresses the logged action. Training pairs come from the same video-action dataset the world
model learns from: (x_t, x_{t+k}) -> a_t with k drawn in [1, max_offset], hindsight-relabelled
goals, so the policy learns to head for frames the data actually reached.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from vjepa2.data.transforms import normalize_frames, resize_square
from vjepa2.planning.data import load_action_episodes
from vjepa2.train.checkpoint import load_checkpoint, load_state_strict, save_checkpoint


@dataclass
class BCConfig:
    img_size: int = 64
    action_dim: int = 2
    width: int = 32
    steps: int = 1500
    batch_size: int = 64
    lr: float = 1e-3
    max_offset: int = 25  # hindsight goals up to this many steps ahead
    seed: int = 0


class GoalConditionedPolicy(nn.Module):
    def __init__(self, cfg: BCConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        layers: list[nn.Module] = []
        c_in, size = 6, cfg.img_size
        for c_out in (w, 2 * w, 2 * w, 4 * w):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.GELU()]
            c_in, size = c_out, size // 2
        self.conv = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c_in * size * size, 256),
            nn.GELU(),
            nn.Linear(256, cfg.action_dim),
        )

    def forward(self, frame: Tensor, goal: Tensor) -> Tensor:
        """Normalised frames [B, 3, H, W] each -> actions [B, d_a] in [-1, 1]."""
        return torch.tanh(self.head(self.conv(torch.cat([frame, goal], dim=1))))


def train_bc(
    frames: Tensor, actions: Tensor, lengths: Tensor, cfg: BCConfig
) -> GoalConditionedPolicy:
    """frames uint8 [E, T, H, W, 3] (padded), actions [E, T-1, d_a], lengths [E]."""
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    policy = GoalConditionedPolicy(cfg)
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=1e-4)
    for _ in range(cfg.steps):
        ep = torch.randint(frames.shape[0], (cfg.batch_size,), generator=gen)
        n = lengths[ep]
        t = (torch.rand(cfg.batch_size, generator=gen) * (n - 1)).long()
        room = (n - 1 - t).clamp(max=cfg.max_offset)
        k = 1 + (torch.rand(cfg.batch_size, generator=gen) * room).long()
        x = normalize_frames(frames[ep, t])
        g = normalize_frames(frames[ep, (t + k).clamp(max=n - 1)])
        loss = (policy(x, g) - actions[ep, t]).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return policy.eval()


def save_bc(policy: GoalConditionedPolicy, path: str) -> None:
    cfg = policy.cfg
    save_checkpoint(
        path, kind="bc", config=dict(cfg.__dict__), state={"model": policy.state_dict()}
    )


def load_bc(path: str) -> GoalConditionedPolicy:
    payload = load_checkpoint(path, kind="bc")
    policy = GoalConditionedPolicy(BCConfig(**payload["config"]))
    load_state_strict(policy, payload["state"]["model"], "BC policy")
    return policy.eval()


def train_bc_on_dataset(dataset: str, path: str | Path, cfg: BCConfig | None = None) -> Path:
    """Behaviour cloning on a dataset's train split, once: reused while ``path`` exists."""
    path = Path(path)
    if path.exists():
        return path
    data = load_action_episodes(dataset, "train")
    cfg = replace(cfg or BCConfig(), img_size=data.img_size, action_dim=data.action_dim)
    t0 = time.perf_counter()
    save_bc(train_bc(data.frames, data.actions, data.lengths, cfg), str(path))
    print(f"bc: trained on {len(data)} episodes in {time.perf_counter() - t0:.0f} s -> {path}")
    return path


class BCAgent:
    name = "bc"

    def __init__(self, policy: GoalConditionedPolicy) -> None:
        self.policy = policy
        self._goal: Tensor | None = None

    def _prep(self, frame: np.ndarray) -> Tensor:
        x = torch.from_numpy(resize_square(frame, self.policy.cfg.img_size))
        return normalize_frames(x[None])

    def reset(self, episode) -> None:
        self._goal = self._prep(episode.goal_frame)

    @torch.no_grad()
    def act(self, frame: np.ndarray) -> np.ndarray:
        assert self._goal is not None, "reset(episode) first"
        return self.policy(self._prep(frame), self._goal).numpy()
