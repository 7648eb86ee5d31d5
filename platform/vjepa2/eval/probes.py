"""Understanding probes (seed 8.1): linear and attentive probes on frozen encoder features.

The task is the direction of motion in TwoRoom: each clip shows the agent moving at constant
velocity in one of eight compass directions, and the probe names the direction (label 0..7:
E, NE, N, NW, W, SW, S, SE; north is up, -y in the image). Start states are drawn
independently of the label, from the part of each room where no direction reaches a wall
or the border within the clip, so every move is unblocked and a single frame says nothing
about the label: only the change over time does.

``run_probes`` freezes each encoder (eval mode, ``no_grad``), extracts its token features on
a train and a test split made with different seeds, and trains both probes on them:

* ``LinearProbe``: a linear layer on the mean-pooled, standardised tokens (V-JEPA's linear
  protocol).
* ``AttentiveProbe``: learned query tokens cross-attending over all tokens, then an MLP and a
  linear head (V-JEPA's attentive pooler); it can weigh positions and times differently.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import Tensor, nn
from tqdm.auto import tqdm

from vjepa2.config.components import EncoderConfig, _check
from vjepa2.data.transforms import normalize_video, resize_square
from vjepa2.envs import make_env
from vjepa2.envs.tworoom import TwoRoomConfig
from vjepa2.models.blocks import CrossAttention
from vjepa2.models.encoder import VideoViT
from vjepa2.train.loop import resolve_device

DIRECTIONS = ("E", "NE", "N", "NW", "W", "SW", "S", "SE")
NUM_CLASSES = len(DIRECTIONS)
PROBES = ("linear", "attentive")
SPLITS = ("train", "test")
MIN_FRAMES = 4  # fewer frames leave too little motion to read a direction from
# The drawn disc keeps this far from the wall's faces, so no frame shows it touching the wall.
_WALL_PAD = 1.0


@dataclass
class ProbeConfig:
    env: Literal["tworoom"] = "tworoom"  # the clips set TwoRoom states directly
    # 256 x 8 training clips: with 64 per class the attentive probe overfits (train ~90%,
    # test ~35% on the demo encoder); at 256 it generalises.
    train_per_class: int = 256
    test_per_class: int = 64
    num_frames: int = 0  # frames per clip; 0 = the encoder's clip length
    speed: float = 0.5  # |action|; x the env's 2 px step = 1 px per frame
    seed: int = 0  # clips (train and test streams), probe init and shuffling
    encoder: Literal["target", "online"] = "target"  # which Phase-1 encoder to probe
    probes: tuple[str, ...] = PROBES
    epochs: int = 50
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    attn_heads: int = 4
    attn_queries: int = 1
    feature_batch: int = 32  # clips per encoder forward
    device: str = "auto"  # "auto" = cuda when available, else cpu

    def __post_init__(self) -> None:
        unknown = set(self.probes) - set(PROBES)
        _check(not unknown, f"unknown probes {sorted(unknown)}; valid: {list(PROBES)}")
        _check(bool(self.probes), "probes must name at least one probe")
        _check(self.train_per_class >= 1 and self.test_per_class >= 1, "per_class must be >= 1")
        _check(self.num_frames >= 0, "num_frames must be >= 0 (0: the encoder's)")
        _check(0 < self.speed <= 1, "speed must lie in (0, 1] (the action box)")
        _check(self.epochs >= 1 and self.batch_size >= 1, "epochs and batch_size must be >= 1")
        _check(self.lr > 0 and self.weight_decay >= 0, "lr must be > 0, weight_decay >= 0")
        _check(self.attn_heads >= 1 and self.attn_queries >= 1, "attn_heads/queries >= 1")
        _check(self.feature_batch >= 1, "feature_batch must be >= 1")


# --------------------------------------------------------------------------- the dataset


@dataclass
class MotionClips:
    frames: np.ndarray  # uint8 [N, T, H, W, 3]
    labels: np.ndarray  # int64 [N], index into DIRECTIONS
    positions: np.ndarray  # float64 [N, T, 2], the agent's (x, y) in arena px


def direction_vectors() -> np.ndarray:
    """Unit vectors [8, 2] in arena coordinates (x right, y down), counter-clockwise from E."""
    angles = np.arange(NUM_CLASSES) * (np.pi / 4)
    return np.stack([np.cos(angles), -np.sin(angles)], axis=1)


def start_boxes(env_cfg: TwoRoomConfig, travel: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per room, the box of starts from which a straight move of ``travel`` px in any
    direction stays inside the arena and clear of the wall (so it is never blocked).

    One box for every label is what keeps the start independent of the direction; boxes
    that depended on the direction would let the first frame give the label away.
    """
    lo_y, hi_y = env_cfg.margin + travel, env_cfg.size - env_cfg.margin - travel
    face = env_cfg.wall_half_width + env_cfg.agent_radius + _WALL_PAD
    rooms = [
        (env_cfg.margin + travel, env_cfg.wall_x - face - travel),
        (env_cfg.wall_x + face + travel, env_cfg.size - env_cfg.margin - travel),
    ]
    if lo_y >= hi_y or any(lo >= hi for lo, hi in rooms):
        raise ValueError(
            f"a {travel:.1f} px move does not fit inside a TwoRoom room in every direction; "
            "lower speed or num_frames"
        )
    return [(np.array([lo, lo_y]), np.array([hi, hi_y])) for lo, hi in rooms]


