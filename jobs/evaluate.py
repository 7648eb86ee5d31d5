"""Evaluate a world model: planning success (CEM + MPC) beside the baselines, and rollouts.

python -m jobs.evaluate --checkpoint runs/demo/dynamics/final.pt --episodes 50
python -m jobs.evaluate --checkpoint ... --dataset runs/demo/data/tworoom --set cem.iterations=3
python -m jobs.evaluate --checkpoint ... --config runs/sweeps/cem/best.yaml   # a CEM sweep's best
python -m jobs.evaluate --checkpoint a/final.pt --set "ensemble_checkpoints=[b/final.pt]" \
    --set cem.spread_weight=1.0   # plan with two models; penalise plans they disagree on

With --dataset, the BC policy (and the pixel-space world model, when asked for with
``--set "agents=[cem,pixel_wm]"``) train on its train split, once: ``<out>/bc.pt``,
``<out>/pixel_wm.pt``, unless their checkpoints are given; without a dataset they are
skipped. ``results.json`` also holds each planner's FLOPs per rollout step and the checkpoint.

Episodes fan out as Ray tasks (one per episode; ``--local`` runs in-process), with a
progress bar over episodes. Finished episodes land in ``<out>/episodes.jsonl`` as they end:
rerun the same command after an interruption and only the missing ones are planned
(``--no-resume`` starts over). The table lands in the terminal and ``<out>/results.md``, the
figures and ``results.json`` beside it, and all of it in an MLflow run of the ``vjepa2-eval``
experiment.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from jobs.cli import add_overrides, existing_file
from vjepa2.config import ConfigError, apply_overrides, load_yaml, to_dict
from vjepa2.eval.episode_log import EpisodeLog, fingerprint
from vjepa2.eval.planning import (
    PlanningEvalConfig,
    at_model_frame_size,
    check_energy_views,
    evaluate_seeds,
    markdown_table,
    rollout_step_flops,
    summarize,
    train_missing_baselines,
)
from vjepa2.eval.plots import cosine_vs_horizon, plan_audit_scatter, plan_strip, success_bars
from vjepa2.eval.report import log_evaluation, rollout_table
from vjepa2.planning import EpisodeOutcome


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--checkpoint", required=True, help="a dynamics checkpoint (final.pt)")
    p.add_argument("--config", help="evaluation YAML (e.g. a CEM sweep's best.yaml)")
    p.add_argument("--episodes", type=int, help="episodes (default: the config's, 50)")
    p.add_argument(
        "--dataset", help="video-action dataset: held-out rollout cos-sim, BC and pixel_wm training"
    )
    p.add_argument("--out", help="results folder (default: beside the checkpoint)")
    add_overrides(p, help="e.g. budget=50, goal_offset=25, cem.num_candidates=300")
    p.add_argument("--local", action="store_true", help="no Ray: episodes in this process")
    p.add_argument("--no-mlflow", action="store_true")
    p.add_argument(
        "--no-resume", action="store_true", help="ignore the episodes in <out>/episodes.jsonl"
    )
    args = p.parse_args(argv)
    ckpt = existing_file(args.checkpoint)
    try:
        cfg = load_yaml(PlanningEvalConfig, args.config) if args.config else PlanningEvalConfig()
        if args.episodes is not None:
            cfg = replace(cfg, episodes=args.episodes)
        cfg = apply_overrides(cfg, args.overrides)
    except (ConfigError, ValueError) as exc:
        raise SystemExit(f"config error: {exc}") from None
    ensemble = tuple(str(existing_file(c, "ensemble checkpoint")) for c in cfg.ensemble_checkpoints)
    cfg = replace(cfg, ensemble_checkpoints=ensemble)
    # Resolved here as well as per episode, so that results.json and the episode log's
    # fingerprint record the frame size the episodes were drawn at.
    cfg = at_model_frame_size(cfg, ckpt)
    try:
        check_energy_views(cfg, ckpt)
    except ValueError as exc:
        raise SystemExit(f"config error: {exc}") from None
    out = Path(args.out) if args.out else ckpt.parent / "eval"
    out.mkdir(parents=True, exist_ok=True)
    cfg = train_missing_baselines(cfg, args.dataset, out)

    t0 = time.perf_counter()
    results: dict = {"checkpoint": str(Path(ckpt).resolve()), "config": to_dict(cfg)}
    if args.dataset:  # first: seconds, not the planning's minutes, if it is going to fail
        from vjepa2.eval.rollout import held_out_rollout_cosine
        from vjepa2.train.builders import load_world_model

        model, model_cfg = load_world_model(ckpt)
        results["rollout_cosine"], results["held_out_episodes"] = held_out_rollout_cosine(
            model, args.dataset, model_cfg.data.dataset.frameskip
        )
    seeds = [cfg.seed + i for i in range(cfg.episodes)]
    outcomes = run_logged_episodes(
        cfg, seeds, ckpt, args.local, out / "episodes.jsonl", resume=not args.no_resume
    )
    rows = summarize(outcomes)
    results["planning"] = rows
    results["flops_per_step"] = flops = rollout_step_flops(cfg, str(ckpt))
    per_agent = ", ".join(f"{k} {v:,}" for k, v in flops.items())
    flops_line = f"FLOPs per rollout step: {per_agent or 'no planning agent'}"
    figures = [success_bars(rows, out / "success.png")]
    for o in outcomes:
        if o.frames:
            title = f"{o.agent}: {'success' if o.success else 'failure'}"
            figures.append(
                plan_strip(o.frames, o.goal_frame, out / f"plan_{o.agent}_{o.seed}.png", title)
            )
    if "rollout_cosine" in results:
        figures.append(cosine_vs_horizon(results["rollout_cosine"], out / "cosine.png"))
    audit_figure = plan_audit_scatter(outcomes, out / "plan_audit.png")
    if audit_figure is not None:
        figures.append(audit_figure)
    results["seconds"] = time.perf_counter() - t0
    table = markdown_table(rows)
    if "rollout_cosine" in results:
        table += "\n\n" + rollout_table(results["rollout_cosine"], results["held_out_episodes"])
    (out / "results.md").write_text(f"{table}\n\n{flops_line}\n")
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\n{table}\n\n{flops_line}\nresults and figures in {out} ({results['seconds']:.0f} s)")
    if not args.no_mlflow:
        print(f"MLflow: {log_evaluation(ckpt, results, [out / 'results.md', *figures])}")
    return results


def run_logged_episodes(
    cfg: PlanningEvalConfig,
    seeds: list[int],
    ckpt: str | Path,
    local: bool,
    log_path: str | Path,
    resume: bool = True,
) -> list[EpisodeOutcome]:
    """``run_episodes`` through an episode log: seeds already in ``log_path`` for this
    checkpoint and config are read back, only the others are planned, and each of those is
    appended as it finishes. Outcomes come back in ``seeds`` order."""
    log = EpisodeLog(log_path, fingerprint(ckpt, to_dict(cfg)))
    if not resume:
        log.clear()
    done = {s: o for s, o in log.load(cfg.agents).items() if s in seeds}
    if done:
        print(f"resuming: {len(done)} of {len(seeds)} episodes already in {log.path}")
    todo = [s for s in seeds if s not in done]
    fresh = run_episodes(cfg, todo, str(ckpt), local, on_episode=log.append) if todo else []
    by_seed = {**done, **{s: [o for o in fresh if o.seed == s] for s in todo}}
    return [o for s in seeds for o in by_seed[s]]


def run_episodes(
    cfg: PlanningEvalConfig,
    seeds: list[int],
    ckpt: str,
    local: bool,
    on_episode: Callable[[list[EpisodeOutcome]], None] | None = None,
) -> list[EpisodeOutcome]:
    """Every agent on every seed, one episode per call: in-process, or as Ray tasks (one CPU
    each, one per core at a time), with a progress bar over episodes either way.
    ``on_episode`` gets each episode's outcomes (all agents) as it finishes (the episode log),
    so an interruption keeps them. An episode takes seconds to minutes, so loading the models
    per episode costs little, and no core sits idle behind a long chunk."""
    from tqdm.auto import tqdm

    on_episode = on_episode or (lambda outcomes: None)
    bar = tqdm(total=len(seeds), desc="episodes", unit="ep")
    try:
        if local:
            outcomes = []
            for i, seed in enumerate(seeds):
                part = evaluate_seeds(cfg, [seed], ckpt, record=int(i == 0))
                on_episode(part)
                bar.update(1)
                outcomes += part
            return outcomes
        import ray

        from jobs.ray_runtime import compute_cpus, ensure_ray

        ensure_ray()
        task = ray.remote(num_cpus=1)(evaluate_seeds)
        # At most one episode per core in flight: its planning seconds are then real.
        limit, queue = compute_cpus(), list(enumerate(seeds))
        pending: list = []
        seed_of: dict = {}
        finished: dict[int, list[EpisodeOutcome]] = {}
        while queue or pending:
            while queue and len(pending) < limit:
                i, seed = queue.pop(0)
                ref = task.remote(cfg, [seed], ckpt, int(i == 0))
                pending.append(ref)
                seed_of[ref] = seed
            (done,), pending = ray.wait(pending, num_returns=1)
            finished[seed_of[done]] = part = ray.get(done)
            on_episode(part)
            bar.update(1)
        return [o for seed in seeds for o in finished[seed]]
    finally:
        bar.close()


if __name__ == "__main__":
    main()
