"""Phase-2 window streams: actions and proprio gathered per window, carried to each batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.augment import AugmentSpec
from pipelines.manifest import SourceSpec, load_source
from pipelines.train_data import build_train_stream
from pipelines.windows import (
    WindowPipelineConfig,
    build_window_pipeline,
    gather_window_actions,
    gather_window_proprio,
)
from tests.pipeline_data import D_A, D_S, ONE_ACTOR, T, collect, known_states, write_dataset
from vjepa2.config.base import apply_overrides
from vjepa2.config.presets import get_preset
from vjepa2.data.clips import WindowSpec, window_actions, window_index


@pytest.fixture(scope="module")
def states_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pipelines") / "ds_states"
    write_dataset(root, with_states=True)
    return root


def test_window_actions_concatenate_the_skipped_steps():
    actions = np.arange(11 * D_A, dtype=np.float32).reshape(11, D_A)  # T = 12 frames
    spec = WindowSpec(horizon=2, frameskip=3)
    index = window_index([("e.mp4", T)], spec)
    # t + H*k <= T-1: starts 0..5, frames t, t+3, t+6.
    assert index.start.tolist() == [0, 1, 2, 3, 4, 5]
    assert index.frame_indices(5).tolist() == [5, 8, 11]
    w = window_actions(actions, 5, 2, 3)
    assert w.shape == (2, 3 * D_A)
    np.testing.assert_array_equal(w[0], actions[5:8].reshape(-1))
    np.testing.assert_array_equal(w[1], actions[8:11].reshape(-1))
    np.testing.assert_array_equal(window_actions(actions, 4, 3, 1), actions[4:7])
    with pytest.raises(IndexError, match="needs actions up to 11"):
        window_actions(actions, 6, 2, 3)
    gathered = gather_window_actions([actions], index.video, index.start, spec)
    for i, s in enumerate(index.start.tolist()):
        np.testing.assert_array_equal(gathered[i], window_actions(actions, s, 2, 3))


def test_window_proprio_is_the_states_at_the_window_frames():
    states = [known_states(0), known_states(1)[:9]]  # T = 12 and 9 frames
    spec = WindowSpec(horizon=2, frameskip=3)
    video = np.array([1, 0, 1, 0, 0])
    start = np.array([2, 5, 0, 0, 3])
    dims = [2, 0]
    got = gather_window_proprio([s[:, dims] for s in states], video, start, spec)
    assert got.shape == (5, 3, 2) and got.dtype == np.float32
    for i, (v, t) in enumerate(zip(video, start, strict=True)):
        np.testing.assert_array_equal(got[i], states[v][[t, t + 3, t + 6]][:, dims])
    np.testing.assert_allclose(got[0], [[102.2, 102.0], [105.2, 105.0], [108.2, 108.0]])
    with pytest.raises(IndexError, match="need states up to 9, the episode has 9"):
        gather_window_proprio(states, np.array([1]), np.array([3]), spec)
    none = np.zeros(0, np.int64)
    assert gather_window_proprio(states, none, none, spec).shape == (0, 3, D_S)


def test_window_stream_pairs_frames_with_concatenated_actions(ray_cluster, dataset):
    spec = WindowSpec(horizon=2, frameskip=2, step=4)
    cfg = WindowPipelineConfig(
        SourceSpec(str(dataset)), spec, AugmentSpec(size=16), decode=ONE_ACTOR
    )
    pipe = build_window_pipeline(cfg)
    got = collect(pipe, batch_size=4)
    assert set(got) == {"frames", "actions", "sample_id"}  # no proprio unless asked for
    assert sorted(got["frames"]) == list(range(len(pipe.index))) == list(range(8))
    source = load_source(SourceSpec(str(dataset)))
    by_path = dict(zip(source.paths, source.episodes, strict=True))
    for sid, frames in got["frames"].items():
        assert frames.shape == (3, 16, 16, 3)
        episode = by_path[pipe.index.paths[pipe.index.video[sid]]]
        start = int(pipe.index.start[sid])
        expected = window_actions(episode.actions, start, 2, 2)
        np.testing.assert_array_equal(got["actions"][sid], expected)
        assert got["actions"][sid].shape == (2, 2 * D_A)
    with pytest.raises(ValueError, match="hflip"):
        build_window_pipeline(
            WindowPipelineConfig(SourceSpec(str(dataset)), spec, AugmentSpec(hflip=True))
        )


@pytest.mark.parametrize("frameskip", [1, 3])
def test_window_stream_carries_the_states_at_its_frames_as_proprio(
    ray_cluster, states_dataset, frameskip
):
    spec = WindowSpec(horizon=2, frameskip=frameskip, step=2)
    dims = (2, 0)
    cfg = WindowPipelineConfig(
        SourceSpec(str(states_dataset)), spec, decode=ONE_ACTOR, proprio_dims=dims
    )
    pipe = build_window_pipeline(cfg)
    got = collect(pipe, batch_size=4)
    assert set(got) == {"frames", "actions", "proprio", "sample_id"}
    assert sorted(got["proprio"]) == list(range(len(pipe.index)))
    source = load_source(SourceSpec(str(states_dataset)))
    by_path = dict(zip(source.paths, source.episodes, strict=True))
    for sid, proprio in got["proprio"].items():
        episode = by_path[pipe.index.paths[pipe.index.video[sid]]]
        frames = pipe.index.frame_indices(sid)
        assert frames.tolist() == [frames[0] + frameskip * j for j in range(3)]
        i = int(episode.episode_id.removeprefix("ep"))
        assert proprio.dtype == np.float32
        np.testing.assert_array_equal(proprio, known_states(i)[frames][:, dims])
        # The actions still belong to the same window.
        expected = window_actions(episode.actions, int(frames[0]), 2, frameskip)
        np.testing.assert_array_equal(got["actions"][sid], expected)


def test_proprio_needs_states_holding_its_dims(dataset, states_dataset, tmp_path):
    # Raised on the driver before any actor starts: no Ray needed.
    spec = WindowSpec(horizon=2)
    no_states = WindowPipelineConfig(SourceSpec(str(dataset)), spec, proprio_dims=(0, 1))
    missing = r"ds: episode 'ep0' has no states; proprio_dims \(0, 1\)"
    with pytest.raises(ValueError, match=missing):
        build_window_pipeline(no_states)
    too_wide = WindowPipelineConfig(SourceSpec(str(states_dataset)), spec, proprio_dims=(1, D_S))
    with pytest.raises(
        ValueError, match=r"'ep0' has 3-dimensional states; proprio_dims \(1, 3\) must lie in"
    ):
        build_window_pipeline(too_wide)
    # A dynamics job's stream asks for its state's proprio_dims (jobs read a "train" split).
    write_dataset(tmp_path / "ds", n=1, split="train")
    job = apply_overrides(
        get_preset("dynamics", "tiny"),
        [
            "data.source=dataset",
            f"data.dataset.path={tmp_path / 'ds'}",
            "state.standardize=true",
            "state.pooled=false",
            "state.proprio_dims=[0, 1]",
        ],
    )
    with pytest.raises(ValueError, match=missing):
        build_train_stream(job)


def test_stream_batches_return_proprio_when_the_stream_carries_it(ray_cluster):
    import ray
    import torch

    from pipelines.train_data import StreamBatches

    frames = np.zeros((4, 2, 2, 2, 3), np.uint8)
    actions = np.arange(4 * 3, dtype=np.float32).reshape(4, 1, 3)
    proprio = np.arange(4 * 2 * 2, dtype=np.float64).reshape(4, 2, 2)
    columns = {"frames": frames, "actions": actions}
    plain = ray.data.from_items([{k: v[i] for k, v in columns.items()} for i in range(4)])
    (x, a) = StreamBatches(plain, "dynamics", 4, 0, 0).batch(0)
    assert x.shape == (4, 2, 3, 2, 2) and torch.equal(a, torch.from_numpy(actions))
    columns["proprio"] = proprio
    with_p = ray.data.from_items([{k: v[i] for k, v in columns.items()} for i in range(4)])
    (x, a, p) = StreamBatches(with_p, "dynamics", 4, 0, 0).batch(0)
    assert p.dtype == torch.float32 and torch.equal(p, torch.from_numpy(proprio).float())
