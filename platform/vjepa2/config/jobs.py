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
class DatasetSourceConfig:
    """A video-action dataset folder (``jobs.collect`` writes one), streamed by Ray Data."""

    path: str = ""  # local folder or any pyarrow filesystem URI
    # Further dataset folders whose episodes join ``path``'s: each is split on its own, and
    # all must record the same action width and live on one filesystem.
    extra_paths: tuple[str, ...] = ()
    split: str = "train"
    on_error: Literal["raise", "skip"] = "raise"
    frame_stride: int = 1  # Phase 1: frames between consecutive clip frames
    frameskip: int = 1  # Phase 2: frames between window frames (actions concatenated)
    decode_actors: int = 0  # 0: one per spare core
    shuffle_buffer: int = 256  # per-worker local shuffle of decoded samples (0: off)

    def __post_init__(self) -> None:
        _check(self.frame_stride >= 1, "data.dataset.frame_stride must be >= 1")
        _check(self.frameskip >= 1, "data.dataset.frameskip must be >= 1")
        _check(self.decode_actors >= 0, "data.dataset.decode_actors must be >= 0")
        _check(self.shuffle_buffer >= 0, "data.dataset.shuffle_buffer must be >= 0")
        extra = self.extra_paths
        # One folder given bare (``--set data.dataset.extra_paths=DIR``) is a list of one.
        self.extra_paths = (extra,) if isinstance(extra, str) else tuple(str(p) for p in extra)
        _check(
            all(self.extra_paths) and len(set(self.paths)) == len(self.paths),
            "data.dataset.extra_paths must be non-empty and differ from each other and from path",
        )

    @property
    def paths(self) -> tuple[str, ...]:
        """Every dataset folder the episodes come from: ``path``, then ``extra_paths``."""
        return (self.path, *self.extra_paths)


@dataclass
class DataConfig:
    """Where clips or transitions come from: made in memory, or a dataset on disk."""

    source: Literal["synthetic", "dataset"] = "synthetic"
    synthetic: SyntheticDataConfig = field(default_factory=SyntheticDataConfig)
    dataset: DatasetSourceConfig = field(default_factory=DatasetSourceConfig)

    def __post_init__(self) -> None:
        _check(
            self.source != "dataset" or bool(self.dataset.path),
            "data.source=dataset needs data.dataset.path",
        )


@dataclass
class ClusterConfig:
    """How a job runs under Ray Train: workers, resources, fault tolerance, storage."""

    num_workers: int = 1
    use_gpu: bool = False  # GPU workers use NCCL, CPU workers gloo
    cpus_per_worker: float = 1.0
    max_failures: int = 0  # worker-group restarts from the latest checkpoint
    storage_path: str = ""  # "" = <train.out_dir>/ray; any pyarrow URI (s3://...) on a cluster
    keep_checkpoints: int = 2  # newest checkpoints Ray keeps in storage

    def __post_init__(self) -> None:
        _check(self.num_workers >= 1, "cluster.num_workers must be >= 1")
        _check(self.cpus_per_worker > 0, "cluster.cpus_per_worker must be > 0")
        _check(self.max_failures >= -1, "cluster.max_failures must be >= -1 (-1: unlimited)")
        _check(self.keep_checkpoints >= 1, "cluster.keep_checkpoints must be >= 1")


@dataclass
class TrackingConfig:
    """MLflow: one run per job, logged by rank 0 only."""

    enabled: bool = True
    uri: str = ""  # "" = $MLFLOW_TRACKING_URI, else sqlite under train.out_dir
    experiment: str = "vjepa2"
    register_model: bool = True  # the final model lands in the MLflow model registry
    model_name: str = ""  # "" = vjepa2-<job kind>


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
    # Start from this checkpoint's weights (same phase, same shapes; the dynamics model's
    # encoder and fitted standardiser included) with a fresh optimizer and schedule: fine-
    # tuning on other data. Resuming the run's own checkpoint takes precedence.
    init_checkpoint: str = ""

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
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


