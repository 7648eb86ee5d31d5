"""Phase 2 on a frozen encoder: no gradient reaches it, the loss falls, rollouts evaluate."""

from __future__ import annotations

import pytest
import torch

from vjepa2.config import apply_overrides, get_preset
from vjepa2.eval.rollout import rollout_cosine
from vjepa2.losses import normalize_targets
from vjepa2.optim import build_optimizer
from vjepa2.train.builders import build_world_model, load_world_model
from vjepa2.train.local import run_dynamics_training, run_pretraining
from vjepa2.train.sources import SyntheticSource
from vjepa2.train.steps import dynamics_step
from vjepa2.world_model import pool_token_grid


@pytest.fixture
def tiny_dynamics(tmp_path):
    return apply_overrides(
        get_preset("dynamics", "tiny"),
        [
            f"train.out_dir={tmp_path}",
            "train.steps=20",
            "train.checkpoint_every=10",
            "data.synthetic.num_videos=16",
        ],
    )


@pytest.mark.parametrize("pooled", [True, False])
def test_dynamics_step_never_touches_the_encoder(tiny_dynamics, pooled):
    cfg = apply_overrides(tiny_dynamics, [f"state.pooled={str(pooled).lower()}", "loss.horizon=2"])
    torch.manual_seed(0)
    model, resolved = build_world_model(cfg)
    assert resolved.dynamics.num_tokens == (1 if pooled else 16)  # 64 px / 16 px patches
    opt = build_optimizer(model.dynamics, cfg.optim)
    enc_before = [p.detach().clone() for p in model.encoder.parameters()]
    dyn_before = [p.detach().clone() for p in model.dynamics.parameters()]
    src = SyntheticSource(cfg.data, resolved.encoder, 8, torch.device("cpu"))
    frames, actions = src.windows(4, 2, torch.Generator().manual_seed(0))
    model.train()
    res = dynamics_step(model, opt, frames, actions, step=3, total_steps=10, optim_cfg=cfg.optim)
    assert res.loss > 0
    assert all(p.grad is None and not p.requires_grad for p in model.encoder.parameters())
    assert all(
        torch.equal(a, b) for a, b in zip(enc_before, model.encoder.parameters(), strict=True)
    )
    assert any(
        not torch.equal(a, b) for a, b in zip(dyn_before, model.dynamics.parameters(), strict=True)
    )
    assert not model.encoder.training  # frozen encoder stays in eval mode under .train()


def test_slowly_adapting_encoder_trains_and_its_target_lags(tiny_dynamics, tmp_path):
    cfg = apply_overrides(
        tiny_dynamics,
        ["state.adapt=true", "state.adapt_lr_scale=0.5", "state.adapt_momentum=0.9"],
    )
    torch.manual_seed(0)
    model, resolved = build_world_model(cfg)
    opt = build_optimizer(model.dynamics, cfg.optim, extra=model.encoder_param_groups(cfg.optim))
    assert [g["lr_scale"] for g in opt.param_groups] == [1.0, 1.0, 0.5, 0.5]
    enc0 = [p.detach().clone() for p in model.encoder.parameters()]
    tgt0 = [p.detach().clone() for p in model.target_encoder.parameters()]
    src = SyntheticSource(cfg.data, resolved.encoder, 8, torch.device("cpu"))
    frames, actions = src.windows(4, 1, torch.Generator().manual_seed(0))
    model.train()
    res = dynamics_step(model, opt, frames, actions, step=15, total_steps=20, optim_cfg=cfg.optim)
    assert res.momentum == 0.9
    assert opt.param_groups[2]["lr"] == 0.5 * opt.param_groups[0]["lr"]
    assert not any(p.requires_grad for p in model.target_encoder.parameters())
    for t0, e, t in zip(
        tgt0, model.encoder.parameters(), model.target_encoder.parameters(), strict=True
    ):
        # xi <- 0.9 xi + 0.1 theta, with xi = theta before the step
        assert torch.allclose(t, 0.9 * t0 + 0.1 * e.detach(), atol=1e-6)
    assert any(not torch.equal(a, b) for a, b in zip(enc0, model.encoder.parameters(), strict=True))
    # Checkpoints carry the target encoder; the reloaded model matches.
    out = run_dynamics_training(apply_overrides(cfg, ["train.steps=2"]), progress=False)
    reloaded, rcfg = load_world_model(out.checkpoint)
    assert rcfg.state.adapt and reloaded.target_encoder is not None


