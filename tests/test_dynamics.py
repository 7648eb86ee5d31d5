"""Action-conditioned dynamics g_phi: shapes, rollouts, conditioning, errors, and that it learns."""

from __future__ import annotations

import doctest
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import vjepa2.models.dynamics as dynamics_module
from vjepa2.config.components import DynamicsConfig
from vjepa2.models.dynamics import ActionEncoder, DynamicsModel

FUSIONS = ["token", "add", "cross"]
LAYOUTS = ["grid", "pooled"]
D, N, DA, B = 16, 4, 3, 5


def make(fusion: str, layout: str, **kw) -> DynamicsModel:
    args = dict(
        state_dim=D,
        num_tokens=N if layout == "grid" else 1,
        action_dim=DA,
        embed_dim=32,
        depth=2,
        num_heads=4,
        mlp_ratio=2.0,
        fusion=fusion,
        action_hidden=16,
    )
    args.update(kw)
    return DynamicsModel(DynamicsConfig(**args))


def state_for(layout: str, batch: int = B) -> torch.Tensor:
    return torch.randn(batch, N, D) if layout == "grid" else torch.randn(batch, D)


def unzero(model: DynamicsModel) -> DynamicsModel:
    """Give the zero-initialised residual output projection random weights."""
    nn.init.normal_(model.out_proj.weight, std=0.1)
    nn.init.normal_(model.out_proj.bias, std=0.1)
    return model


both = pytest.mark.parametrize("fusion,layout", [(f, lay) for f in FUSIONS for lay in LAYOUTS])


@both
@pytest.mark.parametrize("residual", [True, False])
def test_step_and_rollout_shapes(fusion, layout, residual):
    torch.manual_seed(0)
    model = make(fusion, layout, residual=residual)
    s = state_for(layout)
    assert model.step(s, torch.randn(B, DA)).shape == s.shape
    assert model(s, torch.randn(B, DA)).shape == s.shape
    assert model.rollout(s, torch.randn(B, 7, DA)).shape == (B, 7, *s.shape[1:])
    assert model.rollout(s, torch.randn(B, 0, DA)).shape == (B, 0, *s.shape[1:])


@both
def test_rollout_equals_repeated_step(fusion, layout):
    torch.manual_seed(0)
    model = unzero(make(fusion, layout)).eval()
    s, actions = state_for(layout), torch.randn(B, 4, DA)
    with torch.no_grad():
        out = model.rollout(s, actions)
        cur = s
        for t in range(actions.shape[1]):
            cur = model.step(cur, actions[:, t])
            torch.testing.assert_close(out[:, t], cur)
    # Feedback is real: later predictions differ from a one-step prediction off the start.
    assert not torch.allclose(out[:, 1], model.step(s, actions[:, 1]))


@both
def test_output_depends_on_action(fusion, layout):
    torch.manual_seed(0)
    model = unzero(make(fusion, layout)).eval()
    s = state_for(layout)
    with torch.no_grad():
        a, b = model.step(s, torch.randn(B, DA)), model.step(s, torch.randn(B, DA))
    assert (a - b).abs().amax(dim=-1).min() > 1e-4  # every row, every token moves


@both
def test_gradients_reach_action_encoder_and_predictor(fusion, layout):
    torch.manual_seed(0)
    model = unzero(make(fusion, layout))
    s = state_for(layout)
    model.rollout(s, torch.randn(B, 2, DA)).square().mean().backward()
    for name, p in model.named_parameters():
        # With several action tokens the cross-attention query path trains too.
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert model.action_encoder.net[0].weight.grad.abs().sum() > 0
    assert isinstance(model.in_proj, nn.Linear)  # embed_dim 32 != state_dim 16


@both
def test_untrained_residual_model_is_identity(fusion, layout):
    torch.manual_seed(0)
    model = make(fusion, layout)
    s = state_for(layout)
    torch.testing.assert_close(model.step(s, torch.randn(B, DA)), s, rtol=0, atol=0)
    rolled = model.rollout(s, torch.randn(B, 3, DA))
    torch.testing.assert_close(rolled, s.unsqueeze(1).expand_as(rolled), rtol=0, atol=0)
    # Without the residual the raw output is a prediction, not a copy.
    plain = make(fusion, layout, residual=False)
    assert not torch.allclose(plain.step(s, torch.randn(B, DA)), s)


def test_in_proj_is_identity_when_widths_match():
    model = make("add", "grid", embed_dim=0)
    assert isinstance(model.in_proj, nn.Identity) and model.cfg.width == D


