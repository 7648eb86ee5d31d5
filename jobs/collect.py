"""Collect a video-action dataset from an environment, episodes fanned out as Ray tasks.

    python -m jobs.collect --env tworoom --episodes 200 --out data/tworoom
    python -m jobs.collect --env pusht --episodes 50 --steps 100 --img-size 96 --out data/pusht
    python -m jobs.collect --env gym:Pendulum-v1 --episodes 20 --out data/pendulum --local

Rerunning with the same settings resumes: episodes already in ``episodes.parquet`` are
skipped and the result equals an uninterrupted run. Connects to the cluster in ``RAY_ADDRESS``
(or a running local one), else starts an embedded Ray instance; ``--local`` runs without Ray.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import yaml

from vjepa2.config import ConfigError
from vjepa2.data.collect import CollectConfig, encode_batch
from vjepa2.data.collect_sink import CollectSummary, EpisodeSink, collect_local

MAX_EPISODES_PER_TASK = 16


def run_collect(cfg: CollectConfig, *, progress: bool = True) -> CollectSummary:
    """Collect ``cfg`` on Ray, storing episodes on this driver as tasks finish."""
    import ray

    if not ray.is_initialized():
        ray.init()  # RAY_ADDRESS or a running local cluster if there is one, else embedded
    workers = cfg.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    remote_batch = ray.remote(num_cpus=1)(encode_batch)
    with EpisodeSink(cfg, progress=progress) as sink:
        batches = split_batches(sink.missing, workers, cfg.episodes_per_task)
        cfg_ref = ray.put(cfg)
        pending: list[Any] = []
        try:
            while batches or pending:
                # At most `workers` tasks in flight: bounds memory and honours --workers.
                while batches and len(pending) < workers:
                    pending.append(remote_batch.remote(cfg_ref, batches.pop(0)))
                done, pending = ray.wait(pending, num_returns=1)
                for ep in ray.get(done[0]):
                    sink.put(ep)
        finally:
            for ref in pending:  # interrupted or failed: stop the rest, keep what arrived
                ray.cancel(ref)
    assert sink.summary is not None
    return sink.summary


def split_batches(indices: list[int], workers: int, per_task: int = 0) -> list[list[int]]:
    """Consecutive runs of ``indices``; by default ~4 tasks per worker (load balance) of at
    most ``MAX_EPISODES_PER_TASK`` episodes (results keep streaming in, flushes keep up)."""
    if not per_task:
        per_task = min(MAX_EPISODES_PER_TASK, max(1, math.ceil(len(indices) / (4 * workers))))
    return [indices[i : i + per_task] for i in range(0, len(indices), per_task)]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m jobs.collect",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = CollectConfig(out="-")
    p.add_argument("--out", required=True, help="dataset folder (local path or URI)")
    p.add_argument("--env", default=d.env, help="tworoom, pusht or gym:<env_id>")
    p.add_argument("--policy", default=d.policy, help="default, random, door_seeking, ...")
    p.add_argument("--episodes", type=int, default=d.episodes)
    p.add_argument("--steps", type=int, default=d.steps_per_episode, help="actions per episode")
    p.add_argument("--img-size", type=int, default=d.img_size)
    p.add_argument("--fps", type=int, default=d.fps)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--val-fraction", type=float, default=d.val_fraction)
    p.add_argument("--crf", type=int, default=d.crf, help="H.264 quality (lower = better)")
    p.add_argument("--workers", type=int, default=d.workers, help="0 = one per Ray CPU")
    p.add_argument("--episodes-per-task", type=int, default=d.episodes_per_task, help="0 = auto")
    p.add_argument("--flush-every", type=int, default=d.flush_every)
    for name in ("env", "policy"):
        p.add_argument(
            f"--{name}-kwarg",
            dest=f"{name}_kwargs",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help=f"{name} keyword (value parsed as YAML), repeatable",
        )
    p.add_argument("--local", action="store_true", help="run in this process, without Ray")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> CollectConfig:
    return CollectConfig(
        out=args.out,
        env=args.env,
        env_kwargs=parse_kwargs(args.env_kwargs),
        policy=args.policy,
        policy_kwargs=parse_kwargs(args.policy_kwargs),
        episodes=args.episodes,
        steps_per_episode=args.steps,
        img_size=args.img_size,
        fps=args.fps,
        seed=args.seed,
        val_fraction=args.val_fraction,
        crf=args.crf,
        workers=args.workers,
        episodes_per_task=args.episodes_per_task,
        flush_every=args.flush_every,
    )


def parse_kwargs(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"collect: {item!r} must look like KEY=VALUE")
        out[key.strip()] = yaml.safe_load(raw)
    return out


def main(argv: list[str] | None = None) -> CollectSummary:
    args = build_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
        if args.local:
            summary = collect_local(cfg, progress=not args.quiet)
        else:
            summary = run_collect(cfg, progress=not args.quiet)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"collect {cfg.out}: {summary.line()}")
    return summary


if __name__ == "__main__":
    main()
