"""Does an encoder's latent distance follow the agent? TwoRoom, rendered positions.

    .venv/bin/python benchmarks/energy_landscape.py --checkpoint runs/demo/pretrain/final.pt

CEM can only climb an energy that falls as the predicted state nears the goal. This renders
the TwoRoom agent at ``--positions`` random places (one door), encodes every frame with the
Phase-1 target encoder (and a randomly initialised one of the same config), and reports the
Spearman rank correlation between the token-grid latent distance and the true distance of
``--pairs`` random pairs: over all pairs, over pairs in the same room (where the straight
line is the path), and over pairs closer than 10 px. ``--blur`` repeats it with the frames
Gaussian-blurred (sigma in px) before encoding, which spreads the agent over neighbouring
patches; raw pixels are a reference row. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from vjepa2.data.transforms import gaussian_blur, normalize_frames, resize_square
from vjepa2.envs.tworoom import TwoRoom, TwoRoomConfig
from vjepa2.eval.plan_ranking import spearman
from vjepa2.losses import normalize_targets
from vjepa2.models.encoder import VideoViT
from vjepa2.train.builders import load_pretrained

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


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="Phase-1 checkpoint (pretrain final.pt)")
    p.add_argument("--blur", type=float, nargs="+", default=[0.0, 4.0, 8.0, 16.0])
    p.add_argument("--positions", type=int, default=300)
    p.add_argument("--pairs", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/bench/energy_landscape.json")
    args = p.parse_args()

    torch.manual_seed(args.seed)
    vjepa, cfg = load_pretrained(args.checkpoint)
    encoders = {"phase1": vjepa.target_encoder.eval(), "random": VideoViT(cfg.encoder).eval()}
    pos, x = rendered_positions(args.positions, cfg.encoder.img_size, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    i, j = rng.integers(0, len(pos), (2, args.pairs))
    true = np.linalg.norm(pos[i] - pos[j], axis=1)
    same = (pos[i, 0] < ARENA.wall_x) == (pos[j, 0] < ARENA.wall_x)

    rows = []
    for sigma in args.blur:
        xb = gaussian_blur(x, sigma)
        feats = {n: normalize_targets(e(xb)).flatten(1) for n, e in encoders.items()}
        feats["pixels"] = xb.flatten(1)
        for name, f in feats.items():
            d = (f[i] - f[j]).pow(2).mean(1).numpy()
            rows.append({"features": name, "blur_px": sigma, **correlations(d, true, same)})

    print("| features | blur (px) | all pairs | same room | < 10 px apart |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['features']} | {r['blur_px']:g} | {r['all']:.2f} | {r['same_room']:.2f} | "
            f"{r['near']:.2f} |"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"checkpoint": args.checkpoint, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
