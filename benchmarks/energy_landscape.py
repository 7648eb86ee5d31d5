"""Does an encoder's latent distance follow the state? TwoRoom positions, PushT poses.

    .venv/bin/python benchmarks/energy_landscape.py --checkpoint runs/demo/pretrain/final.pt
    .venv/bin/python benchmarks/energy_landscape.py --env pusht --blur 0 \
        --checkpoint runs/exp/pusht_vicreg/pretrain/final.pt --out runs/bench/energy_pusht.json

CEM can only climb an energy that falls as the predicted state nears the goal. This renders
the TwoRoom agent at ``--positions`` random places (one door), encodes every frame with the
Phase-1 target encoder (and a randomly initialised one of the same config), and reports the
Spearman rank correlation between the token-grid latent distance and the true distance of
``--pairs`` random pairs: over all pairs, over pairs in the same room (where the straight
line is the path), and over pairs closer than 10 px. ``--blur`` repeats it with the frames
Gaussian-blurred (sigma in px) before encoding, which spreads the agent over neighbouring
patches; raw pixels are a reference row.

``--grid-pool 1 2`` adds rows of each encoder's grid averaged over 2x2 patches (a
world model's ``state.grid_pool``).

``--env pusht`` renders random poses instead (agent and block apart, any angle). Its true
distance is the success criterion's (agent and block position errors, the angle error at
20 px per 20 degrees), its columns are all pairs, the closest fifth of them, and the block's
pose alone (the agent is a 4 px disc at 64 px); a ridge probe then reports how much of each
part of the pose the features hold linearly (held-out R^2; the angle as its cosine and sine),
and an RBF kernel ridge probe how much nearness in the features tells of the pose.
Its exchange rates give the energy of moving the agent or block, or turning the block, over
that of a 20 px block move; ``turn 30° any`` turns the block 30 degrees and then shifts it by
whichever offset (5 px grid, up to 30 px) the state finds closest to the start: a state that
sees only the blurred mass of the block has a valley along turns about its centre, where
the planner stops short of the goal angle. A ``--world-model`` with proprioception is given
each frame's true agent position. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vjepa2.data.transforms import gaussian_blur, normalize_frames, resize_square
from vjepa2.envs.pusht import PushT, PushTConfig, pose_error
from vjepa2.envs.tworoom import TwoRoom, TwoRoomConfig
from vjepa2.eval.plan_ranking import spearman
from vjepa2.losses import normalize_targets
from vjepa2.models.encoder import VideoViT
from vjepa2.train.builders import load_pretrained, load_world_model
from vjepa2.world_model import pool_token_grid

ARENA = TwoRoomConfig(random_door=False)


def rendered_positions(n: int, img_size: int, seed: int) -> tuple[np.ndarray, torch.Tensor]:
    env = TwoRoom(ARENA)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    pos, frames = [], []
    while len(pos) < n:
        p = rng.uniform(ARENA.margin, ARENA.size - ARENA.margin, 2)
        if abs(p[0] - ARENA.wall_x) < ARENA.wall_half_width + 1.0:
            continue
        env.set_state(np.array([*p, *p, ARENA.door_y, 0.0]))
        pos.append(p)
        frames.append(resize_square(env.render(), img_size))
    return np.array(pos), normalize_frames(torch.from_numpy(np.stack(frames)))


def correlations(dist: np.ndarray, true: np.ndarray, same_room: np.ndarray) -> dict[str, float]:
    near = true < 10.0
    return {
        "all": spearman(dist, true),
        "same_room": spearman(dist[same_room], true[same_room]),
        "near": spearman(dist[near], true[near]),
    }


def rendered_poses(n: int, img_size: int, seed: int) -> tuple[np.ndarray, torch.Tensor]:
    """PushT at ``n`` random poses [n, 5] (agent at least 80 px from the block) and frames."""
    env = PushT(PushTConfig(render_size=img_size))
    rng = np.random.default_rng(seed)
    poses, frames = [], []
    while len(poses) < n:
        pose = np.array([*rng.uniform(60, 450, 2), *rng.uniform(120, 390, 2), rng.uniform(0, 7)])
        if np.linalg.norm(pose[:2] - pose[2:4]) < 80.0:
            continue
        poses.append(pose)
        frames.append(env.reset(seed=seed, options={"pose": pose})[0])
    return np.array(poses), normalize_frames(torch.from_numpy(np.stack(frames)))


def pose_correlations(dist: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    cfg = PushTConfig()
    true = np.sqrt(pose_error(a, b, cfg))
    block = np.sqrt(pose_error(a * [0, 0, 1, 1, 1], b * [0, 0, 1, 1, 1], cfg))
    near = true < np.quantile(true, 0.2)
    return {
        "all": spearman(dist, true),
        "near": spearman(dist[near], true[near]),
        "block": spearman(dist, block),
    }


def _best_dual_r2(
    gram: np.ndarray, cross: np.ndarray, y: np.ndarray, cut: int, lams: tuple[float, ...]
) -> np.ndarray:
    # Kernel ridge in its dual form (an n x n solve, whatever the feature width: pixels have
    # 12288); the strength is picked on the held-out part, so this is an upper estimate.
    best = None
    for lam in lams:
        alpha = np.linalg.solve(gram + lam * np.eye(cut), y[:cut] - y[:cut].mean(0))
        r2 = 1 - ((cross @ alpha + y[:cut].mean(0) - y[cut:]) ** 2).mean(0) / y[cut:].var(0)
        best = r2 if best is None or r2.mean() > best.mean() else best
    return best


def ridge_r2(feats: np.ndarray, poses: np.ndarray) -> dict[str, float]:
    """Held-out R^2 (last quarter) of a linear ridge probe and of an RBF kernel ridge probe,
    to tell "there" from "absent". The angle is not a linear function even of the pixels
    (their linear R^2 is below 0); the RBF probe asks whether states near in the features
    have near poses, which is what an energy of feature distances can use."""
    y = np.column_stack([poses[:, :4], np.cos(poses[:, 4]), np.sin(poses[:, 4])])
    cut = len(y) * 3 // 4
    x = (feats - feats[:cut].mean(0)) / (feats[:cut].std(0) + 1e-6)
    linear = _best_dual_r2(x[:cut] @ x[:cut].T, x[cut:] @ x[:cut].T, y, cut, (1e1, 1e2, 1e3, 1e4))
    sq = (x * x).sum(1)
    dist = np.maximum(sq[:, None] + sq[None, :cut] - 2 * x @ x[:cut].T, 0.0)  # [n, cut]
    width = np.median(dist[:cut])
    rbf = max(
        (
            _best_dual_r2(
                np.exp(-dist[:cut] / (s * width)),
                np.exp(-dist[cut:] / (s * width)),
                y,
                cut,
                (1e-3, 1e-2, 1e-1, 1.0),
            )
            for s in (0.25, 1.0, 4.0)
        ),
        key=lambda r2: r2.mean(),
    )
    parts = {"agent": slice(0, 2), "block": slice(2, 4), "angle": slice(4, 6)}
    return {
        **{f"r2_{k}": float(linear[v].mean()) for k, v in parts.items()},
        **{f"r2_rbf_{k}": float(rbf[v].mean()) for k, v in parts.items()},
    }


MOVES = {"agent": (10, 20, 40, 80), "block": (10, 20, 40, 80), "turn": (10, 20, 40, 90)}
VALLEY_TURN = 30  # degrees, then the best shift on VALLEY_SHIFTS
VALLEY_SHIFTS = [(dx, dy) for dx in range(-30, 31, 5) for dy in range(-30, 31, 5)]
VALLEY_POSES = 20

# Frames [B, C, H, W] and their true poses [B, 5] (the agent's position leads, as in the
# environment's state vector): what each state row is computed from.
Shots = tuple[torch.Tensor, np.ndarray]
State = Callable[[torch.Tensor, np.ndarray], torch.Tensor]


def moved_poses(n: int, img_size: int, seed: int) -> tuple[Shots, dict[tuple[str, int], Shots]]:
    """Frames of ``n`` random PushT poses (bodies 100+ px apart, away from the walls) and of
    each pose with one thing changed by each amount of ``MOVES``: the agent or the block moved
    that many px in a random direction, or the block turned that many degrees. Under
    ``("turn_any", VALLEY_TURN)``: the first ``VALLEY_POSES`` poses turned and shifted by
    each of ``VALLEY_SHIFTS`` in turn (pose-major)."""
    env = PushT(PushTConfig(render_size=img_size))
    rng = np.random.default_rng(seed)
    poses: list[np.ndarray] = []
    while len(poses) < n:
        pose = np.array([*rng.uniform(100, 410, 2), *rng.uniform(160, 350, 2), rng.uniform(0, 7)])
        if np.linalg.norm(pose[:2] - pose[2:4]) >= 100.0:
            poses.append(pose)

    def frames(batch: list[np.ndarray]) -> Shots:
        shots = [env.reset(seed=seed, options={"pose": q})[0] for q in batch]
        return normalize_frames(torch.from_numpy(np.stack(shots))), np.array(batch)

    moved = {}
    for kind, amounts in MOVES.items():
        for m in amounts:
            batch = []
            for pose in poses:
                q, a = pose.copy(), rng.uniform(0, 2 * np.pi)
                if kind == "turn":
                    q[4] += np.deg2rad(m)
                else:
                    at = slice(0, 2) if kind == "agent" else slice(2, 4)
                    q[at] += m * np.array([np.cos(a), np.sin(a)])
                batch.append(q)
            moved[(kind, m)] = frames(batch)
    turned = []
    for pose in poses[:VALLEY_POSES]:
        for dx, dy in VALLEY_SHIFTS:
            turned.append(pose + [0, 0, dx, dy, np.deg2rad(VALLEY_TURN)])
    moved[("turn_any", VALLEY_TURN)] = frames(turned)
    return frames(poses), moved


def median_changes(
    energy: State, base: Shots, moved: dict[tuple[str, int], Shots]
) -> dict[str, float]:
    """Median squared state distance (mean over elements) between each pose and its moved
    copy, per change of ``moved_poses``: ``{"agent_20": ..., "turn_90": ...}``; for
    ``turn_any`` the closest of each pose's shifted copies."""
    zb = energy(*base)
    out = {}
    for (k, m), shots in moved.items():
        if k == "turn_any":
            z = energy(*shots).unflatten(0, (-1, len(VALLEY_SHIFTS)))  # [poses, shifts, F]
            d = (z - zb[: z.shape[0], None]).pow(2).mean(2).min(1).values
        else:
            d = (energy(*shots) - zb).pow(2).flatten(1).mean(1)
        out[f"{k}_{m}"] = float(d.median())
    return out