def test_window_shape_errors_are_clear(tiny_dynamics):
    model, _ = build_world_model(tiny_dynamics)
    with pytest.raises(ValueError, match="needs 3 frames"):
        model(torch.randn(2, 2, 3, 64, 64), torch.randn(2, 2, 2))
    with pytest.raises(ValueError, match="frameskip=k it must be k x"):
        model(torch.randn(2, 3, 3, 64, 64), torch.randn(2, 2, 10))  # 5 raw actions a step


def test_bad_encoder_checkpoint_is_a_clear_error(tiny_dynamics, tmp_path):
    from vjepa2.train.checkpoint import CheckpointError

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 100)
    cfg = apply_overrides(tiny_dynamics, [f"encoder_checkpoint={bad}"])
    with pytest.raises(CheckpointError, match="corrupt"):
        build_world_model(cfg)


@pytest.mark.slow
def test_two_phase_pipeline_trains_and_reloads(tmp_path):
    pre = apply_overrides(
        get_preset("pretrain", "tiny"),
        [f"train.out_dir={tmp_path}", "train.steps=40", "data.synthetic.num_videos=32"],
    )
    pre_run = run_pretraining(pre, progress=False)
    dyn = apply_overrides(
        get_preset("dynamics", "tiny"),
        [
            f"train.out_dir={tmp_path}",
            "train.steps=60",
            f"encoder_checkpoint={pre_run.checkpoint}",
            "train.log_every=5",
            "data.synthetic.num_videos=32",
            "loss.horizon=3",
        ],
    )
    run = run_dynamics_training(dyn, progress=False)
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in run.history)

    # The checkpoint alone rebuilds the world model, frozen encoder included: the encoder
    # equals the Phase-1 EMA target it was built from, and predictions are reproducible.
    model, cfg = load_world_model(run.checkpoint)
    from vjepa2.train.builders import load_pretrained

    vjepa, _ = load_pretrained(pre_run.checkpoint)
    for (name, a), b in zip(
        vjepa.target.state_dict().items(), model.encoder.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    src = SyntheticSource(cfg.data, cfg.encoder, 11, torch.device("cpu"))
    frames, actions = src.windows(8, 10, torch.Generator().manual_seed(3))
    cos = rollout_cosine(model, frames, actions, horizons=(1, 5, 10))
    again = rollout_cosine(load_world_model(run.checkpoint)[0], frames, actions, (1, 5, 10))
    assert cos == again
    assert set(cos["model"]) == {1, 5, 10} and all(-1 <= v <= 1 for v in cos["model"].values())
    assert all(v > 0 for v in cos["error_vs_copy"].values())


def test_multiscale_states_stack_the_blurred_frames_token_grids(tiny_dynamics):
    from vjepa2.data.transforms import gaussian_blur

    with pytest.raises(ValueError, match="pooled=false"):
        apply_overrides(tiny_dynamics, ["state.blur_px=[4]"])
    with pytest.raises(ValueError, match="> 0"):
        apply_overrides(tiny_dynamics, ["state.pooled=false", "state.blur_px=[0]"])
    cfg = apply_overrides(tiny_dynamics, ["state.pooled=false", "state.blur_px=[2, 6]"])
    torch.manual_seed(0)
    model, resolved = build_world_model(cfg)
    assert resolved.state.blur_px == (2.0, 6.0) and resolved.dynamics.num_tokens == 48
    frames = torch.randn(3, 3, 64, 64)
    states = model.encode(frames)
    assert states.shape == (3, 48, 96)
    plain = apply_overrides(tiny_dynamics, ["state.pooled=false"])
    base, _ = build_world_model(plain)
    base.encoder.load_state_dict(model.encoder.state_dict())
    torch.testing.assert_close(states[:, :16], base.encode(frames))  # the plain grid first
    blurred = base.encode(gaussian_blur(frames, 6.0))
    torch.testing.assert_close(states[:, 32:], blurred)  # then each sigma in order
    assert model.step(states, torch.zeros(3, 2)).shape == states.shape


def test_a_state_can_drop_the_plain_view_and_keep_only_blurred_grids(tiny_dynamics):
    from vjepa2.data.transforms import gaussian_blur

    with pytest.raises(ValueError, match="no view"):
        apply_overrides(tiny_dynamics, ["state.sharp_view=false"])
    with pytest.raises(ValueError, match="pooled=false"):
        apply_overrides(tiny_dynamics, ["state.sharp_view=false", "state.blur_px=[4, 8]"])
    grid = ["state.pooled=false", "state.sharp_view=false", "state.blur_px=[6]"]
    torch.manual_seed(0)
    model, resolved = build_world_model(apply_overrides(tiny_dynamics, grid))
    assert resolved.dynamics.num_tokens == 16 and resolved.state.num_views == 1
    frames = torch.randn(2, 3, 64, 64)
    plain, _ = build_world_model(apply_overrides(tiny_dynamics, ["state.pooled=false"]))
    plain.encoder.load_state_dict(model.encoder.state_dict())
    torch.testing.assert_close(model.encode(frames), plain.encode(gaussian_blur(frames, 6.0)))
    # One blurred view may be pooled like the plain one.
    pooled, cfg = build_world_model(
        apply_overrides(tiny_dynamics, ["state.sharp_view=false", "state.blur_px=[6]"])
    )
    assert cfg.dynamics.num_tokens == 1 and pooled.encode(frames).shape == (2, 96)


def test_grid_pool_averages_each_views_grid_in_square_blocks(tiny_dynamics):
    from vjepa2.config.base import ConfigError
    from vjepa2.data.transforms import gaussian_blur

    with pytest.raises(ValueError, match="grid_pool must be >= 1"):
        apply_overrides(tiny_dynamics, ["state.grid_pool=0"])
    with pytest.raises(ConfigError, match="does not divide the encoder's 4x4"):
        build_world_model(
            apply_overrides(tiny_dynamics, ["state.pooled=false", "state.grid_pool=3"])
        )
    grid = ["state.pooled=false", "state.blur_px=[6]", "state.grid_pool=2"]
    torch.manual_seed(0)
    model, resolved = build_world_model(apply_overrides(tiny_dynamics, grid))
    assert resolved.dynamics.num_tokens == 8  # two views of 2x2 pooled tokens
    frames = torch.randn(2, 3, 64, 64)
    states = model.encode(frames)
    assert states.shape == (2, 8, 96)
    with torch.no_grad():
        for view, x in enumerate([frames, gaussian_blur(frames, 6.0)]):
            tokens = model.encoder(x).reshape(2, 4, 4, 96)  # the 4x4 grid, raster order
            for r in range(2):
                for c in range(2):
                    block = tokens[:, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2].mean((1, 2))
                    got = states[:, 4 * view + 2 * r + c]
                    torch.testing.assert_close(got, normalize_targets(block))
    assert model.step(states, torch.zeros(2, 2)).shape == states.shape
    with pytest.raises(ValueError, match="not a square grid"):
        pool_token_grid(torch.zeros(1, 12, 4), 2)


def test_gaussian_blur_keeps_mass_and_constants_and_spreads_an_impulse():
    from vjepa2.data.transforms import gaussian_blur

    x = torch.zeros(1, 3, 33, 33)
    x[0, :, 16, 16] = 1.0
    y = gaussian_blur(x, 2.0)
    torch.testing.assert_close(y.sum(dim=(2, 3)), torch.ones(1, 3))
    assert y[0, 0, 16, 16] < 0.1 and y[0, 0, 16, 18] > 0.01  # spread two pixels out
    torch.testing.assert_close(y, y.flip(-1))  # symmetric about the impulse
    torch.testing.assert_close(y, y.transpose(-1, -2))
    flat = torch.full((2, 3, 16, 16), 0.7)
    torch.testing.assert_close(gaussian_blur(flat, 3.0), flat)  # replicated edges
    assert gaussian_blur(x, 0.0) is x


def test_gaussian_blur_equals_a_direct_edge_padded_convolution_on_any_shape():
    """The matmul operators reproduce a plain per-row, per-column convolution with
    replicated edges, kernel wider than the image included."""
    import numpy as np

    from vjepa2.data.transforms import gaussian_blur

    x = torch.randn(2, 3, 12, 20, generator=torch.Generator().manual_seed(0))
    for sigma in (0.6, 3.0, 9.0):
        r = max(1, int(3 * sigma))
        k = np.exp(-(np.arange(-r, r + 1.0) ** 2) / (2 * sigma**2))
        k /= k.sum()

        def blur_1d(v: np.ndarray, k=k, r=r) -> np.ndarray:
            return np.convolve(np.pad(v, r, mode="edge"), k, mode="valid")

        ref = np.apply_along_axis(blur_1d, -1, x.double().numpy())
        ref = np.apply_along_axis(blur_1d, -2, ref)
        torch.testing.assert_close(gaussian_blur(x, sigma).double(), torch.from_numpy(ref),
                                   atol=1e-5, rtol=1e-5)  # fmt: skip


def test_held_out_rollouts_step_at_the_models_frameskip(tiny_dynamics, tworoom_val_dataset):
    """A frameskip-k model is scored on every k-th frame with k raw actions per step, and the
    horizons shrink to what the episodes hold instead of failing after a long evaluation."""
    from vjepa2.data.dataset import VideoActionDataset
    from vjepa2.data.transforms import normalize_frames
    from vjepa2.eval.rollout import held_out_rollout_cosine, load_episode_windows

    data = tworoom_val_dataset
    frames, actions = load_episode_windows(str(data), "val", num_frames=4, frameskip=3)
    ds = VideoActionDataset.open(str(data))
    (ep, *_) = [e for e in ds if e.split == "val"]
    with ds.open_video(ep) as reader:
        every_third = reader.get_frames([0, 3, 6, 9])
    assert frames.shape == (2, 4, 3, 64, 64) and actions.shape == (2, 3, 6)
    assert torch.equal(frames[0], normalize_frames(torch.from_numpy(every_third)))
    assert torch.equal(actions[0], torch.from_numpy(ep.actions[:9]).float().reshape(3, 6))

    cfg = apply_overrides(tiny_dynamics, ["dynamics.action_dim=6"])
    model, _ = build_world_model(cfg)
    cos, episodes = held_out_rollout_cosine(model, str(data), frameskip=3)
    assert episodes == 2
    assert list(cos["model"]) == [1, 5, 6]  # 21 frames: 6 steps of 3 at most
    assert all(0.0 < cos["copy"][k] <= 1.0 + 1e-6 for k in (1, 5, 6))
    with pytest.raises(ValueError, match="frameskip"):
        held_out_rollout_cosine(model, str(data), frameskip=1)  # 2-value actions, model wants 6
    with pytest.raises(ValueError, match="too short"):
        held_out_rollout_cosine(model, str(data), frameskip=25)


def test_tworoom_preset_plans_on_the_blurred_grid_alone():
    from vjepa2.data.transforms import gaussian_blur

    cfg = get_preset("dynamics", "tworoom")
    torch.manual_seed(0)
    model, resolved = build_world_model(cfg)
    assert resolved.state.num_views == 1 and resolved.dynamics.num_tokens == 64  # 8 px patches
    assert resolved.state.standardize and not model.standardizer.fitted  # identity until fitted
    frames = torch.randn(1, 3, 64, 64)
    expected = normalize_targets(model.encoder(gaussian_blur(frames, 16.0)))
    torch.testing.assert_close(model.encode(frames), expected)
    assert get_preset("dynamics", "pusht").state.sharp_view  # PushT keeps the plain grid


def test_tworoom_small_preset_is_the_90_percent_recipe():
    """The docs/results.md 2026-12-05 commands, as presets: the regularised tiny Phase 1 and a
    depth-4 predictor on the standardised 16 px-blurred grid at frameskip 5."""
    pre = get_preset("pretrain", "tworoom_small")
    assert pre.train.steps == 600 and pre.encoder == get_preset("pretrain", "tiny").encoder
    assert (pre.loss.variance_weight, pre.loss.covariance_weight) == (1.0, 1.0)
    cfg = get_preset("dynamics", "tworoom_small")
    assert (cfg.train.steps, cfg.dynamics.depth, cfg.dynamics.action_hidden) == (3000, 4, 128)
    assert (cfg.data.dataset.frameskip, cfg.dynamics.action_dim, cfg.loss.horizon) == (5, 10, 3)
    assert cfg.state.blur_px == (16.0,) and not cfg.state.sharp_view and cfg.state.standardize
    model, resolved = build_world_model(cfg)
    assert resolved.dynamics.num_tokens == 16 and model.standardizer.mean.shape == (16, 96)


def test_pusht_small_preset_is_the_best_pusht_recipe():
    """docs/results.md 2026-12-07 as presets: the same Phase 1 as tworoom_small on PushT's
    data, and a depth-6 predictor of width 192 on the plain and 12 px-blurred grids plus the
    agent's position (proprio_weight 4), 12000 steps."""
    pre = get_preset("pretrain", "pusht_small")
    tworoom = get_preset("pretrain", "tworoom_small")
    assert pre.data.dataset.path == "runs/pusht_small/data/pusht" != tworoom.data.dataset.path
    assert (pre.train.steps, pre.loss, pre.encoder) == (600, tworoom.loss, tworoom.encoder)
    cfg = get_preset("dynamics", "pusht_small")
    assert (
        cfg.data.dataset.path == pre.data.dataset.path and cfg.train.out_dir == "runs/pusht_small"
    )
    assert (cfg.train.steps, cfg.dynamics.depth, cfg.dynamics.action_hidden) == (12000, 6, 128)
    assert (cfg.data.dataset.frameskip, cfg.dynamics.action_dim, cfg.loss.horizon) == (5, 10, 3)
    state = cfg.state
    assert state.blur_px == (12.0,) and state.sharp_view and state.standardize
    assert (state.proprio_dims, state.proprio_weight) == ((0, 1), 4.0)
    model, resolved = build_world_model(cfg)
    # 16 plain tokens, 16 blurred, then the agent's x, y as one more.
    assert resolved.dynamics.num_tokens == 33 and model.proprio_standardizer is not None
    # The predictor is twice the state's width: in and out projections around its blocks.
    assert (resolved.dynamics.state_dim, resolved.dynamics.width) == (96, 192)
    assert model.dynamics.out_proj.out_features == 96


def test_other_actions_figures_tell_whether_the_model_reads_the_actions(tiny_dynamics):
    """Rollouts driven by another episode's actions: with every episode acting alike they
    equal the true rollouts (ratio exactly 1); with different actions a model that reads them
    predicts other futures."""
    torch.manual_seed(0)
    model, _ = build_world_model(tiny_dynamics)
    frames = torch.randn(3, 6, 3, 64, 64)
    d = model.dynamics.action_dim
    same = torch.randn(1, 5, d).expand(3, 5, d).contiguous()
    out = rollout_cosine(model, frames, same, horizons=(1, 5), other_actions=True)
    assert out["other_actions"]["error_vs_true_actions"] == {1: 1.0, 5: 1.0}
    assert out["other_actions"]["model"] == out["model"]

    varied = torch.randn(3, 5, d) * 3.0
    with torch.no_grad():  # a fresh predictor's zero-initialised output ignores its inputs
        for w in model.dynamics.parameters():
            w.normal_(0.0, 0.2)
    out = rollout_cosine(model, frames, varied, horizons=(1, 5), other_actions=True)
    assert all(abs(r - 1.0) > 1e-4 for r in out["other_actions"]["error_vs_true_actions"].values())
    assert "other_actions" not in rollout_cosine(model, frames, varied, horizons=(1, 5))
    with pytest.raises(ValueError, match="at least 2 episodes"):
        rollout_cosine(model, frames[:1], varied[:1], horizons=(1,), other_actions=True)
