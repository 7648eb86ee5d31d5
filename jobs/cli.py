"""Shared command-line handling: preset or YAML file, then dotted ``--set`` overrides."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vjepa2.config import ConfigError, apply_overrides, get_preset, load_yaml


def add_overrides(
    parser: argparse.ArgumentParser, flag: str = "--set", dest: str = "overrides", help: str = ""
) -> None:
    """A repeatable ``KEY=VALUE`` option collecting dotted config overrides."""
    parser.add_argument(
        flag,
        dest=dest,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=help or "dotted override, e.g. --set optim.lr=3e-4 (repeatable)",
    )


def existing_file(path: str | Path, what: str = "checkpoint") -> Path:
    """``path`` made absolute (Ray workers start elsewhere); exits with one line if it is
    not a file."""
    resolved = Path(path).resolve()
    if not resolved.is_file():
        raise SystemExit(f"{what} not found: {resolved}")
    return resolved


def config_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--preset", default="tiny", help="named preset (default: tiny)")
    parser.add_argument("--config", help="YAML config file (instead of a preset)")
    add_overrides(parser)
    parser.add_argument("--no-resume", action="store_true", help="ignore existing checkpoints")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--local",
        action="store_true",
        help="train in this process without Ray or MLflow (datasets decoded into memory)",
    )
    return parser


def resolve_config(job: str, args: argparse.Namespace, config_type: type) -> Any:
    """Preset (or YAML) plus overrides; exits with a one-line message on a bad config."""
    try:
        cfg = load_yaml(config_type, args.config) if args.config else get_preset(job, args.preset)
        return apply_overrides(cfg, args.overrides)
    except ConfigError as exc:
        raise SystemExit(f"config error: {exc}") from None


def run_training_job(job: str, description: str, config_type: type, argv: list[str] | None) -> None:
    """The whole of a training entrypoint: parse, resolve the config, train, report."""
    args = config_parser(description).parse_args(argv)
    cfg = resolve_config(job, args, config_type)
    if cfg.train.init_checkpoint:
        cfg.train.init_checkpoint = str(
            existing_file(cfg.train.init_checkpoint, "train.init_checkpoint")
        )
    resume, progress = not args.no_resume, not args.quiet
    if args.local:
        from vjepa2.train.local import run_local

        result = run_local(cfg, resume=resume, progress=progress)
        history, checkpoint, url = result.history, result.checkpoint, None
    else:
        from jobs.train_job import fit

        fitted = fit(cfg, resume=resume, progress=progress)
        history, checkpoint, url = fitted.history, fitted.checkpoint, fitted.run_url
    loss = history[-1]["loss"] if history else float("nan")
    print(f"{job}: final loss {loss:.4f}; checkpoint {checkpoint}")
    if history:
        from vjepa2.eval.plots import training_curves
        from vjepa2.train.metrics_log import curve_keys

        curves = Path(checkpoint).parent / "curves.png"  # <out>/<phase>/, beside final.pt
        training_curves({job: history}, curve_keys(history), curves)
        print(f"{job}: training curves {curves}")
    if url:
        print(f"{job}: MLflow run {url}")
