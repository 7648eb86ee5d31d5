"""Understanding probes: linear and attentive probes on the frozen Phase-1 encoder.

python -m jobs.probe --checkpoint runs/demo/pretrain/final.pt
python -m jobs.probe --checkpoint ... --set epochs=200 --set train_per_class=128 --no-mlflow

The task is TwoRoom direction of motion (8 classes, needs time: one frame says nothing). The
encoder from the checkpoint (its EMA target by default, as Phase 2 uses) and a randomly
initialised one with the same config are probed on the same clips. The table lands in the
terminal and ``<out>/results.md``, ``results.json`` beside it, and both in an MLflow run of
the ``vjepa2-eval`` experiment.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from jobs.cli import add_overrides, existing_file
from vjepa2.config import ConfigError, apply_overrides, to_dict
from vjepa2.eval.probes import (
    ProbeConfig,
    clip_frames,
    markdown_table,
    random_encoder,
    run_probes,
)
from vjepa2.eval.report import log_probes
from vjepa2.train.builders import load_pretrained
from vjepa2.train.checkpoint import CheckpointError


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--checkpoint", required=True, help="a Phase-1 checkpoint (pretrain final.pt)")
    p.add_argument("--out", help="results folder (default: probe/ beside the checkpoint)")
    add_overrides(p, help="e.g. epochs=200, train_per_class=128, encoder=online")
    p.add_argument("--tracking-uri", default="", help="MLflow store (default: the run's own)")
    p.add_argument("--no-mlflow", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    ckpt = existing_file(args.checkpoint)
    try:
        cfg = apply_overrides(ProbeConfig(), args.overrides)
    except (ConfigError, ValueError) as exc:
        raise SystemExit(f"config error: {exc}") from None
    try:
        vjepa, pre_cfg = load_pretrained(ckpt)
    except (CheckpointError, ConfigError) as exc:
        raise SystemExit(f"checkpoint error: {exc}") from None
    try:
        clip_frames(cfg, pre_cfg.encoder)  # fail before any work on a clip that cannot fit
    except ValueError as exc:
        raise SystemExit(f"config error: {exc}") from None
    out = Path(args.out) if args.out else ckpt.parent / "probe"
    out.mkdir(parents=True, exist_ok=True)

    encoders = {
        "pretrained": vjepa.target if cfg.encoder == "target" else vjepa.encoder,
        "random": random_encoder(pre_cfg.encoder, cfg.seed),
    }
    t0 = time.perf_counter()
    rows = run_probes(encoders, cfg, progress=not args.quiet)
    results = {
        "probes": rows,
        "config": to_dict(cfg),
        "checkpoint": str(ckpt),
        "seconds": time.perf_counter() - t0,
    }
    table = markdown_table(rows)
    header = (
        f"Direction of motion in TwoRoom (8 classes), {rows[0]['train_clips']} train / "
        f"{rows[0]['test_clips']} test clips, frozen {cfg.encoder} encoder of {ckpt}"
    )
    (out / "results.md").write_text(f"{header}\n\n{table}\n")
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\n{header}\n\n{table}\n\nresults in {out} ({results['seconds']:.0f} s)")
    if not args.no_mlflow:
        artifacts = [out / "results.md", out / "results.json"]
        print(f"MLflow: {log_probes(ckpt, results, artifacts, args.tracking_uri)}")
    return results


if __name__ == "__main__":
    main()
