"""Understanding probes: the direction-of-motion clips, both probes, run_probes and the job."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from jobs import probe as probe_job
from vjepa2.config import ConfigError, EncoderConfig, apply_overrides
from vjepa2.eval.probes import (
    NUM_CLASSES,
    PROBES,
    ProbeConfig,
    clip_frames,
    direction_vectors,
    extract_features,
    make_motion_clips,
    markdown_table,
    probe_features,
    random_encoder,
    run_probes,
)

TINY_ENCODER = EncoderConfig(
    img_size=32, num_frames=4, patch_size=16, tubelet_size=2, embed_dim=32, depth=1, num_heads=2
)


def centroids(frames: np.ndarray) -> np.ndarray:
    """The agent's pixel centroid [N, T, 2] (x, y): red minus green is zero off the agent."""
    f = frames.astype(np.float64)
    mass = np.clip(f[..., 0] - f[..., 1], 0, None)  # [N, T, H, W]
    ys, xs = np.indices(mass.shape[-2:]) + 0.5
    total = mass.sum((-2, -1))
    return np.stack([(mass * xs).sum((-2, -1)) / total, (mass * ys).sum((-2, -1)) / total], -1)


def test_clips_are_deterministic_by_seed_balanced_and_never_blocked():
    a = make_motion_clips(3, 4, seed=7)
    b = make_motion_clips(3, 4, seed=7)
    test = make_motion_clips(3, 4, seed=7, split="test")
    assert a.frames.shape == (3 * NUM_CLASSES, 4, 64, 64, 3) and a.frames.dtype == np.uint8
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.positions[:, 0], test.positions[:, 0])
    assert np.bincount(a.labels, minlength=NUM_CLASSES).tolist() == [3] * NUM_CLASSES
    # Every step moved the full commanded distance: no wall or border stopped the agent.
    steps = np.diff(a.positions, axis=1)
    want = 0.5 * 2.0 * direction_vectors()[a.labels][:, None]
    np.testing.assert_allclose(steps, np.broadcast_to(want, steps.shape), atol=1e-9)
    assert len(np.unique(a.positions[:, 0, 0] < 32)) == 2  # starts in both rooms


def test_one_frame_says_nothing_about_the_direction_but_the_motion_does():
    train = make_motion_clips(24, 4, seed=0)
    test = make_motion_clips(16, 4, seed=0, split="test")
    cfg = ProbeConfig(probes=("linear",), epochs=60, lr=3e-2, batch_size=64)

    def top1(features) -> float:
        tr, te = (torch.tensor(features(c), dtype=torch.float32) for c in (train, test))
        labels = (torch.from_numpy(train.labels), torch.from_numpy(test.labels))
        return probe_features((tr, labels[0]), (te, labels[1]), cfg)[0]["top1"]

    first = top1(lambda c: centroids(c.frames)[:, 0])
    motion = top1(lambda c: centroids(c.frames)[:, -1] - centroids(c.frames)[:, 0])
    assert first < 0.3  # chance is 0.125
    assert motion > 0.95


@pytest.mark.parametrize("probe", PROBES)
def test_probes_read_a_direction_encoded_in_tokens_and_not_noise(probe):
    gen = torch.Generator().manual_seed(0)
    codes = torch.randn(NUM_CLASSES, 16, generator=gen)

    def split(n: int, signal: bool) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % NUM_CLASSES
        x = torch.randn(n, 6, 16, generator=gen)
        return (x + 1.5 * codes[y][:, None] if signal else x), y

    cfg = ProbeConfig(probes=(probe,), epochs=20, lr=3e-3, batch_size=32, attn_heads=4)
    (good,) = probe_features(split(128, True), split(128, True), cfg)
    (noise,) = probe_features(split(128, False), split(128, False), cfg)
    assert good["top1"] > 0.9
    assert noise["top1"] < 0.3 and noise["train_top1"] > noise["top1"]