def test_action_encoder_layers():
    one = ActionEncoder(3, 8, hidden=5, layers=1)
    assert [type(m) for m in one.net] == [nn.Linear]
    three = ActionEncoder(3, 8, hidden=5, layers=3)
    assert [type(m) for m in three.net] == [nn.Linear, nn.GELU, nn.Linear, nn.GELU, nn.Linear]
    assert three(torch.randn(2, 3)).shape == (2, 8)
    with pytest.raises(ValueError):
        ActionEncoder(3, 8, layers=0)


@pytest.mark.parametrize(
    "layout,state_shape,action_shape,match",
    [
        ("grid", (B, N, D + 1), (B, DA), "state width"),
        ("grid", (B, N + 1, D), (B, DA), "num_tokens"),
        ("grid", (B, D), (B, DA), "pooled state"),
        ("grid", (B, 2, N, D), (B, DA), r"\[B, N, D\]"),
        ("pooled", (B, 1, D + 2), (B, DA), "state width"),
        ("pooled", (B, D), (B, DA + 1), "d_a=3"),
        ("pooled", (B, D), (B, 1, DA), "d_a=3"),
        ("pooled", (B, D), (B + 1, DA), "batch mismatch"),
        ("grid", (B, N, D), (B - 1, DA), "batch mismatch"),
    ],
)
def test_step_shape_errors_are_clear(layout, state_shape, action_shape, match):
    model = make("token", layout)
    with pytest.raises(ValueError, match=match):
        model.step(torch.randn(*state_shape), torch.randn(*action_shape))


@pytest.mark.parametrize(
    "state_shape,actions_shape,match",
    [
        ((B, N, D), (B, DA), r"\[B, H, d_a\]"),
        ((B, N, D), (B, 2, DA + 1), "d_a=3"),
        ((B, N, D), (B + 1, 2, DA), "batch mismatch"),
        ((B, N - 1, D), (B, 2, DA), "num_tokens"),
    ],
)
def test_rollout_shape_errors_are_clear(state_shape, actions_shape, match):
    model = make("cross", "grid")
    with pytest.raises(ValueError, match=match):
        model.rollout(torch.randn(*state_shape), torch.randn(*actions_shape))


def test_pooled_model_accepts_single_token_grid():
    torch.manual_seed(0)
    model = unzero(make("token", "pooled")).eval()
    s, a = torch.randn(B, D), torch.randn(B, DA)
    with torch.no_grad():
        torch.testing.assert_close(model.step(s.unsqueeze(1), a).squeeze(1), model.step(s, a))


def test_determinism_under_manual_seed():
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = unzero(make("cross", "grid", drop_path=0.1))
        s, actions = state_for("grid"), torch.randn(B, 3, DA)
        outs.append((model.state_dict(), model.train().rollout(s, actions)))
    (sd_a, out_a), (sd_b, out_b) = outs
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    torch.testing.assert_close(out_a, out_b, rtol=0, atol=0)


def test_docstring_example_runs():
    result = doctest.testmod(dynamics_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@both
def test_fits_a_known_latent_transition(fusion, layout):
    """s' = tanh(A s + B a) with fixed random A, B (mixing across tokens on the grid)."""
    torch.manual_seed(0)
    n, d = (4, 8) if layout == "grid" else (1, 16)
    flat, da = n * d, 4
    mix_s, mix_a = torch.randn(flat, flat) / flat**0.5, torch.randn(flat, da) / da**0.5
    shape = (d,) if layout == "pooled" else (n, d)
    gen = torch.Generator().manual_seed(1)

    def sample(batch: int) -> tuple[torch.Tensor, ...]:
        s = torch.rand(batch, flat, generator=gen) * 2 - 1
        a = torch.randn(batch, da, generator=gen)
        nxt = torch.tanh(s @ mix_s.T + a @ mix_a.T)
        return s.reshape(batch, *shape), a, nxt.reshape(batch, *shape)

    s_te, a_te, y_te = sample(1024)
    model = DynamicsModel(
        DynamicsConfig(
            state_dim=d,
            num_tokens=n,
            action_dim=da,
            embed_dim=32,
            depth=2,
            num_heads=4,
            mlp_ratio=2.0,
            fusion=fusion,
            action_hidden=32,
        )
    )
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)

    def test_mse() -> float:
        with torch.no_grad():
            return F.mse_loss(model.step(s_te, a_te), y_te).item()

    initial, do_nothing = test_mse(), F.mse_loss(s_te, y_te).item()
    start, steps = time.perf_counter(), 250
    for _ in range(steps):
        s, a, y = sample(128)
        loss = F.mse_loss(model.step(s, a), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    final = test_mse()
    print(
        f"{fusion}/{layout}: held-out mse {initial:.4f} -> {final:.4f} "
        f"(do-nothing {do_nothing:.4f}) in {steps} steps, {time.perf_counter() - start:.2f}s"
    )
    assert final < 0.1 * initial
    assert final < 0.1 * do_nothing