def exchange_rates(
    energy: State, base: Shots, moved: dict[tuple[str, int], Shots]
) -> dict[str, float]:
    """``median_changes`` over that of a 20 px block move: the success criterion weighs 20 px
    of agent, 20 px of block and 20 degrees alike (1.0), and a squared distance grows 4x per
    doubling."""
    med = median_changes(energy, base, moved)
    return {k: v / med["block_20"] for k, v in med.items()}


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", choices=["tworoom", "pusht"], default="tworoom")
    p.add_argument("--checkpoint", help="Phase-1 checkpoint (pretrain final.pt)")
    p.add_argument(
        "--world-model",
        help="Phase-2 checkpoint (dynamics final.pt): adds its own planning state as a row "
        "(its blurred views and standardisation; --blur does not apply to it)",
    )
    p.add_argument("--blur", type=float, nargs="+", default=[0.0, 4.0, 8.0, 16.0])
    p.add_argument(
        "--grid-pool",
        type=int,
        nargs="+",
        default=[1],
        help="also rows of the encoders' grids averaged over k x k patches (state.grid_pool)",
    )
    p.add_argument("--positions", type=int, default=300)
    p.add_argument("--pairs", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/bench/energy_landscape.json")
    args = p.parse_args()
    if not (args.checkpoint or args.world_model):
        p.error("give --checkpoint (Phase 1), --world-model (Phase 2) or both")
    if args.positions < 8 or args.pairs < 8 or any(s < 0 for s in args.blur):
        p.error("--positions and --pairs must be >= 8, --blur sigmas >= 0")
    if any(k < 1 for k in args.grid_pool):
        p.error("--grid-pool factors must be >= 1")

    torch.manual_seed(args.seed)
    encoders: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    if args.checkpoint:
        vjepa, cfg = load_pretrained(args.checkpoint)
        encoders["phase1"] = vjepa.target_encoder.eval()
        enc_cfg = cfg.encoder
    if args.world_model:
        wm, wm_cfg = load_world_model(args.world_model)
        wm.eval()
        if args.checkpoint and wm_cfg.encoder.img_size != enc_cfg.img_size:
            p.error("--checkpoint and --world-model encode frames of different sizes")
        enc_cfg = wm_cfg.encoder
    encoders["random"] = VideoViT(enc_cfg).eval()
    img = enc_cfg.img_size

    def views(sigma: float) -> dict[str, State]:
        """Each row's state of normalised frames [B, C, H, W] blurred at ``sigma`` (and their
        true poses, for a world model with proprioception): [B, F]."""
        out: dict[str, State] = {
            n + (f" pool {k}" if k > 1 else ""): (
                lambda x, q, e=e, k=k: normalize_targets(
                    pool_token_grid(e(gaussian_blur(x, sigma)), k)
                ).flatten(1)
            )
            for n, e in encoders.items()
            for k in args.grid_pool
        }
        out["pixels"] = lambda x, q: gaussian_blur(x, sigma).flatten(1)
        if args.world_model and sigma == 0:
            out["world_model"] = lambda x, q: wm.encode(x, wm.proprio_of(q)).flatten(1)
        return out

    rng = np.random.default_rng(args.seed + 1)
    i, j = rng.integers(0, args.positions, (2, args.pairs))
    if args.env == "tworoom":
        pos, x = rendered_positions(args.positions, img, args.seed)
        true = np.linalg.norm(pos[i] - pos[j], axis=1)
        same = (pos[i, 0] < ARENA.wall_x) == (pos[j, 0] < ARENA.wall_x)
    else:
        pos, x = rendered_poses(args.positions, img, args.seed)
        base, moved = moved_poses(min(args.positions, 200), img, args.seed + 2)

    rows = []
    for sigma in args.blur:
        for name, state in views(sigma).items():
            f = state(x, pos)
            d = (f[i] - f[j]).pow(2).mean(1).numpy()
            if args.env == "tworoom":
                stats = correlations(d, true, same)
            else:
                probe = ridge_r2(f.double().numpy(), pos)
                rates = exchange_rates(state, base, moved)
                stats = {**pose_correlations(d, pos[i], pos[j]), **probe, "exchange": rates}
            rows.append({"features": name, "blur_px": sigma, **stats})

    if args.env == "tworoom":
        print("| features | blur (px) | all pairs | same room | < 10 px apart |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['features']} | {r['blur_px']:g} | {r['all']:.2f} | {r['same_room']:.2f} | "
                f"{r['near']:.2f} |"
            )
    else:
        print("Spearman of latent against pose distance; ridge-probe R^2 of the pose, linear "
              "and RBF kernel")  # fmt: skip
        print("| features | blur (px) | all pairs | closest fifth | block pose only | R^2 agent "
              "xy | R^2 block xy | R^2 angle | RBF R^2 agent / block / angle |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['features']} | {r['blur_px']:g} | {r['all']:.2f} | {r['near']:.2f} | "
                f"{r['block']:.2f} | {r['r2_agent']:.2f} | {r['r2_block']:.2f} | "
                f"{r['r2_angle']:.2f} | {r['r2_rbf_agent']:.2f} / {r['r2_rbf_block']:.2f} / "
                f"{r['r2_rbf_angle']:.2f} |"
            )
        print("\nEnergy of a change, over that of moving the block 20 px (the criterion: 1.0 "
              "for 20 px of agent, 20 px of block or 20 degrees; 4x per doubling)")  # fmt: skip
        changes = [(k, m) for k, ms in MOVES.items() for m in ms] + [("turn_any", VALLEY_TURN)]
        heads = [
            f"{k.replace('_any', '')} {m}{' px' if k in ('agent', 'block') else '°'}"
            + (" any" if k == "turn_any" else "")
            for k, m in changes
        ]
        print("| features | blur (px) | " + " | ".join(heads) + " |")
        print("|---|---|" + "---|" * len(heads))
        for r in rows:
            cells = [f"{r['exchange'][f'{k}_{m}']:.3g}" for k, m in changes]
            print(f"| {r['features']} | {r['blur_px']:g} | " + " | ".join(cells) + " |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    source = {"checkpoint": args.checkpoint, "world_model": args.world_model}
    out.write_text(json.dumps({"env": args.env, **source, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
