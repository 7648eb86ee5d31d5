"""CEM plan latency: batched rollouts (the planner) against a per-candidate Python loop.

    .venv/bin/python benchmarks/planner.py --out runs/bench/planner.json
    .venv/bin/python benchmarks/planner.py --sizes tiny vit_l --device cuda   # on a GPU

For each (K, I, H) setting and dynamics size it times one whole plan (I iterations of K
candidates rolled out H steps) from a pooled start state to a goal: the median of
``--repeats`` runs for the batched planner, one run for the naive loop (it is slow by
design), and prints their ratio. Sizes: ``tiny`` is the tiny preset's dynamics model
(width 96, depth 2); ``vit_l`` is a ViT-L-width predictor (width 1024, depth 6, 16 heads);
``pixel`` is the pixel-space baseline (``PixelWorldModel`` at its default width, on 64 px
frames: use ``--no-naive``, its per-candidate loop takes minutes). Each row also carries the
FLOPs of one candidate's rollout step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from vjepa2.config.components import DynamicsConfig
from vjepa2.models.dynamics import DynamicsModel
from vjepa2.planning.cem import CEMConfig, CEMPlanner, energy
from vjepa2.planning.flops import flops_per_step
from vjepa2.planning.pixel_wm import PixelWMConfig, PixelWorldModel

SIZES = {
    "tiny": {"state_dim": 96, "depth": 2, "num_heads": 4, "action_hidden": 64},
    "vit_l": {"state_dim": 1024, "depth": 6, "num_heads": 16, "action_hidden": 256},
}
PIXEL = "pixel"  # the pixel-space world model (planning/pixel_wm.py)
SETTINGS = [(300, 30, 5), (1000, 5, 10)]  # (K, I, H)


class NaiveCEMPlanner(CEMPlanner):
    """The same CEM, rolling each candidate out on its own: what batching replaces."""

    def rollout_cost(self, state, goal, actions):
        b, k, h, _ = actions.shape
        out = torch.empty(b, k, device=state.device)
        for i in range(b):
            for j in range(k):
                s = state[i : i + 1]
                for t in range(h):
                    s = self.step(s, actions[i, j, t][None])
                out[i, j] = energy(s, goal[i : i + 1], self.cfg.energy)[0]
        return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_plan(planner: CEMPlanner, start, goal, device) -> float:
    sync(device)
    t0 = time.perf_counter()
    planner.plan(start, goal)
    sync(device)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", nargs="+", default=["tiny"], choices=[*sorted(SIZES), PIXEL])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-naive", action="store_true", help="skip the per-candidate loop")
    parser.add_argument("--out", default="runs/bench/planner.json")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    rows = []
    for size in args.sizes:
        model, shape = build(size)
        model = model.to(device=device, dtype=dtype).eval()
        params = sum(p.numel() for p in model.parameters())
        gen = torch.Generator().manual_seed(0)
        start = torch.randn(1, *shape, generator=gen).to(device, dtype)
        goal = torch.randn(1, *shape, generator=gen).to(device, dtype)

        def step(s, a, model=model):
            return model.step(s, a.to(s.dtype))

        flops = flops_per_step(step, start, torch.zeros(1, 2, device=device))

        for k, i, h in SETTINGS:
            cem = CEMConfig(num_candidates=k, iterations=i, horizon=h)
            with torch.inference_mode():
                planner = CEMPlanner(step, 2, cem)
                time_plan(planner, start, goal, device)  # warm-up
                batched = [time_plan(planner, start, goal, device) for _ in range(args.repeats)]
                naive = None
                if not args.no_naive:
                    naive = time_plan(NaiveCEMPlanner(step, 2, cem), start, goal, device)
            med = statistics.median(batched)
            rows.append(
                {
                    "size": size,
                    "params": params,
                    "flops_per_step": flops,
                    "device": str(device),
                    "dtype": args.dtype,
                    "threads": torch.get_num_threads(),
                    "K": k,
                    "I": i,
                    "H": h,
                    "batched_s_median": med,
                    "batched_s_all": batched,
                    "naive_s": naive,
                    "speedup": None if naive is None else naive / med,
                }
            )
            print(
                f"{size:6s} K={k:5d} I={i:3d} H={h:3d}  batched {med * 1e3:9.1f} ms  "
                + ("" if naive is None else f"naive {naive:8.2f} s  x{naive / med:7.1f}")
            )
    print(
        "\n| size | params | FLOPs / step | K | I | H | batched (median) | naive loop | speedup |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        naive = "-" if r["naive_s"] is None else f"{r['naive_s']:.2f} s"
        speed = "-" if r["speedup"] is None else f"{r['speedup']:.0f}x"
        print(
            f"| {r['size']} | {r['params'] / 1e6:.1f}M | {r['flops_per_step'] / 1e6:.2f}M | "
            f"{r['K']} | {r['I']} | {r['H']} | "
            f"{r['batched_s_median'] * 1e3:.0f} ms | {naive} | {speed} |"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))
    print(f"\nwrote {out}")
    return rows


def build(size: str) -> tuple[torch.nn.Module, tuple[int, ...]]:
    """The model of a size and the shape of its planning state (one problem)."""
    if size == PIXEL:
        cfg = PixelWMConfig()
        return PixelWorldModel(cfg), (3, cfg.img_size, cfg.img_size)
    cfg = DynamicsConfig(num_tokens=1, action_dim=2, **SIZES[size])
    return DynamicsModel(cfg), (cfg.state_dim,)


if __name__ == "__main__":
    main()
