"""Evaluate a world model: planning success (CEM + MPC) beside the baselines, and rollouts.

python -m jobs.evaluate --checkpoint runs/demo/dynamics/final.pt --episodes 50
python -m jobs.evaluate --checkpoint ... --dataset runs/demo/data/tworoom --set cem.iterations=3

Episodes fan out as Ray tasks (a chunk of seeds per CPU; ``--local`` runs in-process). The
table lands in the terminal and ``<out>/results.md``, the figures and ``results.json`` beside
it, and all of it in an MLflow run of the ``vjepa2-eval`` experiment.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import torch

from vjepa2.config import ConfigError, apply_overrides, to_dict
from vjepa2.eval.planning import PlanningEvalConfig, evaluate_seeds, markdown_table, summarize
from vjepa2.eval.plots import cosine_vs_horizon, plan_strip, success_bars


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--checkpoint", required=True, help="a dynamics checkpoint (final.pt)")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--dataset", help="video-action dataset for held-out rollout cos-sim")
    p.add_argument("--out", help="results folder (default: beside the checkpoint)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="e.g. budget=50, goal_offset=25, cem.num_candidates=300",
    )
    p.add_argument("--local", action="store_true", help="no Ray: episodes in this process")
    p.add_argument("--no-mlflow", action="store_true")
    args = p.parse_args(argv)
    ckpt = Path(args.checkpoint).resolve()
    if not ckpt.is_file():
        raise SystemExit(f"checkpoint not found: {ckpt}")
    try:
        cfg = apply_overrides(PlanningEvalConfig(episodes=args.episodes), args.overrides)
    except (ConfigError, ValueError) as exc:
        raise SystemExit(f"config error: {exc}") from None
    out = Path(args.out) if args.out else ckpt.parent / "eval"
    out.mkdir(parents=True, exist_ok=True)
    if "bc" in cfg.agents and not cfg.bc_checkpoint:
        if args.dataset:
            cfg = replace(cfg, bc_checkpoint=str(_train_bc(args.dataset, out / "bc.pt")))
        else:
            print("bc: no --dataset to train the policy on and no bc_checkpoint; skipped")
            cfg = replace(cfg, agents=tuple(a for a in cfg.agents if a != "bc"))

    t0 = time.perf_counter()
    seeds = [cfg.seed + i for i in range(cfg.episodes)]
    outcomes = _run(cfg, seeds, str(ckpt), args.local)
    rows = summarize(outcomes)
    results: dict = {"planning": rows, "config": to_dict(cfg)}
    figures = [success_bars(rows, out / "success.png")]
    for o in outcomes:
        if o.frames:
            goal = _goal_frame(cfg, o.seed)
            title = f"{o.agent}: {'success' if o.success else 'failure'}"
            figures.append(plan_strip(o.frames, goal, out / f"plan_{o.agent}_{o.seed}.png", title))
    if args.dataset:
        from vjepa2.eval.rollout import load_episode_windows, rollout_cosine
        from vjepa2.train.builders import load_world_model

        model, _ = load_world_model(ckpt)
        frames, actions = load_episode_windows(args.dataset, "val", num_frames=11)
        results["rollout_cosine"] = rollout_cosine(model, frames, actions, (1, 5, 10))
        figures.append(cosine_vs_horizon(results["rollout_cosine"], out / "cosine.png"))
    results["seconds"] = time.perf_counter() - t0
    table = markdown_table(rows)
    (out / "results.md").write_text(table + "\n")
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\n{table}\n\nresults and figures in {out} ({results['seconds']:.0f} s)")
    if not args.no_mlflow:
        print(f"MLflow: {_track(ckpt, rows, results, [out / 'results.md', *figures])}")
    return results


def _run(cfg: PlanningEvalConfig, seeds: list[int], ckpt: str, local: bool) -> list:
    if local:
        return evaluate_seeds(cfg, seeds, ckpt, record=1)
    import ray

    from jobs.ray_runtime import ensure_ray

    ensure_ray()
    n = max(1, min(len(seeds), int(ray.cluster_resources().get("CPU", 1)), os.cpu_count() or 1))
    chunks = [seeds[i::n] for i in range(n)]
    task = ray.remote(num_cpus=1)(evaluate_seeds)
    parts = ray.get([task.remote(cfg, c, ckpt, 1 if i == 0 else 0) for i, c in enumerate(chunks)])
    return [o for part in parts for o in part]


def _train_bc(dataset: str, path: Path) -> Path:
    """Behaviour cloning on the dataset's train split, once: reused while the file exists."""
    if path.exists():
        return path
    from vjepa2.planning.bc import BCConfig, save_bc, train_bc
    from vjepa2.train.sources import DatasetSource

    src = DatasetSource(dataset, "train", torch.device("cpu"))
    d_a, size = src.actions.shape[-1], src.frames.shape[2]
    t0 = time.perf_counter()
    policy = train_bc(src.frames, src.actions, src.lengths, BCConfig(img_size=size, action_dim=d_a))
    save_bc(policy, str(path))
    print(f"bc: trained on {len(src)} episodes in {time.perf_counter() - t0:.0f} s -> {path}")
    return path


def _goal_frame(cfg: PlanningEvalConfig, seed: int):
    from vjepa2.envs import make_env
    from vjepa2.planning import make_episode

    return make_episode(make_env(cfg.env), seed, goal_offset=cfg.goal_offset).goal_frame


def _track(ckpt: Path, rows: list[dict], results: dict, artifacts: list[Path]) -> str:
    from vjepa2.tracking import Tracker, flatten_params, resolve_tracking_uri

    uri = resolve_tracking_uri("", ckpt.parent.parent)
    tracker = Tracker.start_or_resume(
        uri,
        "vjepa2-eval",
        run_key=f"{ckpt}@{time.time_ns()}",
        run_name=f"eval-{ckpt.parent.parent.name}",
    )
    tracker.log_params(flatten_params({"checkpoint": str(ckpt), **results["config"]}))
    for r in rows:
        tracker.log_metrics(
            {
                f"{r['agent']}/success_rate": r["success_rate"],
                f"{r['agent']}/plan_s_per_step": r["plan_s_per_step"],
            },
            0,
        )
    for key, by_k in results.get("rollout_cosine", {}).items():
        for k, v in by_k.items():
            tracker.log_metrics({f"rollout_{key}": v}, int(k))
    for path in artifacts:
        tracker.log_artifact(path)
    tracker.finish()
    return tracker.run_url()


if __name__ == "__main__":
    main()
