"""Hyperparameter sweeps with Ray Tune: Phase-1 masking and the CEM planner.

python -m jobs.sweep masking --trials 16 --steps 400 --reports 4
python -m jobs.sweep cem --checkpoint runs/demo/dynamics/final.pt --trials 16 --episodes 20

``masking`` searches block count, spatial/temporal scale ranges and aspect ratio; each trial
is a short Phase-1 run (``--steps``) scored at ``--reports`` checkpoints by an attentive
probe on direction of motion (``--probe-set probes=[linear]`` for the linear one). ``cem``
searches K, I, H, elite fraction, initial std, momentum and the cost (final, summed or
minimum over the horizon); each trial plans ``--episodes`` validation episodes (seeds
disjoint from the evaluation's) with the fixed world model and is scored by success. Optuna
proposes the trials (``--search random`` for Tune's random search) and ASHA stops the weak
ones at the reports. One MLflow parent run holds the sweep, with a child run per trial;
``<out>/best.yaml`` is the best trial's config, which ``jobs.pretrain --config`` (masking)
or ``jobs.evaluate --config`` (cem) takes as it is.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import yaml

from jobs.cli import add_overrides, existing_file
from jobs.sweep_trials import (
    CEM_METRIC,
    MASKING_METRIC,
    cem_space,
    cem_trial,
    masking_space,
    masking_trial,
    trial_config_yaml,
)
from vjepa2.config import ConfigError, apply_overrides, get_preset, load_yaml, to_dict
from vjepa2.config.jobs import PretrainConfig

KINDS = ("masking", "cem")
VALIDATION_SEED = 2_000_000  # CEM trials' episodes: disjoint from the evaluation's


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--trials", type=int, default=16)
    p.add_argument(
        "--concurrent", type=int, default=0, help="trials at once (0: half the cluster's CPUs)"
    )
    p.add_argument("--reports", type=int, default=4, help="scores per trial (ASHA rungs)")
    p.add_argument("--search", choices=("optuna", "random"), default="optuna")
    p.add_argument("--seed", type=int, default=0, help="the searcher's seed")
    p.add_argument("--out", help="sweep folder (default: runs/sweeps/<kind>)")
    p.add_argument("--tracking-uri", default="", help="MLflow store (default: beside --out)")
    p.add_argument("--no-mlflow", action="store_true")
    # masking
    p.add_argument("--preset", default="tiny", help="masking: the Phase-1 preset")
    p.add_argument("--config", help="masking: a Phase-1 YAML instead of the preset")
    p.add_argument("--steps", type=int, default=400, help="masking: Phase-1 steps per trial")
    add_overrides(p, help="masking: Phase-1 override; cem: evaluation override (repeatable)")
    add_overrides(p, "--probe-set", "probe_overrides", help="masking: probe override")
    # cem
    p.add_argument("--checkpoint", help="cem: the dynamics checkpoint planned with")
    p.add_argument("--episodes", type=int, default=20, help="cem: episodes per trial")
    args = p.parse_args(argv)
    if args.trials < 1 or args.reports < 1 or args.concurrent < 0:
        p.error("--trials and --reports must be >= 1, --concurrent >= 0")
    if args.kind == "cem" and not args.checkpoint:
        p.error("cem needs --checkpoint (a dynamics final.pt)")
    if args.kind == "masking" and args.steps < args.reports:
        p.error("--steps must be >= --reports")
    return args


def masking_setup(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from vjepa2.eval.probes import ProbeConfig

    full = (
        load_yaml(PretrainConfig, args.config)
        if args.config
        else get_preset("pretrain", args.preset)
    )
    full = apply_overrides(full, args.overrides)
    every = args.steps // args.reports
    short = apply_overrides(
        full,
        [
            f"train.steps={every * args.reports}",
            f"train.checkpoint_every={every}",
            f"train.log_every={every}",
            "tracking.enabled=false",
        ],
    )
    # A small probe: it runs at every report of every trial.
    probe = apply_overrides(
        ProbeConfig(
            probes=("attentive",), train_per_class=32, test_per_class=16, epochs=40, device="cpu"
        ),
        args.probe_overrides,
    )
    return {"full": to_dict(full), "base": to_dict(short), "probe": to_dict(probe), "out": str(out)}


def cem_setup(args: argparse.Namespace) -> dict[str, Any]:
    from vjepa2.eval.planning import PlanningEvalConfig

    checkpoint = existing_file(args.checkpoint)
    # Tuned on validation episodes: the protocol's own (seed 1_000_000 on) stay unseen.
    cfg = PlanningEvalConfig(episodes=args.episodes, seed=VALIDATION_SEED)
    cfg = apply_overrides(cfg, args.overrides)
    return {"eval": to_dict(cfg), "checkpoint": str(checkpoint), "reports": args.reports}


def searcher(args: argparse.Namespace, metric: str):
    if args.search == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch(metric=metric, mode="max", seed=args.seed)
    from ray.tune.search import BasicVariantGenerator

    return BasicVariantGenerator(random_state=args.seed)


def run_sweep(args: argparse.Namespace) -> dict[str, Any]:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from jobs.ray_runtime import ensure_ray
    from jobs.sweep_mlflow import MlflowTrials, start_sweep_run

    out = Path(args.out or f"runs/sweeps/{args.kind}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:
        setup = masking_setup(args, out) if args.kind == "masking" else cem_setup(args)
    except ConfigError as exc:
        raise SystemExit(f"config error: {exc}") from None
    trial, space, metric = {
        "masking": (masking_trial, masking_space(), MASKING_METRIC),
        "cem": (cem_trial, cem_space(), CEM_METRIC),
    }[args.kind]

    ensure_ray()
    import ray

    # The embedded instance counts twice the cores as logical CPUs (jobs.ray_runtime): half of
    # them is a trial per core.
    concurrent = args.concurrent or max(1, int(ray.cluster_resources().get("CPU", 1)) // 2)
    parent = None if args.no_mlflow else start_sweep_run(args, out, setup)
    callbacks = [] if parent is None else [MlflowTrials(parent, metric)]
    t0 = time.perf_counter()
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trial, setup=setup), {"cpu": 1}),
        param_space=space,
        tune_config=tune.TuneConfig(
            metric=metric,
            mode="max",
            num_samples=args.trials,
            max_concurrent_trials=concurrent,
            search_alg=searcher(args, metric),
            scheduler=ASHAScheduler(
                time_attr="training_iteration",
                max_t=args.reports,
                grace_period=1,
                reduction_factor=2,
            ),
        ),
        run_config=tune.RunConfig(
            name=args.kind, storage_path=str(out / "tune"), callbacks=callbacks, verbose=1
        ),
    )
    status = "FAILED"
    try:
        grid = tuner.fit()
        summary = summarize(grid, metric, args.kind, setup, out, time.perf_counter() - t0)
        status = "FINISHED"
    finally:
        if parent is not None:
            if status == "FINISHED":
                parent.log_metrics({f"best_{metric}": summary["best"]["score"]}, 0)
                for name in ("best.yaml", "trials.json", "results.md"):
                    parent.log_artifact(out / name)
            parent.finish(status)
    if parent is not None:
        summary["run_url"] = parent.run_url()
    return summary


def summarize(grid, metric: str, kind: str, setup: dict, out: Path, seconds: float) -> dict:
    """Every trial's final score; the best one's config written as ``best.yaml``."""
    rows = []
    for result in grid:
        if result.error is not None or not result.metrics:
            rows.append(
                {"trial": result.path and Path(result.path).name, "error": str(result.error)}
            )
            continue
        m = result.metrics
        rows.append(
            {
                "trial": m["trial_id"],
                "score": m[metric],
                "reports": m["training_iteration"],
                "params": result.config,
            }
        )
    scored = [r for r in rows if "score" in r]
    if not scored:
        raise RuntimeError(f"every trial failed; see {out / 'tune'}: {rows[:3]}")
    # Highest score; among ties, the trial that ran longest (ASHA kept it).
    best = max(scored, key=lambda r: (r["score"], r["reports"]))
    (out / "best.yaml").write_text(
        yaml.safe_dump(trial_config_yaml(kind, setup, best["params"]), sort_keys=False)
    )
    (out / "trials.json").write_text(json.dumps(rows, indent=2, default=str))
    table = markdown_table(rows, metric)
    (out / "results.md").write_text(table + "\n")
    print(table)
    print(f"best {metric} {best['score']:.3f} (trial {best['trial']}); config {out / 'best.yaml'}")
    return {"best": best, "trials": rows, "seconds": seconds, "out": str(out)}


def markdown_table(rows: list[dict], metric: str) -> str:
    keys = sorted({k for r in rows if "params" in r for k in r["params"]})
    lines = [f"| trial | {metric} | reports | " + " | ".join(keys) + " |"]
    lines.append("|---" * (3 + len(keys)) + "|")
    order = sorted(rows, key=lambda r: -r.get("score", float("-inf")))
    for r in order:
        if "params" not in r:
            lines.append(f"| {r['trial']} | failed | - |" + " - |" * len(keys))
            continue
        values = [_fmt(r["params"][k]) for k in keys]
        lines.append(
            f"| {r['trial']} | {r['score']:.3f} | {r['reports']} | " + " | ".join(values) + " |"
        )
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    return run_sweep(args)


if __name__ == "__main__":
    main()
