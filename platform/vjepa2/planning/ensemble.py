"""Several world models planned with as one: states side by side, one per member.

CEM finds whatever a single dynamics model gets wrong in the planner's favour (the plan audits
count those plans). Independently trained models rarely make the same error, so a plan that
only one of them believes in is a model error, not a route to the goal. The ensemble's state
is every member's state stacked on dim 1 ([B, E, *S]): each member encodes frames with its
own encoder and standardisation and steps its own slice, so members need not share a latent
space. The planner scores each member against the goal as that member encodes it, then
combines the members' costs (``cem.combine_costs``: their mean plus ``cem.spread_weight`` x
their standard deviation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from vjepa2.world_model import WorldModel


def _signature(model: WorldModel) -> dict:
    """What members must agree on to plan the same actions on the same frames."""
    return {
        "img_size": int(model.encoder.cfg.img_size),
        "action_dim": int(model.dynamics.action_dim),
        "proprio_dims": tuple(model.proprio_dims),
        "tokens": int(model.dynamics.num_tokens),
        "state_dim": int(model.dynamics.state_dim),
        "pooled": bool(model.state_cfg.pooled),
        "views": [name for name, _ in model.state_views()],
    }


class WorldModelEnsemble(nn.Module):
    """World models that agree on frame size, action width, proprioception and state shape."""

    def __init__(self, members: Sequence[WorldModel]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 world models, got {len(members)}")
        first = _signature(members[0])
        for i, m in enumerate(members[1:], start=1):
            sig = _signature(m)
            diff = {k: (first[k], sig[k]) for k in first if first[k] != sig[k]}
            if diff:
                raise ValueError(f"ensemble member {i} differs from member 0 in {diff}")
        self.models = nn.ModuleList(members)
        self.members = len(members)
        self.img_size, self.action_dim = first["img_size"], first["action_dim"]
        self.proprio_dims = first["proprio_dims"]

    def proprio_of(self, true_states: np.ndarray | Tensor) -> Tensor | None:
        return self.models[0].proprio_of(true_states)

    def state_views(self) -> list[tuple[str, slice]]:
        return self.models[0].state_views()

    @torch.no_grad()
    def encode(self, frames: Tensor, proprio: Tensor | None = None) -> Tensor:
        """Frames [..., C, H, W] -> states [..., E, *S]: each member's encoding."""
        lead = frames.dim() - 3
        return torch.stack([m.encode(frames, proprio) for m in self.models], dim=lead)

    def step(self, state: Tensor, action: Tensor) -> Tensor:
        """States [M, E, *S] and actions [M, d_a] -> [M, E, *S]: member e steps slice e."""
        if state.shape[1] != self.members:
            raise ValueError(f"expected {self.members} member states on dim 1, got {state.shape}")
        return torch.stack([m.step(state[:, e], action) for e, m in enumerate(self.models)], 1)
