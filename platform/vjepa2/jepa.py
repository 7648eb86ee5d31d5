"""Phase-1 meta-architecture: encoder, EMA target encoder, predictor, masks and loss.

``VJEPA.forward(video)`` is the loss, so DDP (which wraps ``forward``) syncs its gradients;
``update_target(step, total_steps)`` moves the target encoder after each optimizer step.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from vjepa2.config.components import (
    EMAConfig,
    EncoderConfig,
    LossConfig,
    MaskConfig,
    PredictorConfig,
)
from vjepa2.ema import ema_update, momentum_at
from vjepa2.losses import latent_loss, normalize_targets, variance_covariance
from vjepa2.masks import MultiBlockMaskSampler
from vjepa2.models.encoder import VideoViT
from vjepa2.models.predictor import MaskedPredictor


class VJEPA(nn.Module):
    def __init__(
        self,
        encoder: EncoderConfig,
        predictor: PredictorConfig,
        mask: MaskConfig,
        ema: EMAConfig,
        loss: LossConfig,
    ) -> None:
        super().__init__()
        self.encoder_cfg, self.mask_cfg, self.ema_cfg, self.loss_cfg = encoder, mask, ema, loss
        self.encoder = VideoViT(encoder)
        self.predictor = MaskedPredictor(predictor, encoder)
        # Without EMA (the collapse ablation) the online encoder itself, under stop-gradient,
        # provides the targets, so no second copy is kept.
        self.target_encoder: VideoViT | None = None
        if ema.enabled:
            self.target_encoder = copy.deepcopy(self.encoder)
            self.target_encoder.requires_grad_(False)
        self._samplers: dict[tuple[int, int, int], MultiBlockMaskSampler] = {}

    def sampler(self, grid: tuple[int, int, int]) -> MultiBlockMaskSampler:
        if grid not in self._samplers:
            self._samplers[grid] = MultiBlockMaskSampler(self.mask_cfg, grid)
        return self._samplers[grid]

    @property
    def target(self) -> VideoViT:
        """The encoder whose outputs are the prediction targets (and Phase 2's states)."""
        return self.target_encoder if self.target_encoder is not None else self.encoder

    @torch.no_grad()
    def targets(self, video: Tensor) -> Tensor:
        z = self.target(video)
        return normalize_targets(z) if self.loss_cfg.layer_norm_targets else z

    def forward(
        self, video: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Masked latent prediction loss for normalised clips [B, C, T, H, W].

        Returns the loss and detached tensors for diagnostics: the target embeddings at the
        masked positions and the masked fraction per clip.
        """
        if video.dim() != 5:
            raise ValueError(f"expected clips [B, C, T, H, W], got {tuple(video.shape)}")
        b, _, t, h, w = video.shape
        grid = self.encoder.grid(t, h, w)
        masks = self.sampler(grid).sample(b, generator=generator, device=video.device)
        z_all = self.targets(video)
        index = masks.target_idx.unsqueeze(-1).expand(-1, -1, z_all.shape[-1])
        z_target = torch.gather(z_all, 1, index)
        context = self.encoder(video, keep=masks.context_idx)
        pred = self.predictor(context, masks.context_idx, masks.target_idx, grid)
        loss = latent_loss(pred, z_target, self.loss_cfg.kind)
        extras = {"targets": z_target.detach(), "masked_fraction": masks.masked_fraction}
        cfg = self.loss_cfg
        if cfg.variance_weight or cfg.covariance_weight:
            variance, covariance = variance_covariance(context, cfg.variance_target)
            loss = loss + cfg.variance_weight * variance + cfg.covariance_weight * covariance
            extras |= {"variance_loss": variance.detach(), "covariance_loss": covariance.detach()}
        return loss, extras

    def loss(self, video: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self(video, generator)[0]

    def update_target(self, step: int, total_steps: int) -> float:
        """EMA step for the target encoder; returns the momentum used (1.0 without EMA)."""
        if self.target_encoder is None:
            return 1.0
        tau = momentum_at(step, total_steps, self.ema_cfg)
        ema_update(self.target_encoder, self.encoder, tau)
        return tau