@dataclass
class StateConfig:
    """How frames become the latent states the dynamics model works on."""

    encoder: Literal["target", "online"] = "target"  # which Phase-1 encoder to freeze
    pooled: bool = True  # [B, D] mean over tokens; False keeps the [B, N, D] token grid
    layer_norm: bool = True  # parameter-free layer norm on states, as on Phase-1 targets
    # Slow adaptation (seed 4.2): the encoder keeps training on the dynamics loss at
    # lr x adapt_lr_scale, and next-state targets come from its EMA at adapt_momentum.
    # False (the default) keeps it frozen: no gradient, eval mode, targets = inputs' encoder.
    adapt: bool = False
    adapt_lr_scale: float = 0.1
    adapt_momentum: float = 0.9999
    # Multi-scale states: the token grids of the frame Gaussian-blurred at each sigma (px of
    # the encoder's input) follow the plain frame's. A blurred agent reaches neighbouring
    # patches, so latent distance keeps falling as a prediction nears the goal from further
    # away (docs/results.md, energy landscape). () is the seed's plain state.
    blur_px: tuple[float, ...] = ()
    # False drops the plain frame's grid and keeps only the blurred ones: with exact
    # dynamics, the 16 px-blurred grid alone plans better than the plain grid beside it,
    # whose within-patch detail swamps the blurred grid's slope far from the goal.
    sharp_view: bool = True
    # Standardise every state per feature (token x channel) by its mean and spread over the
    # first standardize_batches training batches, then frozen (models/standardizer.py): the
    # small part of a frozen state that moves with the agent becomes unit-scale for the
    # dynamics model's inputs, its loss and the planning energy.
    standardize: bool = False
    standardize_batches: int = 50
    # Proprioception, as V-JEPA 2-AC feeds its end-effector state: these entries of the
    # environment's true state vector (the dataset's ``states`` column; a planning episode's
    # snapshots) join the state as one more token, standardised, so the dynamics model
    # predicts them and the planning energy compares them. () is the seed's frames-only state.
    proprio_dims: tuple[int, ...] = ()
    # The proprio token's share of the state's variance against the whole token grid's: 1.0
    # weighs the agent's own position as much as everything the frames show.
    proprio_weight: float = 1.0
    # Average each view's token grid over grid_pool x grid_pool patches before the layer
    # norm: an 8 px encoder's pooled 4x4 grid follows PushT's pose as closely as its 8x8 one
    # (Spearman 0.35 against 0.34; 16 px encoders 0.11-0.15), at a quarter of the tokens the
    # dynamics model and the planner pay for (docs/results.md, 2026-12-07 eighth).
    grid_pool: int = 1

    @property
    def proprio(self) -> bool:
        return bool(self.proprio_dims)

    @property
    def num_views(self) -> int:
        """Frames encoded per state: the plain one (unless dropped) and each blurred one."""
        return int(self.sharp_view) + len(self.blur_px)

    def __post_init__(self) -> None:
        self.blur_px = tuple(float(s) for s in self.blur_px)
        self.proprio_dims = tuple(int(i) for i in self.proprio_dims)
        _check(all(i >= 0 for i in self.proprio_dims), "state.proprio_dims must be >= 0")
        _check(
            len(set(self.proprio_dims)) == len(self.proprio_dims),
            "state.proprio_dims must not repeat an entry",
        )
        _check(self.proprio_weight > 0, "state.proprio_weight must be > 0")
        _check(self.grid_pool >= 1, "state.grid_pool must be >= 1")
        _check(
            not self.proprio_dims or (self.standardize and not self.pooled),
            "state.proprio_dims adds a token in standardised units: it needs "
            "state.standardize=true and state.pooled=false",
        )
        _check(all(s > 0 for s in self.blur_px), "state.blur_px sigmas must be > 0")
        _check(
            self.sharp_view or bool(self.blur_px),
            "state.sharp_view=false leaves no view: give state.blur_px sigmas",
        )
        _check(
            not (self.num_views > 1 and self.pooled),
            "state.blur_px stacks token grids: it needs state.pooled=false",
        )
        _check(self.adapt_lr_scale > 0, "state.adapt_lr_scale must be > 0")
        _check(self.standardize_batches >= 1, "state.standardize_batches must be >= 1")
        _check(0.0 <= self.adapt_momentum <= 1.0, "state.adapt_momentum must be in [0, 1]")


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
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
