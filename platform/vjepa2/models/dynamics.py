"""Action-conditioned latent dynamics g_phi (seed 4.4): s_{t+1} = g(s_t, a_t).

States are either a token grid [B, N, D] or a pooled vector [B, D]; both run through the
same transformer (a pooled state is a grid of one token). Planning (CEM) calls ``step``
thousands of times on large candidate batches, so the hot path does only tensor work: one
batched call per step, no per-candidate loops, shape checks done once per call.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vjepa2.config.components import DynamicsConfig
from vjepa2.models.blocks import Block, CrossBlock, init_weights, rescale_residual_projections


class ActionEncoder(nn.Module):
    """MLP from the raw action a_t in R^{d_a} to the latent width: Linear (GELU Linear)*.

    ``layers`` counts Linear layers; 1 is a single linear map, otherwise every hidden layer
    has width ``hidden`` and is followed by GELU.
    """

    def __init__(self, action_dim: int, out_dim: int, hidden: int = 256, layers: int = 2):
        super().__init__()
        if layers < 1:
            raise ValueError(f"action encoder needs at least one layer, got {layers}")
        dims = [action_dim] + [hidden] * (layers - 1) + [out_dim]
        mods: list[nn.Module] = []
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            mods.append(nn.Linear(d_in, d_out))
            if i < layers - 1:
                mods.append(nn.GELU())
        self.net = nn.Sequential(*mods)

    def forward(self, action: Tensor) -> Tensor:
        return self.net(action)


class DynamicsModel(nn.Module):
    """Transformer predictor over state tokens, conditioned on one action per step.

    Fusion (``cfg.fusion``) of the action embedding e_a = ActionEncoder(a_t):

    - ``"token"``: e_a is appended as an extra token to the state sequence;
    - ``"add"``: e_a is added to every state token before the first block;
    - ``"cross"``: the action is embedded as ``cfg.action_tokens`` tokens and every block
      cross-attends from the state tokens to them. With several keys each state token chooses
      which parts of the action embedding it reads (a single key would make the attention
      weights constant and reduce this to "add" at every depth).

    With ``cfg.residual`` the network predicts s_{t+1} - s_t and returns s_t + delta.

    Example:
        >>> import torch
        >>> from vjepa2.config.components import DynamicsConfig
        >>> cfg = DynamicsConfig(state_dim=32, num_tokens=4, action_dim=2, depth=2,
        ...                      num_heads=4, action_hidden=32)
        >>> g = DynamicsModel(cfg)
        >>> s, a = torch.randn(8, 4, 32), torch.randn(8, 2)
        >>> g.step(s, a).shape
        torch.Size([8, 4, 32])
        >>> g.rollout(s, torch.randn(8, 5, 2)).shape  # 5 autoregressive steps
        torch.Size([8, 5, 4, 32])
    """

    def __init__(self, cfg: DynamicsConfig):
        super().__init__()
        self.cfg = cfg
        self.state_dim, self.num_tokens = cfg.state_dim, cfg.num_tokens
        self.action_dim = cfg.action_dim
        self.fusion, self.residual = cfg.fusion, cfg.residual
        width = cfg.width

        self.in_proj: nn.Module = (
            nn.Identity() if width == cfg.state_dim else nn.Linear(cfg.state_dim, width)
        )
        self.action_tokens = cfg.action_tokens if cfg.fusion == "cross" else 1
        self.action_encoder = ActionEncoder(
            cfg.action_dim,
            width * self.action_tokens,
            hidden=cfg.action_hidden,
            layers=cfg.action_layers,
        )
        # The action token gets its own position, which also tells it apart from state tokens.
        n_pos = cfg.num_tokens + (1 if cfg.fusion == "token" else 0)
        self.pos_embed = nn.Parameter(torch.zeros(1, n_pos, width))

        dpr = torch.linspace(0, cfg.drop_path, cfg.depth).tolist()
        block_cls = CrossBlock if cfg.fusion == "cross" else Block
        self.blocks = nn.ModuleList(
            block_cls(width, cfg.num_heads, mlp_ratio=cfg.mlp_ratio, drop_path=dp) for dp in dpr
        )
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.out_proj = nn.Linear(width, cfg.state_dim)

        init_weights(self)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        rescale_residual_projections(self.blocks)
        if cfg.residual:
            # An untrained residual model is then exactly the identity: the loss starts at the
            # do-nothing baseline instead of above it, and early autoregressive rollouts do not
            # drift by compounding random deltas. The weight still gets gradient (its input,
            # the normed features, is non-zero), so the rest of the net trains from step two.
            nn.init.zeros_(self.out_proj.weight)
            nn.init.zeros_(self.out_proj.bias)

    def _check_state(self, state: Tensor) -> None:
        if state.dim() not in (2, 3):
            raise ValueError(
                f"state must be [B, N, D] or pooled [B, D], got shape {tuple(state.shape)}"
            )
        if state.shape[-1] != self.state_dim:
            raise ValueError(
                f"state width {state.shape[-1]} does not match state_dim {self.state_dim}"
            )
        if state.dim() == 3 and state.shape[1] != self.num_tokens:
            raise ValueError(
                f"state has {state.shape[1]} tokens but the model was built for "
                f"num_tokens={self.num_tokens}"
            )
        if state.dim() == 2 and self.num_tokens != 1:
            raise ValueError(
                f"a pooled state [B, D] needs num_tokens=1, the model has {self.num_tokens}; "
                "pass a token grid [B, N, D]"
            )

    def _check_action(self, state: Tensor, action: Tensor, expect_dim: int, what: str) -> None:
        if action.dim() != expect_dim or action.shape[-1] != self.action_dim:
            raise ValueError(
                f"{what} must be {'[B, d_a]' if expect_dim == 2 else '[B, H, d_a]'} with "
                f"d_a={self.action_dim}, got shape {tuple(action.shape)} (a model trained "
                f"with frameskip k takes k raw actions per step, concatenated)"
            )
        if action.shape[0] != state.shape[0]:
            raise ValueError(
                f"batch mismatch: state has {state.shape[0]} rows, {what} {action.shape[0]}"
            )

    def _step(self, state: Tensor, action: Tensor) -> Tensor:
        """One prediction without shape checks; ``state`` is always [B, N, D] here."""
        h = self.in_proj(state)
        a = self.action_encoder(action).unflatten(-1, (self.action_tokens, -1))  # [B, K, W]
        n = self.num_tokens
        if self.fusion == "token":
            h = torch.cat([h, a], dim=1) + self.pos_embed
            for blk in self.blocks:
                h = blk(h)
            h = h[:, :n]
        elif self.fusion == "add":
            h = h + self.pos_embed + a
            for blk in self.blocks:
                h = blk(h)
        else:
            h = h + self.pos_embed
            for blk in self.blocks:
                h = blk(h, a)
        out = self.out_proj(self.norm(h))
        return state + out if self.residual else out

    def step(self, state: Tensor, action: Tensor) -> Tensor:
        """s_{t+1} = g(s_t, a_t): state [B, N, D] or [B, D], action [B, d_a] -> state's shape."""
        self._check_state(state)
        self._check_action(state, action, 2, "action")
        if state.dim() == 2:
            return self._step(state.unsqueeze(1), action).squeeze(1)
        return self._step(state, action)

    forward = step

    def rollout(self, state: Tensor, actions: Tensor) -> Tensor:
        """Autoregressive rollout, each prediction fed back as the next input.

        state [B, N, D] or [B, D]; actions [B, H, d_a] -> predictions [B, H, *state.shape[1:]]
        for s_{t+1} ... s_{t+H}.
        """
        self._check_state(state)
        self._check_action(state, actions, 3, "actions")
        pooled = state.dim() == 2
        s = state.unsqueeze(1) if pooled else state
        preds = []
        for t in range(actions.shape[1]):
            s = self._step(s, actions[:, t])
            preds.append(s)
        if not preds:
            return state.new_empty(state.shape[0], 0, *state.shape[1:])
        out = torch.stack(preds, dim=1)
        return out.squeeze(2) if pooled else out
