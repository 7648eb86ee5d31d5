"""The seed's ablations (table 9.4) in one command: train each variant, evaluate, tabulate.

python -m jobs.ablations --dataset runs/demo/data/tworoom            # tiny preset, all rows
python -m jobs.ablations --dataset ... --only full no_ema --episodes 50

Variants that keep the Phase-1 recipe share the full run's encoder; each row then trains its
own dynamics model and is scored by held-out rollout cos-sim (1/5/10 steps, beside the copy
baseline) and CEM planning success. Results: ``<out>/ablations.md``, ``ablations.json`` and
``ablations.png`` (error/copy by horizon, success bars), and one MLflow run of the
``vjepa2-eval`` experiment with every row's metrics; all rows train into one store
(``$MLFLOW_TRACKING_URI``, else ``<out>/mlflow.db``).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from jobs.cli import add_overrides
from jobs.train_job import fit
from vjepa2.config import apply_overrides, get_preset
from vjepa2.eval.planning import PlanningEvalConfig, evaluate_seeds, summarize
from vjepa2.eval.plots import ablation_curves
from vjepa2.eval.report import log_ablations
from vjepa2.eval.rollout import held_out_rollout_cosine
from vjepa2.train.builders import load_world_model

# name: (Phase-1 overrides or None for no Phase 1, Phase-2 overrides)
ABLATIONS: dict[str, tuple[list[str] | None, list[str]]] = {
    "full": ([], []),
    "no_phase1": (None, []),
    "no_ema": (["ema.enabled=false"], []),
    "larger_predictor": (
        [],
        ["dynamics.embed_dim=384", "dynamics.depth=4", "dynamics.num_heads=8"],
    ),
    "add_fusion": ([], ["dynamics.fusion=add"]),
    "multistep_h5": ([], ["loss.horizon=5"]),
}


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dataset", required=True, help="a video-action dataset (jobs.collect)")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--out", default="runs/ablations")
    p.add_argument("--only", nargs="+", choices=sorted(ABLATIONS), help="a subset of rows")
    p.add_argument("--episodes", type=int, default=20, help="planning episodes per row")
    add_overrides(p, help="overrides for both phases, e.g. train.steps=100")
    add_overrides(p, "--plan-set", "plan_overrides", "planning, e.g. cem.num_candidates=300")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--no-mlflow", action="store_true", help="no summary run in MLflow")
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    data = str(Path(args.dataset).resolve())
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{out / 'mlflow.db'}"
    common = [
        "data.source=dataset",
        f"data.dataset.path={data}",
        f"tracking.uri={uri}",
        *args.overrides,
    ]
    planning = apply_overrides(
        PlanningEvalConfig(episodes=args.episodes, agents=("cem",)), args.plan_overrides
    )
    seeds = [planning.seed + i for i in range(args.episodes)]
    rows, encoders, checkpoints = [], {}, []
    for name in args.only or list(ABLATIONS):
        pre_over, dyn_over = ABLATIONS[name]
        encoder = ""
        if pre_over is not None:
            key = tuple(pre_over)
            if key not in encoders:
                folder = out / ("full" if not pre_over else name)
                cfg = get_preset("pretrain", args.preset)
                cfg = apply_overrides(cfg, [*common, f"train.out_dir={folder}", *pre_over])
                encoders[key] = str(fit(cfg, progress=not args.quiet).checkpoint)
            encoder = encoders[key]
        dyn = apply_overrides(
            get_preset("dynamics", args.preset),
            [*common, f"train.out_dir={out / name}", f"encoder_checkpoint={encoder}", *dyn_over],
        )
        ckpt = fit(dyn, progress=not args.quiet).checkpoint
        checkpoints.append(Path(ckpt))
        model, model_cfg = load_world_model(ckpt)
        cos, held_out = held_out_rollout_cosine(model, data, model_cfg.data.dataset.frameskip)
        (success,) = summarize(evaluate_seeds(planning, seeds, str(ckpt)))
        rows.append({"ablation": name, "rollout_cosine": cos, "planning": success})
        print(f"{name}: cos@1 {cos['model'][1]:.4f}, success {success['success_rate']:.0%}")
    table = markdown(rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablations.md").write_text(table + "\n")
    (out / "ablations.json").write_text(json.dumps(rows, indent=2))
    figure = ablation_curves(rows, out / "ablations.png")
    print(f"\n{table}\n\nwritten to {out}")
    if not args.no_mlflow:
        files = [out / "ablations.md", out / "ablations.json", figure]
        print(f"MLflow: {log_ablations(checkpoints[0], rows, files, uri)}")
    return rows


def markdown(rows: list[dict]) -> str:
    # The horizons the episodes allowed at the preset's frameskip (1/5/10, or 1/5/8 at k=5).
    hs = list(rows[0]["rollout_cosine"]["model"]) if rows else [1, 5, 10]
    cols = "".join(f" cos@{k} |" for k in hs)
    lines = [
        f"| ablation |{cols} error/copy @{'/'.join(map(str, hs))} | planning success (95% CI) |",
        "|---|" + "---|" * len(hs) + "---|---|",
    ]
    for r in rows:
        c, s = r["rollout_cosine"], r["planning"]
        cos = " | ".join(f"{c['model'][k]:.4f}" for k in hs)
        err = " / ".join(f"{c['error_vs_copy'][k]:.2f}" for k in hs)
        lines.append(
            f"| {r['ablation']} | {cos} | {err} | {s['success_rate']:.0%} "
            f"({s['ci95_low']:.0%}-{s['ci95_high']:.0%}) |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
