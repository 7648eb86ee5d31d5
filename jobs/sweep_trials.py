"""What one Tune trial of each sweep runs, and the spaces they search.

A masking trial is a short Phase-1 run scored at every checkpoint by a probe's top-1 on
direction of motion (frozen target encoder; the attentive probe unless told otherwise); a CEM
trial plans validation episodes with a fixed world model, reporting success so far after each
chunk of episodes. Both report ``training_iteration``-numbered rows, which is what ASHA
compares trials on.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ray import tune

from vjepa2.config import from_dict, to_dict
from vjepa2.config.components import MaskBlockGroup
from vjepa2.config.jobs import PretrainConfig

MASKING_METRIC = "probe_top1"
CEM_METRIC = "success_rate"


def masking_space() -> dict[str, Any]:
    """Block count, spatial and temporal scale ranges and aspect-ratio spread (seed 4.5)."""
    return {
        "num_blocks_max": tune.choice([2, 4, 8]),
        "spatial_low": tune.uniform(0.05, 0.3),
        "spatial_high": tune.uniform(0.4, 0.9),
        "temporal_low": tune.choice([0.25, 0.5, 1.0]),
        "aspect_max": tune.uniform(1.0, 2.0),
    }


def cem_space() -> dict[str, Any]:
    return {
        "num_candidates": tune.choice([64, 128, 300]),
        "iterations": tune.choice([3, 5, 10]),
        "horizon": tune.choice([3, 5, 8]),
        "elite_frac": tune.uniform(0.05, 0.3),
        "init_std": tune.uniform(0.3, 1.5),
        "momentum": tune.uniform(0.0, 0.5),
        # The final state's distance to the goal, summed over the horizon (more shape where
        # the final-state energy is flat), or its minimum (a detour is not charged for the way).
        "cost": tune.choice(["final", "sum", "min"]),
    }


def mask_group(params: dict[str, Any]) -> MaskBlockGroup:
    """One block family from a masking trial's parameters."""
    top = int(params["num_blocks_max"])
    spread = float(params["aspect_max"])
    return MaskBlockGroup(
        num_blocks=(max(1, top // 2), top),
        spatial_scale=(float(params["spatial_low"]), float(params["spatial_high"])),
        temporal_scale=(float(params["temporal_low"]), 1.0),
        aspect_ratio=(1.0 / spread, spread),
    )


def with_mask(cfg: PretrainConfig, params: dict[str, Any]) -> PretrainConfig:
    return replace(cfg, mask=replace(cfg.mask, groups=[mask_group(params)]))


def with_cem(eval_cfg: Any, params: dict[str, Any]) -> Any:
    """A PlanningEvalConfig whose CEM settings are the trial's."""
    cem = replace(
        eval_cfg.cem,
        num_candidates=int(params["num_candidates"]),
        iterations=int(params["iterations"]),
        horizon=int(params["horizon"]),
        elite_frac=float(params["elite_frac"]),
        init_std=float(params["init_std"]),
        momentum=float(params["momentum"]),
        cost=str(params.get("cost", eval_cfg.cem.cost)),
    )
    return replace(eval_cfg, cem=cem)


def masking_trial(params: dict[str, Any], setup: dict[str, Any]) -> None:
    """A short Phase-1 run with the trial's masks; one report per checkpoint."""
    from vjepa2.eval.probes import ProbeConfig, run_probes
    from vjepa2.train.local import run_local

    base = from_dict(PretrainConfig, setup["base"])
    trial_dir = Path(setup["out"]) / "trials" / tune.get_context().get_trial_id()
    cfg = with_mask(base, params)
    cfg = replace(cfg, train=replace(cfg.train, out_dir=str(trial_dir)))
    probe_cfg = from_dict(ProbeConfig, setup["probe"])  # the first probe scores the trial

    def score(done: int, task, row: dict[str, float]) -> None:
        encoder = task.model.target.eval()
        top1 = run_probes({"trial": encoder}, probe_cfg)[0]["top1"]
        task.model.train()
        tune.report({MASKING_METRIC: top1, "loss": row.get("loss", float("nan")), "step": done})

    run_local(cfg, resume=False, progress=False, on_checkpoint=score)


def cem_trial(params: dict[str, Any], setup: dict[str, Any]) -> None:
    """Closed-loop planning with the trial's CEM settings; success so far after each chunk."""
    from vjepa2.eval.planning import PlanningEvalConfig, evaluate_seeds, summarize

    cfg = with_cem(from_dict(PlanningEvalConfig, setup["eval"]), params)
    cfg = replace(cfg, agents=("cem",))
    seeds = [cfg.seed + i for i in range(cfg.episodes)]
    chunks = max(1, min(int(setup["reports"]), len(seeds)))
    outcomes = []
    for n in range(chunks):
        part = seeds[n * len(seeds) // chunks : (n + 1) * len(seeds) // chunks]
        outcomes += evaluate_seeds(cfg, part, setup["checkpoint"])
        (row,) = summarize(outcomes)
        tune.report(
            {
                CEM_METRIC: row["success_rate"],
                "episodes": row["episodes"],
                "plan_s_per_step": row["plan_s_per_step"],
            }
        )


def trial_config_yaml(kind: str, setup: dict[str, Any], params: dict[str, Any]) -> dict:
    """The config a job takes (``--config``) with the best trial's settings in it."""
    if kind == "masking":
        return to_dict(with_mask(from_dict(PretrainConfig, setup["full"]), params))
    from vjepa2.eval.planning import PlanningEvalConfig

    tuned = with_cem(from_dict(PlanningEvalConfig, setup["eval"]), params)
    # Back to the protocol's episodes (count and seeds) for the evaluation proper.
    protocol = PlanningEvalConfig()
    return to_dict(replace(tuned, episodes=protocol.episodes, seed=protocol.seed))
