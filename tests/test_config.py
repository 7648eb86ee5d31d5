from __future__ import annotations

import pytest

from vjepa2.config import (
    PRESETS,
    ConfigError,
    MaskConfig,
    PretrainConfig,
    apply_overrides,
    from_dict,
    get_preset,
    load_yaml,
    save_yaml,
    to_dict,
)


@pytest.mark.parametrize(("job", "name"), [(j, n) for j in PRESETS for n in PRESETS[j]])
def test_every_preset_round_trips_through_yaml(tmp_path, job, name):
    cfg = get_preset(job, name)
    path = tmp_path / "cfg.yaml"
    save_yaml(cfg, path)
    assert load_yaml(type(cfg), path) == cfg


def test_overrides_are_typed_and_nested():
    cfg = apply_overrides(
        get_preset("pretrain", "tiny"),
        ["optim.lr=3e-4", "train.steps=7", "encoder.pos_embed=rope", "optim.betas=[0.8, 0.9]"],
    )
    assert cfg.optim.lr == pytest.approx(3e-4) and isinstance(cfg.optim.lr, float)
    assert cfg.train.steps == 7
    assert cfg.encoder.pos_embed == "rope"
    assert cfg.optim.betas == (0.8, 0.9)


def test_override_replaces_a_list_of_dataclasses():
    cfg = apply_overrides(PretrainConfig(), ["mask.groups=[{num_blocks: [2, 3]}]"])
    assert cfg.mask.groups[0].num_blocks == (2, 3)
    assert cfg.mask.groups[0].spatial_scale == MaskConfig().groups[0].spatial_scale


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lrr=1", "unknown key"),
        ("nosuch.lr=1", "unknown key"),
        ("encoder.pos_embed=learned", "not one of"),
        ("train.steps=ten", "expected an integer"),
        ("train.steps=2.5", "expected an integer"),
        ("ema.enabled=maybe", "true/false"),
        ("optim.lr=-1", "optim.lr must be > 0"),
        ("encoder.num_heads=5", "divide by num_heads"),
        ("mask.groups=[{spatial_scale: [0.8, 0.2]}]", "spatial_scale"),
        ("missing-equals", "key.sub=value"),
    ],
)
def test_bad_overrides_fail_with_a_clear_message(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(get_preset("pretrain", "tiny"), [override])


def test_unknown_yaml_key_is_an_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        load_yaml(PretrainConfig, path)


def test_missing_yaml_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(PretrainConfig, tmp_path / "nope.yaml")


def test_unknown_preset_lists_valid_names():
    with pytest.raises(ConfigError, match="tiny"):
        get_preset("pretrain", "huge")


def test_to_dict_from_dict_identity():
    cfg = get_preset("dynamics", "tiny")
    assert from_dict(type(cfg), to_dict(cfg)) == cfg


def test_the_pusht_presets_plan_on_the_same_state_at_their_own_resolution():
    """``pusht`` (8 px patches, hours) carries what ``pusht_small`` (16 px) learned: the
    plain and 12 px-blurred standardised grids, the agent as a token, a depth-6 predictor
    of width 192; only the encoder and the schedule differ."""
    from vjepa2.train.builders import build_world_model

    small, big = get_preset("dynamics", "pusht_small"), get_preset("dynamics", "pusht")
    assert big.state == small.state and big.loss == small.loss
    assert big.data.dataset.frameskip == small.data.dataset.frameskip == 5
    assert (big.dynamics.depth, big.dynamics.width) == (small.dynamics.depth, 192)
    assert (big.encoder.patch_size, small.encoder.patch_size) == (8, 16)
    model, _ = build_world_model(big)
    # 8 x 8 tokens per grid at 64 px, two grids, one proprio token
    assert model.dynamics.cfg.num_tokens == 2 * 64 + 1
    # The README's cheaper variant: each grid pooled to pusht_small's 4 x 4
    pooled, _ = build_world_model(apply_overrides(big, ["state.grid_pool=2"]))
    assert pooled.dynamics.cfg.num_tokens == 2 * 16 + 1


@pytest.mark.parametrize("env", ["tworoom", "pusht"])
def test_the_hours_long_phase_1_presets_keep_the_features_spread(env):
    # Their Phase 1 is the *_small recipes' (variance and covariance terms at weight 1).
    big, small = get_preset("pretrain", env), get_preset("pretrain", f"{env}_small")
    assert big.loss == small.loss and big.loss.variance_weight == big.loss.covariance_weight == 1
