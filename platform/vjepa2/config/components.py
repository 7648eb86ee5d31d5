"""Component configs: one small dataclass per moving part of the method.

Job configs (see ``jobs.py`` beside this file) nest these. ``__post_init__`` checks each
value at the boundary so a bad config fails when it is built, not deep inside training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


def _check(cond: bool, msg: str) -> None:
    if not cond:
        from vjepa2.config.base import ConfigError

        raise ConfigError(msg)


@dataclass
class EncoderConfig:
    """Video ViT encoder f_theta (seed 4.1). Sizes come from ``models.sizes.ENCODER_SIZES``."""

    img_size: int = 224  # default input side; positions are computed for any grid
    num_frames: int = 16
    patch_size: int = 16
    tubelet_size: int = 2
    in_chans: int = 3
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_path: float = 0.0
    pos_embed: Literal["sincos", "rope"] = "sincos"

    def __post_init__(self) -> None:
        _check(self.embed_dim % self.num_heads == 0, "encoder.embed_dim must divide by num_heads")
        _check(self.img_size % self.patch_size == 0, "encoder.img_size must divide by patch_size")
        _check(
            self.num_frames % self.tubelet_size == 0,
            "encoder.num_frames must divide by tubelet_size",
        )
        _check(0.0 <= self.drop_path < 1.0, "encoder.drop_path must be in [0, 1)")


@dataclass
class PredictorConfig:
    """Narrow Phase-1 predictor p_psi (seed 4.3)."""

    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    drop_path: float = 0.0

    def __post_init__(self) -> None:
        _check(self.embed_dim % self.num_heads == 0, "predictor.embed_dim must divide by num_heads")


@dataclass
class MaskBlockGroup:
    """One family of target blocks; each value is a (low, high) range sampled uniformly.

    spatial_scale is the fraction of the h x w grid area a block covers; temporal_scale the
    fraction of the temporal grid; aspect_ratio is height / width of the block.
    """

    num_blocks: tuple[int, int] = (4, 8)
    spatial_scale: tuple[float, float] = (0.15, 0.7)
    temporal_scale: tuple[float, float] = (0.4, 1.0)
    aspect_ratio: tuple[float, float] = (0.75, 1.5)

    def __post_init__(self) -> None:
        lo, hi = self.num_blocks
        _check(1 <= lo <= hi, "mask num_blocks must satisfy 1 <= low <= high")
        for name in ("spatial_scale", "temporal_scale"):
            lo_f, hi_f = getattr(self, name)
            _check(0.0 < lo_f <= hi_f <= 1.0, f"mask {name} must satisfy 0 < low <= high <= 1")
        lo_a, hi_a = self.aspect_ratio
        _check(0.0 < lo_a <= hi_a, "mask aspect_ratio must satisfy 0 < low <= high")


@dataclass
class MaskConfig:
    """Multi-block spatiotemporal masking (seed 4.5). The union of all blocks is the target."""

    groups: list[MaskBlockGroup] = field(default_factory=lambda: [MaskBlockGroup()])
    min_context: int = 4  # fewest context tokens a sample may keep; masks are redrawn below it
    # Rows of a batch must have equal context lengths, so every row is cut to the batch's
    # smallest context. That minimum is a tail value: at batch 256 the seed's ranges would mask
    # ~95%. Redrawing the rows below this quantile of context size keeps the masked fraction
    # training sees at ~81% at any batch size (0 disables the redraw).
    equalize_quantile: float = 0.25
    share_shapes: bool = False  # one block count/size per batch, positions per sample

    def __post_init__(self) -> None:
        _check(len(self.groups) >= 1, "mask.groups needs at least one group")
        _check(self.min_context >= 1, "mask.min_context must be >= 1")
        _check(0.0 <= self.equalize_quantile < 1.0, "mask.equalize_quantile must be in [0, 1)")

    @classmethod
    def seed(cls) -> MaskConfig:
        """The seed's scheme: M in [4, 8] blocks, scale [0.15, 0.7], time [0.4, 1.0]."""
        return cls()

    @classmethod
    def reference(cls) -> MaskConfig:
        """The reference repo's block sizes: 8 blocks at 0.15 plus 2 at 0.7, full time extent.

        Here the two groups form one union per clip; the reference repo draws them as two
        separate context/target pairs per clip.
        """
        return cls(
            groups=[
                MaskBlockGroup((8, 8), (0.15, 0.15), (1.0, 1.0), (0.75, 1.5)),
                MaskBlockGroup((2, 2), (0.7, 0.7), (1.0, 1.0), (0.75, 1.5)),
            ]
        )