def test_run_probes_gives_a_row_per_encoder_and_probe_deterministically():
    encoders = {"a": random_encoder(TINY_ENCODER, 0), "b": random_encoder(TINY_ENCODER, 1)}
    encoders["a"].train()
    cfg = ProbeConfig(train_per_class=2, test_per_class=1, epochs=2, attn_heads=2)
    rows = run_probes(encoders, cfg)
    assert [(r["encoder"], r["probe"]) for r in rows] == [
        (e, p) for e in ("a", "b") for p in PROBES
    ]
    for r in rows:
        assert 0.0 <= r["top1"] <= 1.0 and 0.0 <= r["train_top1"] <= 1.0
        assert (r["train_clips"], r["test_clips"]) == (16, 8)
    assert encoders["a"].training  # extraction ran in eval mode and restored the mode
    again = run_probes(encoders, cfg)
    assert [r["top1"] for r in again] == [r["top1"] for r in rows]
    table = markdown_table(rows)
    assert "| a | attentive |" in table and "| chance | - | 12.5% | 12.5% |" in table


def test_features_are_frozen_tokens():
    encoder = random_encoder(TINY_ENCODER, 0)
    clips = make_motion_clips(1, 4, seed=0, img_size=32)
    x = extract_features(encoder, clips.frames, batch_size=3)
    assert x.shape == (NUM_CLASSES, encoder.num_patches(), 32) and not x.requires_grad


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["num_frames=3"], "multiple of tubelet_size"),
        (["num_frames=16", "speed=1.0"], "does not fit"),
        (["probes=[linear,magic]"], "unknown probes"),
        (["epoch=3"], "unknown key"),
    ],
)
def test_bad_probe_configs_are_errors(overrides, message):
    with pytest.raises((ConfigError, ValueError), match=message):
        clip_frames(apply_overrides(ProbeConfig(), overrides), TINY_ENCODER)


# --------------------------------------------------------------------------- the job


@pytest.fixture
def tiny_checkpoint(tiny_checkpoints):
    return tiny_checkpoints[0]


SMALL = ["--set=train_per_class=2", "--set=test_per_class=1", "--set=epochs=2", "--quiet"]


@pytest.mark.slow
def test_probe_job_writes_the_table_and_json(tiny_checkpoint, tmp_path):
    out = tmp_path / "probe"
    results = probe_job.main(
        [f"--checkpoint={tiny_checkpoint.checkpoint}", f"--out={out}", "--no-mlflow", *SMALL]
    )
    pairs = [(r["encoder"], r["probe"]) for r in results["probes"]]
    assert pairs == [(e, p) for e in ("pretrained", "random") for p in PROBES]
    assert json.loads((out / "results.json").read_text())["probes"] == results["probes"]
    md = (out / "results.md").read_text()
    assert "| pretrained | linear |" in md and "| random | attentive |" in md
    assert "chance" in md


@pytest.mark.slow
def test_probe_job_logs_to_mlflow_beside_the_checkpoint(tiny_checkpoint, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    ckpt = tiny_checkpoint.checkpoint
    results = probe_job.main([f"--checkpoint={ckpt}", f"--tracking-uri={uri}", *SMALL])
    assert (ckpt.parent / "probe" / "results.md").is_file()  # the default --out
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("vjepa2-eval")
    (run,) = client.search_runs([exp.experiment_id])
    row = results["probes"][0]
    assert run.data.metrics[f"pretrained/{row['probe']}/top1"] == row["top1"]
    assert run.data.params["train_per_class"] == "2"
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert names >= {"results.md", "results.json"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--checkpoint=/nonexistent.pt"], "checkpoint not found"),
        (["--set=epoch=3"], "unknown key"),
        (["--set=probes=[magic]"], "unknown probes"),
        (["--set=num_frames=5"], "tubelet_size"),
    ],
)
def test_bad_job_arguments_exit_with_one_clear_line(tiny_checkpoint, argv, message):
    full = argv if "checkpoint" in argv[0] else [f"--checkpoint={tiny_checkpoint.checkpoint}"]
    with pytest.raises(SystemExit, match=message):
        probe_job.main(full + ([] if "checkpoint" in argv[0] else argv))


def test_a_file_that_is_no_checkpoint_is_a_clear_exit(tmp_path):
    bad = tmp_path / "final.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match="checkpoint error"):
        probe_job.main([f"--checkpoint={bad}", "--no-mlflow"])
