"""Candidate replays (``replay_frames``) against one env step at a time.

    .venv/bin/python benchmarks/env_replay.py --out runs/bench/env_replay.json
    .venv/bin/python benchmarks/env_replay.py --env pusht --candidates 60 \
        --out runs/bench/env_replay_pusht.json

``cem_true_dynamics`` replays every CEM candidate in the environment: per plan that is
K x I candidates of H x frameskip steps each. This times one batch of ``--candidates``
sequences of ``--steps`` random actions from a protocol episode's start, keeping the last
frame, both ways: the env's own replay (median of ``--repeats`` runs; TwoRoom moves all K at
once, PushT draws only the kept frames) and the per-candidate loop of ``env.step``, which
draws every frame (one run), checks that they give the same frames, and prints the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from vjepa2.envs import make_env, replay_frames


def sequential_replay(env, state: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """The last frame of each sequence, stepping one candidate at a time."""
    frames = []
    for seq in actions:
        env.set_state(state)
        for a in seq:
            frame = env.step(a)[0]
        frames.append(frame)
    return np.stack(frames)[:, None]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", choices=["tworoom", "pusht"], default="tworoom")
    p.add_argument("--candidates", type=int, default=300)
    p.add_argument("--steps", type=int, default=25, help="H x frameskip (5 x 5 in the presets)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=1_000_000)
    p.add_argument("--out", default="runs/bench/env_replay.json")
    args = p.parse_args(argv)
    if min(args.candidates, args.steps, args.repeats) < 1:
        p.error("--candidates, --steps and --repeats must be >= 1")

    env = make_env(args.env)
    env.reset(seed=args.seed)
    state = env.get_state()
    actions = np.random.default_rng(args.seed).uniform(-1, 1, (args.candidates, args.steps, 2))
    keep = [args.steps - 1]
    batched = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        frames = replay_frames(env, state, actions, keep)
        batched.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    expected = sequential_replay(env, state, actions)
    loop = time.perf_counter() - t0
    if not np.array_equal(frames, expected):
        raise SystemExit("the env's replay and stepping differ: its replay dynamics are wrong")
    row = {
        "env": args.env,
        "candidates": args.candidates,
        "steps": args.steps,
        "batched_s": statistics.median(batched),
        "sequential_s": loop,
        "speedup": loop / statistics.median(batched),
        "identical_frames": True,
    }
    print("| env | candidates x steps | replay (median) | one at a time | speed-up | same frames |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.env} | {args.candidates} x {args.steps} | {row['batched_s'] * 1e3:.1f} ms | "
        f"{loop * 1e3:.0f} ms | {row['speedup']:.0f}x | yes |"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(row, indent=2))
    return row


if __name__ == "__main__":
    main()
