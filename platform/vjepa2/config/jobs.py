"""Job configs: each job's config nests the component configs of components.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from vjepa2.config.components import (
    DynamicsConfig,
    DynamicsLossConfig,
    EMAConfig,
    EncoderConfig,
    LossConfig,
    MaskConfig,
    OptimConfig,
    PredictorConfig,
    _check,
)


@dataclass
class SyntheticDataConfig:
    """Moving-shape videos made in memory: one shape steered by the actions, others drifting."""

    num_videos: int = 256
    num_shapes: int = 2
    max_speed: float = 3.0  # pixels per frame at |a| = 1
    seed: int = 0


@dataclass
class DataConfig:
    """Where clips or transitions come from."""

    source: Literal["synthetic"] = "synthetic"
    synthetic: SyntheticDataConfig = field(default_factory=SyntheticDataConfig)


@dataclass
class TrainConfig:
    """The training loop: length, batch, seed, logging and checkpoint cadence, device."""

    steps: int = 1000
    batch_size: int = 8
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 200
    out_dir: str = "runs/default"
    device: str = "auto"  # "auto" = cuda when available, else cpu
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto = bf16 autocast on GPU only

    def __post_init__(self) -> None:
        _check(self.steps >= 1, "train.steps must be >= 1")
        _check(self.batch_size >= 1, "train.batch_size must be >= 1")
        _check(self.log_every >= 1, "train.log_every must be >= 1")
        _check(self.checkpoint_every >= 1, "train.checkpoint_every must be >= 1")


@dataclass
class PretrainConfig:
    """Phase 1: masked latent prediction (V-JEPA)."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class StateConfig:
    """How frames become the latent states the dynamics model works on."""

    encoder: Literal["target", "online"] = "target"  # which Phase-1 encoder to freeze
    pooled: bool = True  # [B, D] mean over tokens; False keeps the [B, N, D] token grid
    layer_norm: bool = True  # parameter-free layer norm on states, as on Phase-1 targets


@dataclass
class DynamicsTrainConfig:
    """Phase 2: action-conditioned latent dynamics on a frozen encoder.

    ``dynamics.state_dim`` and ``dynamics.num_tokens`` are filled from the encoder when the
    model is built; the resolved values are what checkpoints record.
    """

    encoder_checkpoint: str = ""  # Phase-1 checkpoint; empty = random encoder (ablation)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)  # used without a checkpoint
    state: StateConfig = field(default_factory=StateConfig)
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    loss: DynamicsLossConfig = field(default_factory=DynamicsLossConfig)
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=1e-4, warmup_steps=10, weight_decay=0.01)
    )
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
