"""Build models from job configs and from checkpoints (which carry their config)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from vjepa2.config.base import ConfigError, from_dict
from vjepa2.config.jobs import DynamicsTrainConfig, PretrainConfig
from vjepa2.jepa import VJEPA
from vjepa2.models.dynamics import DynamicsModel
from vjepa2.models.encoder import VideoViT
from vjepa2.train.checkpoint import load_checkpoint, load_state_strict
from vjepa2.world_model import WorldModel


def build_vjepa(cfg: PretrainConfig) -> VJEPA:
    return VJEPA(cfg.encoder, cfg.predictor, cfg.mask, cfg.ema, cfg.loss)


def load_pretrained(path: str | Path, map_location: str = "cpu") -> tuple[VJEPA, PretrainConfig]:
    """Rebuild a Phase-1 model from its checkpoint alone."""
    payload = load_checkpoint(path, kind="pretrain", map_location=map_location)
    cfg = from_dict(PretrainConfig, payload["config"])
    model = build_vjepa(cfg)
    load_state_strict(model, payload["state"]["model"], "Phase-1 model")
    return model, cfg


def resolve_dynamics_config(cfg: DynamicsTrainConfig, encoder: VideoViT) -> DynamicsTrainConfig:
    """Fill the dynamics model's state width and token count from the encoder (each view's
    grid, and the proprio token when the state has one)."""
    enc = encoder.cfg
    side, pool = enc.img_size // enc.patch_size, cfg.state.grid_pool
    if side % pool:
        raise ConfigError(
            f"state.grid_pool={pool} does not divide the encoder's {side}x{side} token grid "
            f"(img_size {enc.img_size} / patch_size {enc.patch_size})"
        )
    tokens = 1 if cfg.state.pooled else cfg.state.num_views * (side // pool) ** 2
    tokens += int(cfg.state.proprio)
    dyn = replace(cfg.dynamics, state_dim=enc.embed_dim, num_tokens=tokens)
    return replace(cfg, encoder=enc, dynamics=dyn)


def build_world_model(cfg: DynamicsTrainConfig) -> tuple[WorldModel, DynamicsTrainConfig]:
    """Frozen encoder (from the Phase-1 checkpoint, or random for the ablation) + dynamics.

    Returns the model and the resolved config (encoder and dynamics sizes filled in).
    """
    if cfg.encoder_checkpoint:
        vjepa, pre_cfg = load_pretrained(cfg.encoder_checkpoint)
        encoder = vjepa.target if cfg.state.encoder == "target" else vjepa.encoder
    else:
        encoder = VideoViT(cfg.encoder)
    resolved = resolve_dynamics_config(cfg, encoder)
    model = WorldModel(encoder, DynamicsModel(resolved.dynamics), resolved.state, resolved.loss)
    return model, resolved


def load_world_model(
    path: str | Path, map_location: str = "cpu"
) -> tuple[WorldModel, DynamicsTrainConfig]:
    """Rebuild a trained world model (encoder included) from a dynamics checkpoint alone."""
    payload = load_checkpoint(path, kind="dynamics", map_location=map_location)
    cfg = from_dict(DynamicsTrainConfig, payload["config"])
    encoder = VideoViT(cfg.encoder)
    model = WorldModel(encoder, DynamicsModel(cfg.dynamics), cfg.state, cfg.loss)
    load_state_strict(model, payload["state"]["model"], "world model")
    return model, cfg


def checkpoint_img_size(path: str | Path) -> int:
    """The frame size a dynamics checkpoint's encoder takes, from its config (no model built)."""
    payload = load_checkpoint(path, kind="dynamics")
    return int(from_dict(DynamicsTrainConfig, payload["config"]).encoder.img_size)
