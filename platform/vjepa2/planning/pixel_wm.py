"""A pixel-space world model: the seed's latent-vs-pixel planning baseline.

A small conv U-Net predicts the next frame from the current frame and the action. The
action enters by FiLM at every decoder level (a per-channel scale and shift), and the net
predicts a change added back onto the input frame, so an untrained model is exactly the
copy-the-frame baseline and training only has to learn what moves. Its state is the
normalised frame itself (``encode`` is a normalisation), so the same CEM planner scores
candidates by the L2 distance of the predicted final frame to the goal frame: what a
planner without a learned representation can do, at the FLOPs a full-resolution decoder costs
per rollout step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from vjepa2.data.transforms import normalize_frames
from vjepa2.planning.data import load_action_episodes
from vjepa2.train.checkpoint import load_checkpoint, load_state_strict, save_checkpoint


@dataclass
class PixelWMConfig:
    img_size: int = 64  # three stride-2 levels: a multiple of 8
    action_dim: int = 2
    # Channels at full resolution; 2x, 4x, 4x at 1/2, 1/4, 1/8. At 16 the model has about
    # the tiny latent dynamics model's parameters (237k vs 240k): the comparison is at equal
    # size, and the ~100x FLOPs per step are what working on pixels costs.
    width: int = 16
    action_hidden: int = 64
    # ~0.25 s per step on one CPU core at width 16: about 4 minutes of training.
    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.img_size < 8 or self.img_size % 8:
            raise ValueError(f"pixel_wm img_size must be a multiple of 8, got {self.img_size}")
        if min(self.action_dim, self.width, self.action_hidden, self.batch_size) < 1:
            raise ValueError("pixel_wm action_dim, width, action_hidden, batch_size must be >= 1")
        if self.steps < 0 or self.lr <= 0:
            raise ValueError("pixel_wm steps must be >= 0 and lr > 0")


class FiLM(nn.Module):
    """x * (1 + scale(a)) + shift(a); zero-initialised, so it starts as the identity."""

    def __init__(self, hidden: int, channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor, a: Tensor) -> Tensor:
        scale, shift = self.proj(a)[:, :, None, None].chunk(2, dim=1)
        return x * (1 + scale) + shift


class PixelWorldModel(nn.Module):
    def __init__(self, cfg: PixelWMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        chans = (w, 2 * w, 4 * w, 4 * w)  # full resolution, then 1/2, 1/4, 1/8
        self.stem = nn.Conv2d(3, w, 3, padding=1)
        self.down = nn.ModuleList(
            nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)
            for c_in, c_out in zip(chans[:-1], chans[1:], strict=True)
        )
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)
            for c_in, c_out in zip(chans[:0:-1], chans[-2::-1], strict=True)
        )
        self.action = nn.Sequential(nn.Linear(cfg.action_dim, cfg.action_hidden), nn.GELU())
        # The bottleneck, then each decoder level: the action shapes every scale it draws at.
        self.film = nn.ModuleList(FiLM(cfg.action_hidden, c) for c in chans[::-1])
        self.head = nn.Conv2d(w, 3, 3, padding=1)
        nn.init.zeros_(self.head.weight)  # no change at init: the copy baseline
        nn.init.zeros_(self.head.bias)
        self.act = nn.GELU()

    @property
    def img_size(self) -> int:
        return self.cfg.img_size

    @property
    def action_dim(self) -> int:
        return self.cfg.action_dim

    def forward(self, frame: Tensor, action: Tensor) -> Tensor:
        """Normalised frames [B, 3, H, W] and actions [B, d_a] -> next frames [B, 3, H, W]."""
        a = self.action(action.to(frame.dtype))
        h = self.act(self.stem(frame))
        skips = [h]
        for conv in self.down:
            h = self.act(conv(h))
            skips.append(h)
        h = self.film[0](h, a)
        for up, film, skip in zip(self.up, self.film[1:], skips[-2::-1], strict=True):
            h = self.act(film(up(h) + skip, a))
        return frame + self.head(h)

    @torch.no_grad()
    def encode(self, frames: Tensor) -> Tensor:
        """The planning state is the normalised frame: uint8 [..., H, W, 3] are normalised,
        float [..., 3, H, W] are taken as normalised already (what PlannerAgent passes)."""
        x = normalize_frames(frames) if frames.dtype == torch.uint8 else frames
        if tuple(x.shape[-3:]) != (3, self.img_size, self.img_size):
            raise ValueError(
                f"pixel_wm takes 3x{self.img_size}x{self.img_size} frames, got {tuple(x.shape)}"
            )
        return x

    def step(self, state: Tensor, action: Tensor) -> Tensor:
        return self(state, action)


def next_frame_loss(
    model: PixelWorldModel, frames: Tensor, actions: Tensor, next_frames: Tensor
) -> Tensor:
    """Mean squared error in normalised pixel space, on uint8 [N, H, W, 3] frames."""
    pred = model(normalize_frames(frames), actions)
    return (pred - normalize_frames(next_frames)).pow(2).mean()


def copy_frame_loss(frames: Tensor, next_frames: Tensor) -> Tensor:
    """The same error for predicting no change: what the model has to beat."""
    return (normalize_frames(frames) - normalize_frames(next_frames)).pow(2).mean()


def train_pixel_wm(
    frames: Tensor,
    actions: Tensor,
    next_frames: Tensor,
    cfg: PixelWMConfig,
    *,
    progress: bool = False,
) -> PixelWorldModel:
    """Fit on transitions: uint8 frames [N, H, W, 3], actions [N, d_a], uint8 next frames.

    Deterministic given ``cfg.seed``: the init runs under a forked RNG (the caller's global
    generator is left alone) and batches come from a seeded generator.
    """
    n = frames.shape[0]
    want = (cfg.img_size, cfg.img_size, 3)
    if tuple(frames.shape[1:]) != want or next_frames.shape != frames.shape:
        raise ValueError(
            f"expected frames and next_frames [N, {cfg.img_size}, {cfg.img_size}, 3], got "
            f"{tuple(frames.shape)} and {tuple(next_frames.shape)}"
        )
    if tuple(actions.shape) != (n, cfg.action_dim):
        raise ValueError(f"expected actions [{n}, {cfg.action_dim}], got {tuple(actions.shape)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = PixelWorldModel(cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(cfg.steps, 1))
    model.train()
    steps = range(cfg.steps)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="pixel_wm", unit="step")
    for _ in steps:
        i = torch.randint(n, (cfg.batch_size,), generator=gen)
        loss = next_frame_loss(model, frames[i], actions[i].float(), next_frames[i])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def save_pixel_wm(model: PixelWorldModel, path: str | Path) -> Path:
    """Atomic (temp file, fsync, rename) with the config inside: the path is enough to load."""
    return save_checkpoint(
        path, kind="pixel_wm", config=dict(model.cfg.__dict__), state={"model": model.state_dict()}
    )


def load_pixel_wm(path: str | Path, map_location: str | torch.device = "cpu") -> PixelWorldModel:
    """``weights_only=True`` load; a checkpoint of another kind or shape fails loudly."""
    payload = load_checkpoint(path, kind="pixel_wm", map_location=map_location)
    model = PixelWorldModel(PixelWMConfig(**payload["config"]))
    load_state_strict(model, payload["state"]["model"], "pixel world model")
    return model.eval()


def train_pixel_wm_on_dataset(
    dataset: str, path: str | Path, cfg: PixelWMConfig | None = None, *, progress: bool = False
) -> Path:
    """Fit on every transition of a dataset's train split, once: reused while ``path`` exists."""
    path = Path(path)
    if path.exists():
        return path
    data = load_action_episodes(dataset, "train")
    cfg = replace(cfg or PixelWMConfig(), img_size=data.img_size, action_dim=data.action_dim)
    frames, actions, next_frames = data.transitions()
    t0 = time.perf_counter()
    model = train_pixel_wm(frames, actions, next_frames, cfg, progress=progress)
    save_pixel_wm(model, path)
    print(
        f"pixel_wm: trained on {frames.shape[0]} transitions of {len(data)} episodes in "
        f"{time.perf_counter() - t0:.0f} s -> {path}"
    )
    return path
