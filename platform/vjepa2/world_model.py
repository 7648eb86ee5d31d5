"""Phase-2 meta-architecture: the Phase-1 encoder plus the action-conditioned dynamics model.

It owns how frames become states (``encode``), one-step and rolled-out prediction
(``step`` / ``rollout``) and the training loss (``forward``). By default the encoder is
frozen: no gradient, eval mode, run under ``no_grad``. With ``state.adapt`` it adapts
slowly (seed 4.2): it trains on the dynamics loss at a reduced learning rate while an EMA copy
(``target_encoder``, momentum ``state.adapt_momentum``) encodes the next-state targets;
``encode`` (planning, evaluation) uses the adapting encoder.

With ``state.standardize`` every state, the dynamics model's inputs and targets and the
planning energy's operands alike, is standardised per feature by statistics fitted on the
first training batches (``models/standardizer.py``).

With ``state.proprio_dims`` the state gains one token after the grid: the agent's own
proprioception (those entries of the environment's true state vector), standardised by its own
fitted statistics, scaled so that its variance is ``state.proprio_weight`` times the grid's,
and zero-padded to the token width. The dynamics model predicts it like any token, and the
planning energy compares it, so a frame that barely shows the agent still plans with it.
Every ``encode`` and ``forward`` of such a model then takes the proprio beside the frames.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vjepa2.config.components import DynamicsLossConfig, OptimConfig
from vjepa2.config.jobs import StateConfig
from vjepa2.data.transforms import gaussian_blur
from vjepa2.ema import ema_update
from vjepa2.losses import latent_loss, multistep_loss, normalize_targets
from vjepa2.models.dynamics import DynamicsModel
from vjepa2.models.encoder import VideoViT
from vjepa2.models.standardizer import StateStandardizer
from vjepa2.optim import param_groups


def pool_token_grid(tokens: Tensor, k: int) -> Tensor:
    """One frame's tokens [B, side*side, D] (raster order) averaged over k x k blocks of the
    grid: [B, (side/k)^2, D], raster order kept; unchanged at k = 1."""
    if k == 1:
        return tokens
    b, n, d = tokens.shape
    side = math.isqrt(n)
    if side * side != n or side % k:
        raise ValueError(f"{n} tokens are not a square grid whose side divides by {k}")
    grid = tokens.transpose(1, 2).reshape(b, d, side, side)
    return F.avg_pool2d(grid, k).flatten(2).transpose(1, 2)


class WorldModel(nn.Module):
    def __init__(
        self,
        encoder: VideoViT,
        dynamics: DynamicsModel,
        state: StateConfig,
        loss: DynamicsLossConfig,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.adapt = state.adapt
        self.target_encoder: VideoViT | None = None
        if self.adapt:
            self.target_encoder = copy.deepcopy(encoder).requires_grad_(False).eval()
        self.encoder.requires_grad_(self.adapt)
        self.encoder.eval()
        self.dynamics = dynamics
        self.state_cfg, self.loss_cfg = state, loss
        self.standardizer: StateStandardizer | None = None
        self.proprio_dims = state.proprio_dims
        grid_tokens = dynamics.num_tokens - int(state.proprio)
        if state.standardize:
            n, d = grid_tokens, dynamics.state_dim
            shape = (d,) if state.pooled else (n, d)
            self.standardizer = StateStandardizer(shape, fit_batches=state.standardize_batches)
        self.proprio_standardizer: StateStandardizer | None = None
        if state.proprio:
            if len(self.proprio_dims) > dynamics.state_dim or grid_tokens < 1:
                raise ValueError(
                    f"state.proprio_dims {self.proprio_dims} need a token of at least "
                    f"{len(self.proprio_dims)} channels after a grid of at least one token; "
                    f"the dynamics model has {dynamics.num_tokens} tokens of "
                    f"{dynamics.state_dim} (resolve the config from the encoder first)"
                )
            self.proprio_standardizer = StateStandardizer(
                (len(self.proprio_dims),), fit_batches=state.standardize_batches
            )

    def train(self, mode: bool = True) -> WorldModel:
        super().train(mode)
        self.encoder.eval()  # dropout/droppath stay off whatever the caller asks
        if self.target_encoder is not None:
            self.target_encoder.eval()
        return self

    def _states(self, encoder: VideoViT, frames: Tensor) -> Tensor:
        lead = frames.shape[:-3]
        x = frames.reshape(-1, *frames.shape[-3:])
        blurred = [gaussian_blur(x, s) for s in self.state_cfg.blur_px]
        views = [x, *blurred] if self.state_cfg.sharp_view else blurred
        pool = self.state_cfg.grid_pool
        z = torch.cat([pool_token_grid(encoder(v), pool) for v in views], dim=1)  # view by view
        if self.state_cfg.layer_norm:
            z = normalize_targets(z)
        if self.state_cfg.pooled:
            z = z.mean(dim=1)
        return z.reshape(*lead, *z.shape[1:])

    def _standardize(self, states: Tensor, fit: bool = False) -> Tensor:
        """States [..., *S] into the standardised space; ``fit`` first folds them into the
        statistics (training batches only, until the standardizer is fitted)."""
        if self.standardizer is None:
            return states
        if fit:
            self.standardizer.update(states.reshape(-1, *self.standardizer.mean.shape))
        return self.standardizer(states)

    def state_views(self) -> list[tuple[str, slice]]:
        """The state's tokens by what they show, as (name, token slice): each encoded view
        (the plain frame, then each blur) holds an equal run of tokens, and a proprio token
        comes last. A pooled state's one grid token mixes all views ("pooled")."""
        s = self.state_cfg
        grid = self.dynamics.num_tokens - int(bool(self.proprio_dims))
        names = ["sharp"] if s.sharp_view else []
        names = ["pooled"] if s.pooled else names + [f"blur {b:g} px" for b in s.blur_px]
        per = grid // len(names)
        out = [(n, slice(i * per, (i + 1) * per)) for i, n in enumerate(names)]
        return out + ([("proprio", slice(grid, grid + 1))] if self.proprio_dims else [])

    def view_losses(self, predictions: Tensor, targets: Tensor) -> dict[str, float]:
        """The training loss's distance (``loss.kind``) per part of the state, averaged over
        batch, steps and that part's tokens, keyed ``loss_<view>`` (``loss_sharp``,
        ``loss_blur_12_px``, ``loss_proprio``): which part the model has not learned yet.
        Empty for a state of one part (a pooled one), whose whole loss already says it."""
        views = self.state_views()
        if len(views) < 2:
            return {}
        kind = self.loss_cfg.kind
        return {
            "loss_" + name.replace(" ", "_"): float(
                latent_loss(predictions[..., tokens, :], targets[..., tokens, :], kind)
            )
            for name, tokens in views
        }

    def proprio_of(self, true_states: np.ndarray | Tensor) -> Tensor | None:
        """The proprio entries of true state vectors or snapshots [..., S] (their leading
        entries are the state vector), as float32; None when the state has no proprio."""
        if not self.proprio_dims:
            return None
        x = torch.as_tensor(np.asarray(true_states, np.float32))
        if x.dim() == 0 or x.shape[-1] <= max(self.proprio_dims):
            raise ValueError(
                f"true states of shape {tuple(x.shape)} lack entries {self.proprio_dims} "
                "(state.proprio_dims)"
            )
        return x[..., list(self.proprio_dims)]

    def proprio_gain(self) -> Tensor:
        """What a standardised proprio feature is multiplied by: the square root of
        ``proprio_weight`` x the grid's standardised variance per proprio feature."""
        assert self.standardizer is not None  # the config requires it with proprio
        grid = self.standardizer.standardized_variance()
        return (self.state_cfg.proprio_weight * grid / len(self.proprio_dims)).sqrt()

    def _with_proprio(self, grid: Tensor, proprio: Tensor | None, fit: bool = False) -> Tensor:
        """Grid states [..., N, D] and their proprio [..., d_p] -> states [..., N+1, D]."""
        if self.proprio_standardizer is None:
            if proprio is not None:
                raise ValueError(
                    "this world model's state has no proprio token (state.proprio_dims is "
                    "empty): pass frames alone"
                )
            return grid
        d_p = len(self.proprio_dims)
        if proprio is None:
            raise ValueError(
                f"this world model's state includes the agent's proprioception (entries "
                f"{self.proprio_dims} of the true state): pass proprio [..., {d_p}] with "
                "the frames"
            )
        if tuple(proprio.shape) != (*grid.shape[:-2], d_p):
            raise ValueError(
                f"proprio {tuple(proprio.shape)} does not match states "
                f"{tuple(grid.shape[:-2])} x {d_p} entries"
            )
        p = proprio.to(device=grid.device, dtype=torch.float32)
        if fit:
            self.proprio_standardizer.update(p.reshape(-1, d_p))
        p = self.proprio_standardizer(p) * self.proprio_gain()
        token = F.pad(p, (0, grid.shape[-1] - d_p)).unsqueeze(-2).to(grid.dtype)
        return torch.cat([grid, token], dim=-2)

    @torch.no_grad()
    def encode(self, frames: Tensor, proprio: Tensor | None = None) -> Tensor:
        """Normalised frames [..., C, H, W] -> states [..., D] (pooled) or [..., N, D];
        with ``state.proprio_dims``, ``proprio`` [..., d_p] adds the last token."""
        return self._with_proprio(self._standardize(self._states(self.encoder, frames)), proprio)

    def encoder_param_groups(self, optim: OptimConfig) -> list[dict]:
        """The adapting encoder's optimizer groups (at lr x adapt_lr_scale); none if frozen."""
        if not self.adapt:
            return []
        return param_groups(self.encoder, optim.weight_decay, self.state_cfg.adapt_lr_scale)

    @torch.no_grad()
    def update_target(self) -> float | None:
        """EMA step of the next-state target encoder; None when the encoder is frozen."""
        if self.target_encoder is None:
            return None
        tau = self.state_cfg.adapt_momentum
        ema_update(self.target_encoder, self.encoder, tau)
        return tau

    def step(self, state: Tensor, action: Tensor) -> Tensor:
        return self.dynamics.step(state, action)

    def rollout(self, state: Tensor, actions: Tensor) -> Tensor:
        return self.dynamics.rollout(state, actions)

    def forward(
        self, frames: Tensor, actions: Tensor, proprio: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Loss on windows: frames [B, H+1, C, h, w], actions [B, H, d_a] and, with
        ``state.proprio_dims``, proprio [B, H+1, d_p].

        Horizon 1 is the seed's next-state loss; longer windows add the discounted
        autoregressive multi-step loss, exposing the model to its own compounding errors.
        """
        if frames.dim() != 5 or actions.dim() != 3:
            raise ValueError(
                f"expected frames [B, H+1, C, h, w] and actions [B, H, d_a], got "
                f"{tuple(frames.shape)} and {tuple(actions.shape)}"
            )
        if frames.shape[1] != actions.shape[1] + 1 or frames.shape[0] != actions.shape[0]:
            raise ValueError(
                f"a window of {actions.shape[1]} actions needs {actions.shape[1] + 1} frames, "
                f"got {frames.shape[1]} (batch {frames.shape[0]} vs {actions.shape[0]})"
            )
        if actions.shape[-1] != self.dynamics.action_dim:
            # The usual cause: data.dataset.frameskip=k concatenates k raw actions per step.
            raise ValueError(
                f"the windows carry {actions.shape[-1]} action values per step but "
                f"dynamics.action_dim is {self.dynamics.action_dim}: with "
                f"data.dataset.frameskip=k it must be k x the environment's action size"
            )
        horizon = min(self.loss_cfg.horizon, actions.shape[1])
        fit = self.training
        if self.target_encoder is None:
            with torch.no_grad():
                states = self._standardize(self._states(self.encoder, frames), fit)
                states = self._with_proprio(states, proprio, fit)
            start, targets = states[:, 0], states[:, 1 : horizon + 1]
        else:
            p_next = None if proprio is None else proprio[:, 1 : horizon + 1]
            with torch.no_grad():
                raw = self._states(self.target_encoder, frames[:, 1 : horizon + 1])
                targets = self._with_proprio(self._standardize(raw, fit), p_next, fit)
            # The gradient reaches the adapting encoder through the start state.
            start = self._standardize(self._states(self.encoder, frames[:, 0]))
            start = self._with_proprio(start, None if proprio is None else proprio[:, 0])
        if horizon == 1:
            pred = self.step(start, actions[:, 0]).unsqueeze(1)
            loss = latent_loss(pred, targets, self.loss_cfg.kind)
        else:
            pred = self.rollout(start, actions[:, :horizon])
            loss = multistep_loss(pred, targets, self.loss_cfg.discount, self.loss_cfg.kind)
        return loss, {"predictions": pred.detach(), "targets": targets}
