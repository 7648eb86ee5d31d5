"""The whole method end to end in one process: Phase 1 -> Phase 2 -> prediction quality.

This is what ``python -m jobs.demo`` runs on a laptop. Each stage resumes from its own
checkpoints, so a rerun only does the work that is missing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from vjepa2.config.jobs import DynamicsTrainConfig, PretrainConfig
from vjepa2.data.synthetic import moving_shapes
from vjepa2.data.transforms import normalize_frames
from vjepa2.eval.rollout import rollout_cosine
from vjepa2.train.builders import load_world_model
from vjepa2.train.local import run_dynamics_training, run_pretraining


@dataclass
class PipelineResult:
    summary: dict
    path: Path


def run_pipeline(
    pretrain: PretrainConfig,
    dynamics: DynamicsTrainConfig,
    out_dir: str | Path,
    *,
    eval_videos: int = 64,
    progress: bool = True,
) -> PipelineResult:
    out = Path(out_dir)
    t0 = time.perf_counter()
    pretrain = replace(pretrain, train=replace(pretrain.train, out_dir=str(out)))
    pre = run_pretraining(pretrain, progress=progress)
    t_pre = time.perf_counter() - t0

    dynamics = replace(
        dynamics,
        encoder_checkpoint=str(pre.checkpoint),
        train=replace(dynamics.train, out_dir=str(out)),
    )
    dyn = run_dynamics_training(dynamics, progress=progress)
    t_dyn = time.perf_counter() - t0 - t_pre

    # Held-out videos: a seed the training data never used.
    model, cfg = load_world_model(dyn.checkpoint)
    held_out = moving_shapes(
        eval_videos,
        11,
        cfg.encoder.img_size,
        num_shapes=cfg.data.synthetic.num_shapes,
        max_speed=cfg.data.synthetic.max_speed,
        seed=cfg.data.synthetic.seed + 10_000,
    )
    frames = normalize_frames(torch.from_numpy(held_out.frames))
    cos = rollout_cosine(model, frames, torch.from_numpy(held_out.actions), (1, 5, 10))

    first_pre, last_pre = pre.history[0], pre.history[-1]
    summary = {
        "pretrain": {
            "checkpoint": str(pre.checkpoint),
            "loss_first": first_pre["loss"],
            "loss_last": last_pre["loss"],
            "target_std_mean": last_pre.get("target_std_mean"),
            "target_std_isotropic": last_pre.get("target_std_isotropic"),
            "target_effective_rank": last_pre.get("target_effective_rank"),
            "clips_per_s": last_pre["samples_per_s"],
            "seconds": t_pre,
        },
        "dynamics": {
            "checkpoint": str(dyn.checkpoint),
            "loss_first": dyn.history[0]["loss"],
            "loss_last": dyn.history[-1]["loss"],
            "seconds": t_dyn,
        },
        "rollout_cosine": cos,
        "seconds_total": time.perf_counter() - t0,
    }
    path = out / "summary.json"
    path.write_text(json.dumps(summary, indent=2))
    return PipelineResult(summary, path)
