"""Named presets: plain functions returning a full job config.

``tiny`` runs on a laptop CPU in minutes and is what CI uses; ``tworoom_small`` is the
TwoRoom world model that plans at 90% (about 10 minutes of CPU training) and
``pusht_small`` PushT's best recipe so far (38%, about 87 minutes); ``tworoom`` and
``pusht`` are sized for a few hours on CPU (minutes on a GPU) toward the seed's planning
targets; the others carry the seed's hyperparameters (section 5) at real sizes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vjepa2.config.base import ConfigError
from vjepa2.config.components import (
    DynamicsConfig,
    EMAConfig,
    EncoderConfig,
    MaskConfig,
    OptimConfig,
    PredictorConfig,
)
from vjepa2.config.jobs import (
    DataConfig,
    DatasetSourceConfig,
    DynamicsTrainConfig,
    PretrainConfig,
    SyntheticDataConfig,
    TrainConfig,
)


def _tiny_encoder() -> EncoderConfig:
    return EncoderConfig(
        img_size=64,
        num_frames=8,
        patch_size=16,
        tubelet_size=2,
        embed_dim=96,
        depth=4,
        num_heads=4,
    )


def pretrain_tiny() -> PretrainConfig:
    return PretrainConfig(
        encoder=_tiny_encoder(),
        predictor=PredictorConfig(embed_dim=48, depth=2, num_heads=4),
        mask=MaskConfig.seed(),
        ema=EMAConfig(start=0.99, end=1.0),
        optim=OptimConfig(lr=1e-3, min_lr=1e-5, warmup_steps=20, weight_decay=0.05),
        data=DataConfig(synthetic=SyntheticDataConfig(num_videos=128)),
        train=TrainConfig(
            steps=300, batch_size=16, log_every=10, checkpoint_every=100, out_dir="runs/tiny"
        ),
    )


def pretrain_vit_l() -> PretrainConfig:
    return PretrainConfig(
        encoder=EncoderConfig(embed_dim=1024, depth=24, num_heads=16),
        predictor=PredictorConfig(),
        optim=OptimConfig(lr=1.5e-4, weight_decay=0.05, warmup_steps=40 * 1000),
        train=TrainConfig(steps=300 * 1000, batch_size=2048, out_dir="runs/vit_l"),
    )


def pretrain_vit_h() -> PretrainConfig:
    cfg = pretrain_vit_l()
    cfg.encoder = EncoderConfig(embed_dim=1280, depth=32, num_heads=16)
    cfg.train.out_dir = "runs/vit_h"
    return cfg


def dynamics_tiny() -> DynamicsTrainConfig:
    return DynamicsTrainConfig(
        encoder=_tiny_encoder(),
        dynamics=DynamicsConfig(action_dim=2, depth=2, num_heads=4, action_hidden=64),
        optim=OptimConfig(lr=1e-3, min_lr=1e-5, warmup_steps=20, weight_decay=0.01),
        data=DataConfig(synthetic=SyntheticDataConfig(num_videos=128)),
        train=TrainConfig(
            steps=300, batch_size=32, log_every=10, checkpoint_every=100, out_dir="runs/tiny"
        ),
    )


def dynamics_vit_h() -> DynamicsTrainConfig:
    return DynamicsTrainConfig(
        encoder=EncoderConfig(embed_dim=1280, depth=32, num_heads=16),
        dynamics=DynamicsConfig(action_dim=7, depth=12, num_heads=16),
        train=TrainConfig(steps=100 * 1000, batch_size=256, out_dir="runs/vit_h"),
    )


def _env_encoder() -> EncoderConfig:
    # 8 px patches: an 8x8 grid per frame pair, so a 2-3 px agent or block move changes a
    # token's content rather than a sixteenth of one (the tiny preset's 16 px patches).
    return EncoderConfig(
        img_size=64, num_frames=8, patch_size=8, tubelet_size=2, embed_dim=128, depth=6,
        num_heads=4,
    )  # fmt: skip


def _env_data(env: str) -> DataConfig:
    # Where ``jobs.demo --env <env> --out runs/<env>`` collects it.
    return DataConfig(source="dataset", dataset=DatasetSourceConfig(path=f"runs/{env}/data/{env}"))


def _pretrain_env(env: str, steps: int) -> PretrainConfig:
    cfg = PretrainConfig(
        encoder=_env_encoder(),
        predictor=PredictorConfig(embed_dim=64, depth=4, num_heads=4),
        mask=MaskConfig.seed(),
        ema=EMAConfig(start=0.996, end=1.0),
        optim=OptimConfig(lr=5e-4, min_lr=1e-5, warmup_steps=steps // 20, weight_decay=0.05),
        data=_env_data(env),
        train=TrainConfig(
            steps=steps, batch_size=16, log_every=50, checkpoint_every=500, out_dir=f"runs/{env}"
        ),
    )
    return _spread_features(cfg)


def _dynamics_env(env: str, steps: int) -> DynamicsTrainConfig:
    cfg = DynamicsTrainConfig(
        encoder=_env_encoder(),
        dynamics=DynamicsConfig(action_dim=2, depth=4, num_heads=4, action_hidden=128),
        optim=OptimConfig(lr=5e-4, min_lr=1e-5, warmup_steps=steps // 20, weight_decay=0.01),
        data=_env_data(env),
        train=TrainConfig(
            steps=steps, batch_size=32, log_every=50, checkpoint_every=500, out_dir=f"runs/{env}"
        ),
    )
    return _planning_state(cfg)


def _planning_state(cfg: DynamicsTrainConfig) -> DynamicsTrainConfig:
    # The token grid, not the mean token: latent distance to the goal then finds the goal
    # frame among an episode's frames (docs/results.md, 2026-12-01 probes); 3-step rollouts
    # in the loss keep multi-step predictions on the states' manifold.
    cfg.state.pooled = False
    cfg.loss.horizon = 3
    # Five raw actions per model step, so the evaluation's CEM horizon of 5 spans 25 steps:
    # the protocol's goals lie 25 policy steps away (median 37 px on TwoRoom, 39 of 50
    # through the door), beyond a 5-step plan's 10 px reach.
    cfg.data.dataset.frameskip = 5
    cfg.dynamics.action_dim = 10
    return cfg


def _small_run(cfg: Any, steps: int, env: str = "tworoom") -> Any:
    # Where ``jobs.demo --env <env> --preset <env>_small --out runs/<env>_small`` collects it.
    cfg.data = DataConfig(
        source="dataset", dataset=DatasetSourceConfig(path=f"runs/{env}_small/data/{env}")
    )
    cfg.train.steps, cfg.train.checkpoint_every = steps, 500
    cfg.train.out_dir = f"runs/{env}_small"
    return cfg


def pretrain_small(env: str) -> PretrainConfig:
    """The tiny encoder with the opt-in variance/covariance terms, 600 steps (2 min on CPU):
    Phase 1 of both ``*_small`` recipes."""
    return _spread_features(_small_run(pretrain_tiny(), 600, env))


def _spread_features(cfg: PretrainConfig) -> PretrainConfig:
    # Without them the target features of these small encoders on one environment's videos
    # shrink to a per-dimension std of ~0.002 and the world model's states barely move; at
    # weight 1 every world model that planned well was trained on such an encoder
    # (docs/results.md, 2026-12-02 onward).
    cfg.loss.variance_weight, cfg.loss.covariance_weight = 1.0, 1.0
    return cfg


def dynamics_tworoom_small() -> DynamicsTrainConfig:
    """The TwoRoom world model of docs/results.md 2026-12-05 (90% under the protocol): the tiny
    encoder, a depth-4 predictor on the 16 px-blurred, standardised token grid, 3000 steps
    (7 min on 2 CPU cores). Train it on data with wall contact (``jobs.demo`` collects it)."""
    cfg = _small_run(dynamics_tiny(), 3000)
    cfg.dynamics.depth, cfg.dynamics.action_hidden = 4, 128
    return _blurred_state(_planning_state(cfg), 16.0)


def dynamics_pusht_small() -> DynamicsTrainConfig:
    """The PushT world model of docs/results.md 2026-12-07 (the best PushT figure so far):
    the tiny encoder, a depth-6 predictor of width 192 on the plain and the 12 px-blurred
    standardised grids with the agent's position as a state token, 12000 steps (87 min on 2
    CPU cores). Blurred alone, the grid's energy has a valley along the block's turns (a
    30-degree turn costs 0.11x a 20 px move); the plain grid beside it removes the valley
    (1.10x), and the proprio token restores the agent the blur erases."""
    cfg = _small_run(dynamics_tiny(), 12000, "pusht")
    cfg.dynamics.action_hidden = 128
    return _pusht_state(_planning_state(cfg))


def _pusht_state(cfg: DynamicsTrainConfig) -> DynamicsTrainConfig:
    # What every PushT model since 2026-12-06 has shared, the best (pusht_small) included.
    cfg.dynamics.depth = 6
    # At the tiny encoder's own width (96) the predictor underfit the plain grid (held-out
    # cos-sim 0.55 five steps ahead, 0.65 at 192) and planned at 26% against 38%
    # (docs/results.md, 2026-12-06 seventh and 2026-12-07); twice the steps at 96 did not
    # close that gap. On the 8 px encoder's 129 tokens 256 wide would cost 1.7x the step time
    # of 192 on CPU (docs/results.md, 2026-12-07 seventh).
    cfg.dynamics.embed_dim = 192
    cfg = _blurred_state(cfg, 12.0)
    cfg.state.sharp_view = True
    cfg.state.proprio_dims = (0, 1)  # PushT's true state starts with the agent's x, y
    # A 20 px agent move then costs about what a 20 px block move costs in the blurred
    # grid's energy (docs/results.md, eighth: "Calibrating the weight").
    cfg.state.proprio_weight = 4.0
    return cfg


def _blurred_state(cfg: DynamicsTrainConfig, sigma_px: float) -> DynamicsTrainConfig:
    # TwoRoom's agent is a 4 px dot: the plain grid's distance to the goal is flat beyond one
    # patch, and CEM sees no slope. The grid of the frame blurred at 16 px alone reached 60%
    # with exact dynamics and 28% with a learned model, against 24% and 12% for the plain
    # grid (docs/results.md, 2026-12-03 later). PushT keeps the plain grid: blurred at 12 px
    # its small agent weighs 0.03x a block move in the energy, and a predictor on that grid
    # planned at 0%; the plain grid's own energy plans at 60% on exact dynamics, the true
    # pose at 80% (docs/results.md, 2026-12-05 fifth and sixth).
    cfg.state.blur_px = (sigma_px,)
    cfg.state.sharp_view = False
    # The blurred agent moves the state by ~0.1% of its norm; standardised per feature it is
    # unit-scale for the predictor (error/copy at 5 steps 0.79 -> 0.03, docs/results.md,
    # 2026-12-05).
    cfg.state.standardize = True
    return cfg


PRESETS: dict[str, dict[str, Callable[[], Any]]] = {
    "pretrain": {
        "tiny": pretrain_tiny,
        "tworoom": lambda: _pretrain_env("tworoom", 6000),
        "tworoom_small": lambda: pretrain_small("tworoom"),
        "pusht": lambda: _pretrain_env("pusht", 8000),
        "pusht_small": lambda: pretrain_small("pusht"),
        "vit_l": pretrain_vit_l,
        "vit_h": pretrain_vit_h,
    },
    "dynamics": {
        "tiny": dynamics_tiny,
        "tworoom": lambda: _blurred_state(_dynamics_env("tworoom", 4000), 16.0),
        "tworoom_small": dynamics_tworoom_small,
        "pusht": lambda: _pusht_state(_dynamics_env("pusht", 6000)),
        "pusht_small": dynamics_pusht_small,
        "vit_h": dynamics_vit_h,
    },
}


def get_preset(job: str, name: str) -> Any:
    if job not in PRESETS:
        raise ConfigError(f"unknown job {job!r}; valid jobs: {sorted(PRESETS)}")
    if name not in PRESETS[job]:
        raise ConfigError(f"unknown {job} preset {name!r}; valid presets: {sorted(PRESETS[job])}")
    return PRESETS[job][name]()
