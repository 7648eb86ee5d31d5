"""The seed's ablations (table 9.4) in one command: train each variant, evaluate, tabulate.

python -m jobs.ablations --dataset runs/demo/data/tworoom            # tiny preset, all rows
python -m jobs.ablations --dataset ... --only full no_ema --episodes 50
python -m jobs.ablations --dataset ... --dynamics-set state.pooled=false   # Phase 2 only
python -m jobs.ablations --dataset ... --train-seeds 3 --local    # 3 trainings a row, no Ray
python -m jobs.ablations --dataset ... --train-seeds 3 --only-seeds 2 --local  # the third only

Variants that keep the Phase-1 recipe share the full run's encoder; each row then trains its
own dynamics model and is scored by held-out rollout cos-sim (1/5/10 steps, beside the copy
baseline) and CEM planning success, its episodes fanned out like ``jobs.evaluate``'s (one Ray
task per episode, one per core; ``--local`` in-process) and logged to
``<out>/<row>/episodes.jsonl``. A rerun of the same command picks up where it stopped:
finished training runs are reused and only missing episodes are planned. Results:
``<out>/ablations.md``, ``ablations.json`` and ``ablations.png`` (error/copy by horizon,
success bars), and one MLflow run of the ``vjepa2-eval`` experiment with every row's metrics;
all rows train into one store (``$MLFLOW_TRACKING_URI``, else ``<out>/mlflow.db``).

``--train-seeds N`` trains every row N times (``train.seed`` plus 0..N-1 in both phases;
the first in ``<out>/<row>``, the n-th in ``<out>/<row>-seed<n>``) and plans the same
episodes with each: the table then gives each row's mean and spread and its paired
difference from ``full`` (``vjepa2.eval.ablation_table``), since one training per row cannot
tell a row's effect from run-to-run spread. ``--only-seeds I [I ...]`` trains, plans and
tabulates only those of the N trainings (0-based), so that several processes (or machines
sharing ``--out``) can each take their own trainings of a slow row; a last run over the
seeds they all finished then reuses every run and tabulates them together. Two processes
must not take the same (row, seed): both would write its run.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobs.cli import add_overrides
from jobs.evaluate import run_logged_episodes
from jobs.train_job import fit
from vjepa2.config import ConfigError, apply_overrides, get_preset
from vjepa2.config.jobs import DynamicsTrainConfig
from vjepa2.eval.ablation_table import aggregate, markdown
from vjepa2.eval.planning import PlanningEvalConfig, summarize
from vjepa2.eval.plots import ablation_curves
from vjepa2.eval.report import log_ablations
from vjepa2.eval.rollout import encoder_spread, held_out_rollout_cosine, load_episode_windows
from vjepa2.train.builders import load_world_model


def larger_predictor_overrides(cfg: DynamicsTrainConfig) -> list[str]:
    """The larger row's predictor: 4x the width of the row it ablates, at its depth.

    The seed widens its predictor 3.3x (1280 against 384). A fixed width would not be an
    ablation on every preset: 384 is 4x the tiny predictor but narrower than a ViT-L one.
    Heads double, so each head is twice as wide too (the seed's 1280 has 16 heads)."""
    width = cfg.dynamics.embed_dim or cfg.encoder.embed_dim  # unset: the state's width
    return [f"dynamics.embed_dim={4 * width}", f"dynamics.num_heads={2 * cfg.dynamics.num_heads}"]


# name: (Phase-1 overrides or None for no Phase 1, Phase-2 overrides: a list, or a function
# of the row's resolved config for a row defined relative to it)
ABLATIONS: dict[
    str, tuple[list[str] | None, list[str] | Callable[[DynamicsTrainConfig], list[str]]]
] = {
    "full": ([], []),
    "no_phase1": (None, []),
    "no_ema": (["ema.enabled=false"], []),
    "larger_predictor": ([], larger_predictor_overrides),
    "add_fusion": ([], ["dynamics.fusion=add"]),
    "multistep_h5": ([], ["loss.horizon=5"]),
}


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dataset", required=True, help="a video-action dataset (jobs.collect)")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--out", default="runs/ablations")
    p.add_argument("--only", nargs="+", choices=sorted(ABLATIONS), help="a subset of rows")
    p.add_argument(
        "--episodes", type=int, default=20, help="planning episodes per row (0: rollouts only)"
    )
    add_overrides(p, help="overrides for both phases, e.g. train.steps=100")
    add_overrides(p, "--pretrain-set", "pretrain_overrides", "Phase 1 only, e.g. ema.start=0.996")
    add_overrides(p, "--dynamics-set", "dynamics_overrides", "Phase 2 only, e.g. loss.horizon=3")
    add_overrides(p, "--plan-set", "plan_overrides", "planning, e.g. cem.num_candidates=300")
    p.add_argument(
        "--train-seeds", type=int, default=1, help="trainings per row (train.seed + 0..N-1)"
    )
    p.add_argument(
        "--only-seeds",
        type=int,
        nargs="+",
        metavar="I",
        help="only these of the --train-seeds trainings (0-based; default all)",
    )
    p.add_argument(
        "--local", action="store_true", help="train and plan in this process, without Ray"
    )
    p.add_argument("--no-resume", action="store_true", help="replan every row's episodes")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--no-mlflow", action="store_true", help="no summary run in MLflow")
    args = p.parse_args(argv)
    if args.episodes < 0:
        p.error("--episodes must be >= 0")
    if args.train_seeds < 1:
        p.error("--train-seeds must be >= 1")
    train_seeds = sorted(set(args.only_seeds or range(args.train_seeds)))
    if not all(0 <= i < args.train_seeds for i in train_seeds):
        p.error(f"--only-seeds must be in [0, {args.train_seeds - 1}] (--train-seeds N: 0..N-1)")
    out = Path(args.out).resolve()
    data = str(Path(args.dataset).resolve())
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{out / 'mlflow.db'}"
    common = [
        "data.source=dataset",
        f"data.dataset.path={data}",
        f"tracking.uri={uri}",
        *args.overrides,
    ]
    names = args.only or list(ABLATIONS)
    pre_common = [*common, *args.pretrain_overrides]
    dyn_common = [*common, *args.dynamics_overrides]

    def folder(name: str, seed: int) -> Path:
        return out / (name if seed == 0 else f"{name}-seed{seed}")

    def pretrain_cfg(name: str, seed: int) -> Any:
        recipe = ABLATIONS[name][0] or []
        run_dir = folder(name if recipe else "full", seed)
        overrides = [*pre_common, f"train.out_dir={run_dir}", *recipe]
        cfg = apply_overrides(get_preset("pretrain", args.preset), overrides)
        cfg.train.seed += seed  # the n-th training of a row: the user's train.seed plus n
        return cfg

    def dynamics_cfg(name: str, encoder: str, seed: int) -> Any:
        row = ABLATIONS[name][1]
        overrides = [
            *dyn_common, f"train.out_dir={folder(name, seed)}", f"encoder_checkpoint={encoder}",
            *([] if callable(row) else row),
        ]  # fmt: skip
        cfg = apply_overrides(get_preset("dynamics", args.preset), overrides)
        cfg = apply_overrides(cfg, row(cfg)) if callable(row) else cfg
        cfg.train.seed += seed
        return cfg

    def train(cfg: Any) -> Path:
        if args.local:
            from vjepa2.train.local import run_local

            return Path(run_local(cfg, progress=not args.quiet).checkpoint)
        return Path(fit(cfg, progress=not args.quiet).checkpoint)

    try:  # every row's configs, before minutes of training go into the first one
        planning = apply_overrides(
            PlanningEvalConfig(episodes=max(args.episodes, 1), agents=("cem",)),
            args.plan_overrides,
        )
        for name in names:
            if ABLATIONS[name][0] is not None:
                pretrain_cfg(name, 0)
            dynamics_cfg(name, "", 0)
    except (ConfigError, ValueError) as exc:
        raise SystemExit(f"config error: {exc}") from None
    seeds = [planning.seed + i for i in range(args.episodes)]
    runs, encoders, checkpoints = [], {}, []
    # Every run's encoder is measured on the same held-out frames: decode them once.
    spread_frames, _ = load_episode_windows(data, "val", num_frames=11)
    # Seed by seed, so a run cut short still has every row at the first seeds.
    for train_seed in train_seeds:
        for name in names:
            pre_over = ABLATIONS[name][0]
            encoder = ""
            if pre_over is not None:
                key = (tuple(pre_over), train_seed)
                if key not in encoders:
                    encoders[key] = str(train(pretrain_cfg(name, train_seed)))
                encoder = encoders[key]
            dyn = dynamics_cfg(name, encoder, train_seed)
            ckpt = train(dyn)
            checkpoints.append(ckpt)
            model, model_cfg = load_world_model(ckpt)
            cos, _ = held_out_rollout_cosine(model, data, model_cfg.data.dataset.frameskip)
            spread = encoder_spread(model, spread_frames)
            success, solved = None, {}
            if seeds:
                log = folder(name, train_seed) / "episodes.jsonl"
                episodes = run_logged_episodes(
                    planning, seeds, ckpt, args.local, log, not args.no_resume
                )
                (success,) = summarize(episodes)
                solved = {o.seed: bool(o.success) for o in episodes}
            runs.append(
                {
                    "ablation": name,
                    "train_seed": dyn.train.seed,
                    "rollout_cosine": cos,
                    "encoder": spread,
                    "planning": success,
                    "episode_success": solved,
                }
            )
            rate = f"{success['success_rate']:.0%}" if success else "not run"
            print(
                f"{name} (seed {dyn.train.seed}): error/copy@1 {cos['error_vs_copy'][1]:.2f}, "
                f"encoder eff. rank {spread['effective_rank']:.1f}, success {rate}"
            )
    rows = aggregate(runs)
    table = markdown(rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablations.md").write_text(table + "\n")
    (out / "ablations.json").write_text(json.dumps({"rows": rows, "runs": runs}, indent=2))
    figure = ablation_curves(rows, out / "ablations.png")
    print(f"\n{table}\n\nwritten to {out}")
    if not args.no_mlflow:
        files = [out / "ablations.md", out / "ablations.json", figure]
        print(f"MLflow: {log_ablations(checkpoints[0], rows, files, uri)}")
    return rows


if __name__ == "__main__":
    main()
