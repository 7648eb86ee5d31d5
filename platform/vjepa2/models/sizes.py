"""Named model sizes and config builders for them.

Only the transformer shape lives here; input geometry (img_size, patch_size, frames) stays
the EncoderConfig default unless overridden, so a size name never silently changes the data.
"""

from __future__ import annotations

from typing import Any

from vjepa2.config.base import ConfigError
from vjepa2.config.components import EncoderConfig, PredictorConfig

ENCODER_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"embed_dim": 64, "depth": 4, "num_heads": 4, "mlp_ratio": 4.0},  # CI / laptop
    "small": {"embed_dim": 384, "depth": 12, "num_heads": 6, "mlp_ratio": 4.0},
    "base": {"embed_dim": 768, "depth": 12, "num_heads": 12, "mlp_ratio": 4.0},
    "vit_l": {"embed_dim": 1024, "depth": 24, "num_heads": 16, "mlp_ratio": 4.0},
    "vit_h": {"embed_dim": 1280, "depth": 32, "num_heads": 16, "mlp_ratio": 4.0},
    # ViT-g/14 shape (Zhai et al.): MLP hidden 6144 = 1408 * 48 / 11.
    "vit_g": {"embed_dim": 1408, "depth": 40, "num_heads": 22, "mlp_ratio": 48 / 11},
}

# Published encoder sizes the parameter counts are checked against: ViT-L/16 is ~300M
# (Dosovitskiy et al.; 304M with the tubelet patch embedding), ViT-H 632M per the seed,
# ViT-g ~1B (V-JEPA 2 paper).
PUBLISHED_PARAMS: dict[str, float] = {"vit_l": 304e6, "vit_h": 632e6, "vit_g": 1.01e9}

PREDICTOR_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"embed_dim": 32, "depth": 2, "num_heads": 4, "mlp_ratio": 4.0},
    "default": {"embed_dim": 384, "depth": 12, "num_heads": 12, "mlp_ratio": 4.0},  # seed 4.3
}


def _build(kind: str, table: dict[str, dict[str, Any]], cls: type, name: str, overrides: dict):
    if name not in table:
        raise ConfigError(f"unknown {kind} size {name!r}; valid sizes: {sorted(table)}")
    try:
        return cls(**{**table[name], **overrides})
    except TypeError as exc:
        # Dataclass init reports a misspelt override as a bare TypeError; name the culprit.
        raise ConfigError(f"bad {kind} override for size {name!r}: {exc}") from None


def encoder_config(name: str, **overrides: Any) -> EncoderConfig:
    """EncoderConfig for a named size; keyword overrides win (e.g. ``patch_size=8``)."""
    return _build("encoder", ENCODER_SIZES, EncoderConfig, name, overrides)


def predictor_config(name: str, **overrides: Any) -> PredictorConfig:
    """PredictorConfig for a named size; keyword overrides win."""
    return _build("predictor", PREDICTOR_SIZES, PredictorConfig, name, overrides)
