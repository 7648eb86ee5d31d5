"""The whole pipeline on the embedded default: Phase 1 -> Phase 2 -> evaluation.

python -m jobs.demo                      # tiny preset, runs/demo
python -m jobs.demo --set pretrain.train.steps=1000
"""

from __future__ import annotations

import argparse

from vjepa2.config import ConfigError, apply_overrides, get_preset
from vjepa2.pipeline import run_pipeline


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="pretrain.KEY=V or dynamics.KEY=V (repeatable)",
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    split: dict[str, list[str]] = {"pretrain": [], "dynamics": []}
    try:
        for item in args.overrides:
            job, _, rest = item.partition(".")
            if job not in split or not rest:
                raise ConfigError(f"override {item!r} must start with 'pretrain.' or 'dynamics.'")
            split[job].append(rest)
        pre = apply_overrides(get_preset("pretrain", args.preset), split["pretrain"])
        dyn = apply_overrides(get_preset("dynamics", args.preset), split["dynamics"])
    except ConfigError as exc:
        raise SystemExit(f"config error: {exc}") from None

    result = run_pipeline(pre, dyn, args.out, progress=not args.quiet)
    s = result.summary
    p, d, cos = s["pretrain"], s["dynamics"], s["rollout_cosine"]
    print("\n| stage | first loss | last loss | seconds |\n|---|---|---|---|")
    print(
        f"| Phase 1 pretrain | {p['loss_first']:.4f} | {p['loss_last']:.4f} | {p['seconds']:.0f} |"
    )
    print(
        f"| Phase 2 dynamics | {d['loss_first']:.4f} | {d['loss_last']:.4f} | {d['seconds']:.0f} |"
    )
    print(
        f"\nTarget embeddings: per-dim std {p['target_std_mean']:.4f} "
        f"(isotropic {p['target_std_isotropic']:.4f}), effective rank "
        f"{p['target_effective_rank']:.1f}"
    )
    print("\n| held-out rollout | 1 step | 5 steps | 10 steps |\n|---|---|---|---|")
    labels = {
        "model": "cos-sim, world model",
        "copy": "cos-sim, copy baseline (s_t)",
        "error_vs_copy": "squared error / copy's (< 1 beats copy)",
    }
    for name, label in labels.items():
        row = " | ".join(f"{cos[name][k]:.4f}" for k in (1, 5, 10))
        print(f"| {label} | {row} |")
    print(f"\nTotal {s['seconds_total']:.0f} s; summary written to {result.path}")


if __name__ == "__main__":
    main()