def clip_frames(cfg: ProbeConfig, enc: EncoderConfig) -> int:
    """Frames per clip for ``enc``, checked against its tubelet and the room size."""
    t = cfg.num_frames or enc.num_frames
    if t < MIN_FRAMES or t % enc.tubelet_size:
        raise ValueError(
            f"clips need >= {MIN_FRAMES} frames and a multiple of tubelet_size "
            f"{enc.tubelet_size}, got num_frames={t}"
        )
    env_cfg = TwoRoomConfig()
    start_boxes(env_cfg, cfg.speed * env_cfg.step_size * (t - 1))
    return t


def make_motion_clips(
    per_class: int,
    num_frames: int,
    *,
    seed: int,
    split: str = "train",
    speed: float = 0.5,
    img_size: int = 64,
    progress: bool = False,
) -> MotionClips:
    """``per_class`` clips of each direction, in shuffled order, deterministic by (seed, split).

    The split is part of the random stream's key, so train and test never share clips.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {list(SPLITS)}")
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    env = make_env("tworoom")
    env_cfg = env.config
    boxes = start_boxes(env_cfg, speed * env_cfg.step_size * (num_frames - 1))
    n = per_class * NUM_CLASSES
    # Starts (room, position, door) first, the labels as a separate permutation: the two
    # are independent by construction.
    rooms = rng.integers(len(boxes), size=n)
    starts = np.stack([rng.uniform(*boxes[r]) for r in rooms])
    lo, hi = env_cfg.door_y_range
    doors = rng.integers(int(lo), int(hi) + 1, size=n).astype(float)
    if not env_cfg.random_door:
        doors[:] = env_cfg.door_y
    labels = rng.permutation(np.repeat(np.arange(NUM_CLASSES), per_class))
    actions = speed * direction_vectors()[labels]

    frames = np.empty((n, num_frames, img_size, img_size, 3), np.uint8)
    positions = np.empty((n, num_frames, 2))
    for i in tqdm(range(n), desc=f"clips ({split})", disable=not progress, leave=False):
        x, y = starts[i]
        frame, info = env.reset(options={"state": np.array([x, y, x, y, doors[i], 0.0])})
        for t in range(num_frames):
            if t:
                frame, _, _, _, info = env.step(actions[i])
            frames[i, t] = resize_square(frame, img_size)
            positions[i, t] = info["pos"]
    env.close()
    return MotionClips(frames, labels.astype(np.int64), positions)


# --------------------------------------------------------------------------- features


@torch.no_grad()
def extract_features(
    encoder: VideoViT,
    frames: np.ndarray,
    *,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> Tensor:
    """Frozen token features float32 [N, L, D] (on CPU) of uint8 clips [N, T, H, W, 3].

    The encoder is moved to ``device`` and put in eval mode for the pass (its previous mode
    is restored), so dropout or drop-path never perturb the features.
    """
    was_training = encoder.training
    encoder.to(device).eval()
    out = []
    try:
        for i in tqdm(
            range(0, len(frames), batch_size), desc="features", disable=not progress, leave=False
        ):
            clip = torch.from_numpy(frames[i : i + batch_size]).to(device)
            out.append(encoder(normalize_video(clip)).float().cpu())
    finally:
        encoder.train(was_training)
    return torch.cat(out)


# --------------------------------------------------------------------------- probes


class Standardize(nn.Module):
    """Per-feature ``(x - mean) / std`` with statistics fitted once on the training features.

    A fixed affine map, so it adds no capacity; it only conditions the problem. Frozen
    features can sit on a large constant offset with small variations (a briefly pretrained
    encoder's final LayerNorm output does): without this, one learning rate does not fit
    every encoder, and the attentive probe stays at chance on both a random and a
    pretrained encoder.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, x: Tensor) -> None:
        flat = x.reshape(-1, x.shape[-1])
        self.mean.copy_(flat.mean(0))
        self.std.copy_(flat.std(0).clamp_min(1e-6))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class LinearProbe(nn.Module):
    """A linear layer on mean-pooled tokens, standardised with the training set's statistics."""

    def __init__(self, dim: int, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.standardize = Standardize(dim)
        self.head = nn.Linear(dim, num_classes)

    @staticmethod
    def pool(tokens: Tensor) -> Tensor:
        return tokens.mean(dim=1) if tokens.dim() == 3 else tokens

    def fit_stats(self, tokens: Tensor) -> None:
        self.standardize.fit(self.pool(tokens))

    def forward(self, tokens: Tensor) -> Tensor:
        return self.head(self.standardize(self.pool(tokens)))


class AttentiveProbe(nn.Module):
    """V-JEPA's attentive pooler + linear classifier: ``num_queries`` learned queries
    cross-attend over the (standardised, then layer-normed) tokens, an MLP refines them, a
    linear head classifies their mean."""

    def __init__(
        self,
        dim: int,
        num_classes: int = NUM_CLASSES,
        num_heads: int = 4,
        num_queries: int = 1,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"feature width {dim} must divide by attn_heads {num_heads}")
        self.standardize = Standardize(dim)
        self.queries = nn.Parameter(torch.zeros(1, num_queries, dim))
        nn.init.trunc_normal_(self.queries, std=0.02)
        self.norm_tokens = nn.LayerNorm(dim, eps=1e-6)
        self.attn = CrossAttention(dim, num_heads)
        self.norm_mlp = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.head = nn.Linear(dim, num_classes)

    def fit_stats(self, tokens: Tensor) -> None:
        self.standardize.fit(tokens)  # over samples and tokens: one map for every position

    def forward(self, tokens: Tensor) -> Tensor:
        q = self.queries.expand(tokens.shape[0], -1, -1)
        q = q + self.attn(q, self.norm_tokens(self.standardize(tokens)))
        q = q + self.mlp(self.norm_mlp(q))
        return self.head(q.mean(dim=1))


def build_probe(name: str, train_x: Tensor, cfg: ProbeConfig) -> nn.Module:
    """A freshly initialised probe, the same for the same seed whatever ran before."""
    if name not in PROBES:
        raise ValueError(f"unknown probe {name!r}; valid: {list(PROBES)}")
    dim = train_x.shape[-1]
    # A private RNG state: the probe's init depends on cfg.seed only, and the caller's
    # global stream is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        if name == "linear":
            probe: LinearProbe | AttentiveProbe = LinearProbe(dim)
        else:
            probe = AttentiveProbe(dim, num_heads=cfg.attn_heads, num_queries=cfg.attn_queries)
    probe.fit_stats(train_x)
    return probe


def train_probe(
    probe: nn.Module,
    x: Tensor,
    y: Tensor,
    cfg: ProbeConfig,
    *,
    device: torch.device | str = "cpu",
    progress: bool = False,
    desc: str = "probe",
) -> nn.Module:
    """AdamW + cross-entropy for ``cfg.epochs`` epochs of shuffled mini-batches (seeded)."""
    probe.to(device).train()
    # foreach: on CPU the default per-tensor update loop costs more than a small probe's step.
    opt = torch.optim.AdamW(
        probe.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    x, y = x.to(device), y.to(device)
    for _ in tqdm(range(cfg.epochs), desc=desc, disable=not progress, leave=False):
        order = torch.randperm(len(x), generator=gen).to(device)
        for idx in order.split(cfg.batch_size):
            loss = F.cross_entropy(probe(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return probe.eval()


@torch.no_grad()
def accuracy(probe: nn.Module, x: Tensor, y: Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``probe`` on features ``x`` [N, ...] with labels ``y`` [N]."""
    probe.eval()
    device = next(probe.parameters()).device
    correct = 0
    for i in range(0, len(x), batch_size):
        logits = probe(x[i : i + batch_size].to(device))
        correct += int((logits.argmax(-1).cpu() == y[i : i + batch_size]).sum())
    return correct / len(x)


def probe_features(
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    cfg: ProbeConfig,
    *,
    device: torch.device | str = "cpu",
    progress: bool = False,
    tag: str = "",
) -> list[dict]:
    """Train each of ``cfg.probes`` on (features, labels) ``train``; top-1 on both splits."""
    rows = []
    for name in cfg.probes:
        t0 = time.perf_counter()
        probe = build_probe(name, train[0], cfg)
        desc = f"{tag} {name}".strip()
        train_probe(probe, *train, cfg, device=device, progress=progress, desc=desc)
        rows.append(
            {
                "probe": name,
                "top1": accuracy(probe, *test),
                "train_top1": accuracy(probe, *train),
                "chance": 1.0 / NUM_CLASSES,
                "train_clips": len(train[1]),
                "test_clips": len(test[1]),
                "seconds": time.perf_counter() - t0,
            }
        )
    return rows


def random_encoder(cfg: EncoderConfig, seed: int) -> VideoViT:
    """A randomly initialised encoder, the same for the same seed (the "no Phase 1" row)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return VideoViT(cfg)


def run_probes(
    encoders: dict[str, VideoViT], cfg: ProbeConfig, *, progress: bool = False
) -> list[dict]:
    """Both probes on every encoder's frozen features; one row per (encoder, probe).

    Encoders with the same clip length and frame size see the very same clips.
    """
    device = resolve_device(cfg.device)
    clips: dict[tuple[int, int], dict[str, MotionClips]] = {}
    rows = []
    for enc_name, encoder in encoders.items():
        t = clip_frames(cfg, encoder.cfg)
        key = (t, encoder.cfg.img_size)
        if key not in clips:
            per_class = {"train": cfg.train_per_class, "test": cfg.test_per_class}
            clips[key] = {
                split: make_motion_clips(
                    per_class[split],
                    t,
                    seed=cfg.seed,
                    split=split,
                    speed=cfg.speed,
                    img_size=encoder.cfg.img_size,
                    progress=progress,
                )
                for split in SPLITS
            }
        data = {}
        for split, c in clips[key].items():
            x = extract_features(
                encoder, c.frames, batch_size=cfg.feature_batch, device=device, progress=progress
            )
            data[split] = (x, torch.from_numpy(c.labels))
        for row in probe_features(
            data["train"], data["test"], cfg, device=device, progress=progress, tag=enc_name
        ):
            rows.append({"encoder": enc_name, **row})
    return rows


def markdown_table(rows: Sequence[dict]) -> str:
    """One line per (encoder, probe), then chance (1/8), as top-1 percentages."""
    lines = [
        "| encoder | probe | test top-1 | train top-1 |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['encoder']} | {r['probe']} | {r['top1']:.1%} | {r['train_top1']:.1%} |")
    chance = 1.0 / NUM_CLASSES
    lines.append(f"| chance | - | {chance:.1%} | {chance:.1%} |")
    return "\n".join(lines)
