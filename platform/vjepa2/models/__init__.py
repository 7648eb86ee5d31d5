"""Networks: video ViT encoder, Phase-1 masked predictor, Phase-2 dynamics model."""

from vjepa2.models.dynamics import ActionEncoder, DynamicsModel
from vjepa2.models.encoder import VideoViT
from vjepa2.models.predictor import MaskedPredictor
from vjepa2.models.sizes import (
    ENCODER_SIZES,
    PREDICTOR_SIZES,
    PUBLISHED_PARAMS,
    encoder_config,
    predictor_config,
)

__all__ = [
    "ActionEncoder",
    "DynamicsModel",
    "ENCODER_SIZES",
    "PREDICTOR_SIZES",
    "PUBLISHED_PARAMS",
    "MaskedPredictor",
    "VideoViT",
    "encoder_config",
    "predictor_config",
]
