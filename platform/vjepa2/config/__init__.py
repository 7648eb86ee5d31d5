"""Typed configs: component dataclasses, job configs, presets, YAML and CLI overrides."""

from vjepa2.config.base import (
    ConfigError,
    apply_overrides,
    from_dict,
    load_yaml,
    save_yaml,
    to_dict,
)
from vjepa2.config.components import (
    DynamicsConfig,
    DynamicsLossConfig,
    EMAConfig,
    EncoderConfig,
    LossConfig,
    MaskBlockGroup,
    MaskConfig,
    OptimConfig,
    PredictorConfig,
)

__all__ = [
    "ConfigError",
    "DynamicsConfig",
    "DynamicsLossConfig",
    "EMAConfig",
    "EncoderConfig",
    "LossConfig",
    "MaskBlockGroup",
    "MaskConfig",
    "OptimConfig",
    "PredictorConfig",
    "apply_overrides",
    "from_dict",
    "load_yaml",
    "save_yaml",
    "to_dict",
]

from vjepa2.config.jobs import (  # noqa: E402
    ClusterConfig,
    DataConfig,
    DatasetSourceConfig,
    DynamicsTrainConfig,
    PretrainConfig,
    StateConfig,
    SyntheticDataConfig,
    TrackingConfig,
    TrainConfig,
)
from vjepa2.config.presets import PRESETS, get_preset  # noqa: E402

__all__ += [
    "PRESETS",
    "ClusterConfig",
    "DataConfig",
    "DatasetSourceConfig",
    "DynamicsTrainConfig",
    "PretrainConfig",
    "StateConfig",
    "SyntheticDataConfig",
    "TrackingConfig",
    "TrainConfig",
    "get_preset",
]
