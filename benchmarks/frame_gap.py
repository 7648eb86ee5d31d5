"""Does the evaluation show a model frames like those it learned from?

    .venv/bin/python benchmarks/frame_gap.py \
        --checkpoint runs/exp/pusht_s_b12_proprio_12k/dynamics/final.pt \
        --dataset runs/data/pusht_big --render-size 64 96

A model learns from frames that collection drew at the dataset's img_size and stored through
a video codec; an evaluation draws its frames live, at the environment's render_size, and
resizes them to the model's. Each of the first ``--episodes`` validation episodes is
collected again here (collection is deterministic by seed and index), drawn at each
``--render-size`` and resized to the model's frame size, and encoded beside the stored,
decoded episode. Per view of the state (the sharp grid, each blurred grid, the proprio
token), the table gives the mean squared gap between the two encodings of the same moments,
over the median change of one model step (frameskip frames) in the stored episodes. Well
under 1: the codec and the drawing are invisible next to what the model predicts. Near 1 or
above: the model plans from frames unlike its data.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
from bench_output import print_table, write_json

from vjepa2.data.collect import CONFIG_FILE, CollectConfig, rollout_episode
from vjepa2.data.dataset import VideoActionDataset
from vjepa2.data.transforms import normalize_frames
from vjepa2.train.builders import load_world_model
from vjepa2.world_model import WorldModel


def collect_config(root: str) -> CollectConfig:
    path = Path(root) / CONFIG_FILE
    if not path.is_file():
        raise SystemExit(f"{root}: no {CONFIG_FILE}, so its episodes cannot be drawn again")
    stored = json.loads(path.read_text())
    known = {f.name for f in fields(CollectConfig)}
    return CollectConfig(out=root, **{k: v for k, v in stored.items() if k in known})


@torch.no_grad()
def encode(model: WorldModel, frames: np.ndarray, states: np.ndarray) -> torch.Tensor:
    x = normalize_frames(torch.from_numpy(np.ascontiguousarray(frames)))
    state = model.encode(x, model.proprio_of(states)) if model.proprio_dims else model.encode(x)
    return state if state.dim() == 3 else state[:, None]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="dynamics final.pt")
    p.add_argument("--dataset", help="the collected dataset (default: the model's own)")
    p.add_argument("--render-size", type=int, nargs="+", help="default: the model's frame size")
    p.add_argument("--episodes", type=int, default=8)
    p.add_argument("--out", default="runs/bench/frame_gap.json")
    args = p.parse_args(argv)
    if not Path(args.checkpoint).is_file():
        p.error(f"checkpoint not found: {args.checkpoint}")
    if args.episodes < 1:
        p.error("--episodes must be >= 1")
    model, cfg = load_world_model(args.checkpoint)
    model.eval()
    root = args.dataset or cfg.data.dataset.path
    collect = collect_config(root)
    img_size, k = model.encoder.cfg.img_size, cfg.data.dataset.frameskip
    if collect.img_size != img_size:
        p.error(f"{root} holds {collect.img_size} px frames, the model takes {img_size} px")
    sizes = args.render_size or [img_size]
    ds = VideoActionDataset.open(root)
    episodes = [e for e in ds if e.split == "val" and e.states is not None][: args.episodes]
    if not episodes:
        p.error(f"{root}: no validation episode with states")

    groups = model.state_views()
    gap = {r: {n: [] for n, _ in groups} for r in sizes}
    pixel_gap: dict[int, list[float]] = {r: [] for r in sizes}
    step = {n: [] for n, _ in groups}
    for ep in episodes:
        index = int(ep.episode_id.rsplit("_", 1)[1])
        with ds.open_video(ep) as reader:
            stored = reader.get_frames(range(ep.num_frames))
        z_stored = encode(model, stored, np.asarray(ep.states))
        for n, sl in groups:
            d = (z_stored[k:, sl] - z_stored[:-k, sl]).pow(2).mean(dim=(1, 2))
            step[n].append(float(d.median()))
        for r in sizes:
            frames, actions, states = rollout_episode(collect, index, render_size=r)
            if not np.allclose(actions, np.asarray(ep.actions), atol=1e-5):
                raise SystemExit(f"{ep.episode_id}: collected again, it took other actions")
            pixel_gap[r].append(float(np.abs(frames.astype(float) - stored).mean()))
            z = encode(model, frames, states)
            for n, sl in groups:
                gap[r][n].append(float((z[:, sl] - z_stored[:, sl]).pow(2).mean()))

    unit = {n: float(np.median(v)) for n, v in step.items()}
    rows = [
        {
            "render_size": r,
            "pixel_mae": float(np.mean(pixel_gap[r])),
            "gap_over_step": {n: float(np.median(gap[r][n])) / unit[n] for n, _ in groups},
        }
        for r in sizes
    ]
    print(f"{len(episodes)} validation episodes of {root}; model frames {img_size} px, step {k}")
    print_table(
        ["render size", "pixel MAE (0-255)", *(f"{n}: gap / step" for n, _ in groups)],
        [
            [str(r["render_size"]), f"{r['pixel_mae']:.2f}"]
            + [f"{v:.2f}" for v in r["gap_over_step"].values()]
            for r in rows
        ],
    )
    result = {"args": vars(args), "step_change": unit, "rows": rows}
    print(f"wrote {write_json(args.out, result)}")
    return result


if __name__ == "__main__":
    main()
