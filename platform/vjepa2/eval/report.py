"""Evaluation results into MLflow: one run of the ``vjepa2-eval`` experiment per evaluation."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vjepa2.tracking import Tracker


def start_eval_run(checkpoint: Path, prefix: str, uri: str = "") -> Tracker:
    """A new run of the ``vjepa2-eval`` experiment, named ``<prefix>-<training run>``.

    The store is ``uri``, else ``MLFLOW_TRACKING_URI``, else the training run's own (the
    SQLite file beside ``<run>/pretrain`` and ``<run>/dynamics``).
    """
    from vjepa2.tracking import Tracker, resolve_tracking_uri

    run_root = checkpoint.parent.parent
    return Tracker.start_or_resume(
        resolve_tracking_uri(uri, run_root),
        "vjepa2-eval",
        run_key=f"{checkpoint}@{time.time_ns()}",
        run_name=f"{prefix}-{run_root.name}",
    )


def log_evaluation(checkpoint: Path, results: dict, artifacts: list[Path]) -> str:
    """Params (checkpoint, protocol), per-agent success, planning time, plan audit and where
    failures ended, rollout cos-sim by horizon, and the files; returns where to look. The
    store is the training run's."""
    from vjepa2.tracking import flatten_params

    tracker = start_eval_run(checkpoint, "eval")
    tracker.log_params(flatten_params({"checkpoint": str(checkpoint), **results["config"]}))
    for r in results["planning"]:
        name = r["agent"]
        metrics = {f"{name}/success_rate": r["success_rate"]}
        metrics[f"{name}/plan_s_per_step"] = r["plan_s_per_step"]
        if r.get("audit"):
            metrics[f"{name}/over_promised_share"] = r["audit"]["over_promised_share"]
        for term, v in (r.get("failures_ended") or {}).items():
            metrics[f"{name}/failures_ended_{term}"] = v
        tracker.log_metrics(metrics, 0)
    for key, by_k in results.get("rollout_cosine", {}).items():
        for k, v in by_k.items():
            tracker.log_metrics({f"rollout_{key}": v}, int(k))
    for path in artifacts:
        tracker.log_artifact(path)
    tracker.finish()
    return tracker.run_url()


def log_probes(checkpoint: Path, results: dict, artifacts: list[Path], uri: str = "") -> str:
    """Params (checkpoint, probe protocol), test and train top-1 per (encoder, probe) and the
    files, as one ``vjepa2-eval`` run; returns where to look."""
    from vjepa2.tracking import flatten_params

    tracker = start_eval_run(checkpoint, "probe", uri)
    tracker.log_params(flatten_params({"checkpoint": str(checkpoint), **results["config"]}))
    for r in results["probes"]:
        name = f"{r['encoder']}/{r['probe']}"
        tracker.log_metrics({f"{name}/top1": r["top1"], f"{name}/train_top1": r["train_top1"]}, 0)
    for path in artifacts:
        tracker.log_artifact(path)
    tracker.finish()
    return tracker.run_url()


def log_ablations(checkpoint: Path, rows: list[dict], artifacts: list[Path], uri: str) -> str:
    """Per ablation row: cos-sim and error/copy by horizon, planning success and interval, as
    one ``vjepa2-eval`` run named after the full row's run folder; returns where to look."""
    tracker = start_eval_run(checkpoint, "ablations", uri)
    for r in rows:
        name, cos, plan = r["ablation"], r["rollout_cosine"], r["planning"]
        if plan:  # None for a rollouts-only run
            tracker.log_metrics(
                {
                    f"{name}/success_rate": plan["success_rate"],
                    f"{name}/ci95_low": plan["ci95_low"],
                    f"{name}/ci95_high": plan["ci95_high"],
                },
                0,
            )
        for k in cos["model"]:
            tracker.log_metrics(
                {
                    f"{name}/rollout_cos": cos["model"][k],
                    f"{name}/error_vs_copy": cos["error_vs_copy"][k],
                },
                int(k),
            )
    for path in artifacts:
        tracker.log_artifact(path)
    tracker.finish()
    return tracker.run_url()


def rollout_table(cos: dict, episodes: int) -> str:
    """Held-out rollout quality by horizon: cos-sim of the model and of the copy baseline,
    and the model's squared error relative to copy's and to the average future state's."""
    hs = list(cos["model"])  # 1/5/10 steps, fewer where the episodes are short for the frameskip
    steps = " | ".join(f"{k} step{'s' if str(k) != '1' else ''}" for k in hs)
    lines = [f"| {episodes} held-out episodes | {steps} |", "|---|" + "---|" * len(hs)]
    labels = {
        "model": "cos-sim, world model",
        "copy": "cos-sim, copy baseline (s_t)",
        "error_vs_copy": "squared error / copy's (< 1 beats copy)",
        "error_vs_mean": "squared error / the average state's (< 1 beats it)",
    }
    for key, label in labels.items():
        if key not in cos:  # results written before the average-state baseline existed
            continue
        row = " | ".join(f"{cos[key][k]:.4f}" for k in hs)
        lines.append(f"| {label} | {row} |")
    return "\n".join(lines)


def pipeline_report(s: dict) -> str:
    """The demo's tables: both phases' losses and throughput, collapse, rollouts, links."""
    lines: list[str] = []
    out = lines.append
    p, d = s["pretrain"], s["dynamics"]
    out("\n| stage | first loss | last loss | samples/s | data wait | seconds |")
    out("|---|---|---|---|---|---|")
    for name, st in (("Phase 1 pretrain", p), ("Phase 2 dynamics", d)):
        last = st["last"]
        # A reused run's seconds are this call's look-up, not its training time.
        took = "reused" if st.get("reused") else f"{st['seconds']:.0f}"
        out(
            f"| {name} | {st['first']['loss']:.4f} | {last['loss']:.4f} | "
            f"{last['samples_per_s']:.1f} | {last['data_wait_frac']:.0%} | {took} |"
        )
    last = p["last"]
    out(
        f"\nTarget embeddings: per-dim std {last['target_std_mean']:.4f} (isotropic "
        f"{last['target_std_isotropic']:.4f}), effective rank {last['target_effective_rank']:.1f}"
    )
    out("\n" + rollout_table(s["rollout_cosine"], s["held_out_episodes"]))
    if s.get("planning"):
        from vjepa2.eval.planning import markdown_table

        env = s.get("env", "TwoRoom")
        out(f"\nPlanning on {s['planning'][0]['episodes']} held-out {env} episodes (CEM + MPC):")
        out(markdown_table(s["planning"]))
    out(f"\nMLflow: pretrain {p['mlflow']}\n        dynamics {d['mlflow']}")
    out(f"Total {s['seconds_total']:.0f} s (data {s['dataset']['seconds']:.0f} s)")
    return "\n".join(lines)
