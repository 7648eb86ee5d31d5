"""The whole pipeline on the embedded default: collect -> Phase 1 -> Phase 2 -> evaluate.

python -m jobs.demo                                   # tiny preset, everything under runs/demo
python -m jobs.demo --episodes 400 --set pretrain.train.steps=1000
python -m jobs.demo --preset tworoom_small --set plan.cem.cost=min --set plan.cem.horizon=8
python -m jobs.demo --env pusht --preset pusht --episodes 1000 --out runs/pusht   # hours on CPU

Every stage runs on Ray (an embedded instance unless ``RAY_ADDRESS`` is set) and is tracked
in MLflow; rerunning reuses the dataset and the finished checkpoints.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from jobs.cli import add_overrides
from jobs.collect import parse_kwargs, run_collect
from jobs.evaluate import run_episodes
from jobs.ray_runtime import ensure_ray
from jobs.train_job import fit
from vjepa2.config import ConfigError, apply_overrides, get_preset, to_dict
from vjepa2.data.collect import CollectConfig
from vjepa2.eval.planning import PlanningEvalConfig, summarize
from vjepa2.eval.report import pipeline_report
from vjepa2.eval.rollout import held_out_rollout_cosine
from vjepa2.train.builders import load_world_model

PLAN_AGENTS = ("cem", "random", "do_nothing", "oracle")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", choices=("tworoom", "pusht"), default="tworoom")
    parser.add_argument("--preset", default="tiny", help="tiny (minutes), tworoom or pusht (hours)")
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--episodes", type=int, default=120, help="episodes to collect")
    parser.add_argument("--steps-per-episode", type=int, default=40)
    parser.add_argument("--plan-episodes", type=int, default=10, help="0: skip planning")
    parser.add_argument(
        "--policy-kwarg",
        dest="policy_kwargs",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="collection policy keyword, as in jobs.collect (TwoRoom default: straight_prob=0.3)",
    )
    add_overrides(parser, help="pretrain.KEY=V, dynamics.KEY=V or plan.KEY=V (repeatable)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    data = out / "data" / args.env
    # TwoRoom's door-seeking data never shows the wall stopping a move unless some targets
    # are headed for straight (README, "Making data"); the protocol's goals are unaffected.
    defaults = {"straight_prob": 0.3} if args.env == "tworoom" else {}
    try:
        policy_kwargs = {**defaults, **parse_kwargs(args.policy_kwargs)}
    except ConfigError as exc:
        raise SystemExit(f"config error: {exc}") from None
    source = ["data.source=dataset", f"data.dataset.path={data}", f"train.out_dir={out}"]
    # Every config is built before any work starts: a bad override costs nothing.
    split: dict[str, list[str]] = {"pretrain": [], "dynamics": [], "plan": []}
    try:
        for item in args.overrides:
            job, _, rest = item.partition(".")
            if job not in split or not rest:
                raise ConfigError(
                    f"override {item!r} must start with 'pretrain.', 'dynamics.' or 'plan.'"
                )
            split[job].append(rest)
        pre_cfg = apply_overrides(get_preset("pretrain", args.preset), source + split["pretrain"])
        dyn_cfg = apply_overrides(get_preset("dynamics", args.preset), source + split["dynamics"])
        plan_cfg = apply_overrides(
            PlanningEvalConfig(
                env=args.env, episodes=max(args.plan_episodes, 1), agents=PLAN_AGENTS
            ),
            split["plan"],
        )
    except (ConfigError, ValueError) as exc:  # the planner's configs raise ValueError
        raise SystemExit(f"config error: {exc}") from None

    t0 = time.perf_counter()
    ensure_ray()
    run_collect(
        CollectConfig(
            out=str(data),
            env=args.env,
            episodes=args.episodes,
            steps_per_episode=args.steps_per_episode,
            img_size=64,
            val_fraction=0.1,
            policy_kwargs=policy_kwargs,
        ),
        progress=not args.quiet,
    )
    t_data = time.perf_counter() - t0

    pre = fit(pre_cfg, progress=not args.quiet)
    # Phase 1's checkpoint, then the user's overrides again: an explicit encoder_checkpoint wins.
    dyn_cfg = apply_overrides(dyn_cfg, [f"encoder_checkpoint={pre.checkpoint}", *split["dynamics"]])
    dyn = fit(dyn_cfg, progress=not args.quiet)

    model, model_cfg = load_world_model(dyn.checkpoint)
    cos, held_out = held_out_rollout_cosine(model, str(data), model_cfg.data.dataset.frameskip)
    seeds = [plan_cfg.seed + i for i in range(args.plan_episodes)]
    planning = summarize(run_episodes(plan_cfg, seeds, str(dyn.checkpoint), False)) if seeds else []
    p, d = pre.history, dyn.history
    summary = {
        "env": args.env,
        "dataset": {"path": str(data), "seconds": t_data},
        "pretrain": {
            "checkpoint": str(pre.checkpoint),
            "mlflow": pre.run_url,
            "seconds": pre.seconds,
            "reused": pre.reused,
            "first": p[0],
            "last": p[-1],
        },
        "dynamics": {
            "checkpoint": str(dyn.checkpoint),
            "mlflow": dyn.run_url,
            "seconds": dyn.seconds,
            "reused": dyn.reused,
            "first": d[0],
            "last": d[-1],
        },
        "rollout_cosine": cos,
        "held_out_episodes": held_out,
        "planning": planning,
        "planning_config": to_dict(plan_cfg),
        "seconds_total": time.perf_counter() - t0,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(pipeline_report(summary))
    return summary


if __name__ == "__main__":
    main()