@dataclass
class EMAConfig:
    """Target encoder momentum tau (seed 4.2). ``enabled=False`` uses the online encoder."""

    enabled: bool = True
    schedule: Literal["cosine", "constant"] = "cosine"
    start: float = 0.996
    end: float = 1.0

    def __post_init__(self) -> None:
        _check(0.0 <= self.start <= 1.0 and 0.0 <= self.end <= 1.0, "ema momenta must be in [0, 1]")


@dataclass
class LossConfig:
    """Latent regression loss (seed 4.6): L2 by default, L1 as in the reference repo."""

    kind: Literal["l2", "l1"] = "l2"
    layer_norm_targets: bool = True
    # Not in the seed (off by default): VICReg-style terms on the context encoder's output
    # tokens, against the partial collapse small, mostly static videos drive Phase 1 into
    # (target features that barely differ across clips). ``variance_weight`` scales a hinge
    # pushing every feature's std across tokens up to ``variance_target``;
    # ``covariance_weight`` scales the mean squared off-diagonal feature covariance.
    variance_weight: float = 0.0
    variance_target: float = 1.0
    covariance_weight: float = 0.0

    def __post_init__(self) -> None:
        _check(
            self.variance_weight >= 0 and self.covariance_weight >= 0 and self.variance_target > 0,
            "loss.variance_weight and loss.covariance_weight must be >= 0, variance_target > 0",
        )


@dataclass
class OptimConfig:
    """AdamW with linear warmup then cosine decay (seed section 5)."""

    lr: float = 1.5e-4
    min_lr: float = 1e-6
    warmup_lr: float = 0.0  # lr at step 0; rises linearly to ``lr`` over warmup_steps
    warmup_steps: int = 40
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    grad_accum_steps: int = 1

    def __post_init__(self) -> None:
        _check(self.lr > 0, "optim.lr must be > 0")
        _check(0 <= self.min_lr <= self.lr, "optim.min_lr must be in [0, lr]")
        _check(self.warmup_steps >= 0, "optim.warmup_steps must be >= 0")
        _check(self.weight_decay >= 0, "optim.weight_decay must be >= 0")
        _check(self.grad_clip >= 0, "optim.grad_clip must be >= 0")
        _check(self.grad_accum_steps >= 1, "optim.grad_accum_steps must be >= 1")


@dataclass
class DynamicsConfig:
    """Action-conditioned latent dynamics g_phi (seed 4.4).

    ``state_dim`` is the encoder width D. ``num_tokens`` is tokens per state (N; 1 for a pooled
    state [B, D]). ``embed_dim`` 0 means "match state_dim" as in the seed's table.
    """

    state_dim: int = 1024
    num_tokens: int = 1
    action_dim: int = 2
    embed_dim: int = 0
    depth: int = 6
    num_heads: int = 16
    mlp_ratio: float = 4.0
    fusion: Literal["token", "add", "cross"] = "token"
    action_hidden: int = 256
    action_layers: int = 2
    action_tokens: int = 4  # context tokens the action becomes under "cross" fusion
    residual: bool = True  # predict s_{t+1} - s_t, added back to s_t
    drop_path: float = 0.0

    @property
    def width(self) -> int:
        return self.embed_dim or self.state_dim

    def __post_init__(self) -> None:
        _check(self.num_tokens >= 1, "dynamics.num_tokens must be >= 1")
        _check(self.action_dim >= 1, "dynamics.action_dim must be >= 1")
        _check(self.depth >= 1, "dynamics.depth must be >= 1")
        _check(self.action_layers >= 1, "dynamics.action_layers must be >= 1")
        _check(self.action_tokens >= 1, "dynamics.action_tokens must be >= 1")
        _check(self.width % self.num_heads == 0, "dynamics width must divide by num_heads")


@dataclass
class DynamicsLossConfig:
    """Next-state loss; horizon > 1 adds the discounted multi-step rollout loss (seed 4.6)."""

    kind: Literal["l2", "l1"] = "l2"
    horizon: int = 1
    discount: float = 1.0

    def __post_init__(self) -> None:
        _check(self.horizon >= 1, "loss.horizon must be >= 1")
        _check(0.0 < self.discount <= 1.0, "loss.discount must be in (0, 1]")
