"""Training from several dataset folders at once (``data.dataset.extra_paths``): the in-memory
source and the Ray Data stream pool their episodes, each folder split on its own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.manifest import SourceSpec, load_source
from pipelines.windows import WindowPipelineConfig, build_window_pipeline
from tests.pipeline_data import ONE_ACTOR, SIZE, T, collect, known_states, write_dataset
from vjepa2.config.base import apply_overrides
from vjepa2.config.jobs import DatasetSourceConfig
from vjepa2.config.presets import get_preset
from vjepa2.data.clips import WindowSpec, window_actions
from vjepa2.data.dataset import DatasetError, DatasetWriter, SkipReport
from vjepa2.data.transforms import normalize_frames
from vjepa2.train.sources import DatasetSource

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def two_folders(tmp_path_factory) -> tuple[Path, Path]:
    """Four and two training episodes of different videos, with states."""
    root = tmp_path_factory.mktemp("pooled")
    write_dataset(root / "a", n=4, seed=0, with_states=True, split="train")
    write_dataset(root / "b", n=2, seed=1, with_states=True, split="train")
    return root / "a", root / "b"


def _wide_actions(root: Path) -> Path:
    """One episode whose actions are 3-dimensional, unlike ``write_dataset``'s 2."""
    with DatasetWriter(root) as writer:
        frames = np.zeros((T, SIZE, SIZE, 3), np.uint8)
        writer.add_episode(
            "ep0", frames, 5, actions=np.zeros((T - 1, 3), np.float32), split="train"
        )
    return root


def test_extra_paths_config_lists_every_folder_once():
    assert DatasetSourceConfig(path="a", extra_paths=["b", "c"]).paths == ("a", "b", "c")
    assert DatasetSourceConfig(path="a", extra_paths="b").extra_paths == ("b",)  # one, bare
    assert DatasetSourceConfig(path="a").paths == ("a",)
    for bad in (["a"], ["b", "b"], [""]):
        with pytest.raises(ValueError, match="extra_paths"):
            DatasetSourceConfig(path="a", extra_paths=bad)
    job = apply_overrides(
        get_preset("dynamics", "tiny"),
        ["data.source=dataset", "data.dataset.path=a", "data.dataset.extra_paths=[b, c]"],
    )
    assert job.data.dataset.paths == ("a", "b", "c")


def test_in_memory_source_pools_the_folders_episodes(two_folders, tmp_path):
    a, b = (str(p) for p in two_folders)
    pooled = DatasetSource([a, b], "train", CPU, frameskip=2, proprio_dims=(1,))
    only_a = DatasetSource(a, "train", CPU, frameskip=2, proprio_dims=(1,))
    only_b = DatasetSource(b, "train", CPU, frameskip=2, proprio_dims=(1,))
    assert len(pooled) == len(only_a) + len(only_b) == 6
    assert torch.equal(pooled.frames, torch.cat([only_a.frames, only_b.frames]))
    assert torch.equal(pooled.actions, torch.cat([only_a.actions, only_b.actions]))
    # b's first episode, after a's four, keeps its own states.
    assert torch.equal(pooled.proprio[4, :, 0], torch.from_numpy(known_states(0)[:, 1]))
    assert not torch.equal(pooled.frames[4], pooled.frames[0])  # different videos (seeds)
    # Windows are drawn from both folders' episodes.
    frames, _, _ = pooled.windows(64, 2, torch.Generator().manual_seed(0))
    b_frames = normalize_frames(only_b.frames).flatten(0, 1)
    from_b = [bool((b_frames == f[0]).all(dim=(1, 2, 3)).any()) for f in frames]
    assert 0 < sum(from_b) < 64
    with pytest.raises(ValueError, match="3-dimensional actions, the first dataset's are 2"):
        DatasetSource([a, str(_wide_actions(tmp_path / "wide"))], "train", CPU)
    with pytest.raises(ValueError, match="no episodes in split 'val'"):
        DatasetSource([a, b], "val", CPU)


def test_manifest_pools_the_folders_and_refuses_mixed_action_widths(two_folders, tmp_path):
    a, b = (str(p) for p in two_folders)
    spec = SourceSpec(a, split="train", extra=(b,))
    assert spec.name == f"{a} + {b}"
    pooled = load_source(spec, require_actions=True)
    assert len(pooled.episodes) == len(pooled.paths) == 6
    assert [Path(p).parent.parent for p in pooled.paths] == [Path(a)] * 4 + [Path(b)] * 2
    assert pooled.action_dim == 2
    wide = str(_wide_actions(tmp_path / "wide"))
    with pytest.raises(ValueError, match="actions are 3-dimensional"):
        load_source(SourceSpec(a, split="train", extra=(wide,)), require_actions=True)


def test_skip_reports_of_pooled_sources_merge():
    first, other = SkipReport(), SkipReport()
    first.add(DatasetError("a/x.mp4", "unreadable_video", "bad"))
    other.add(DatasetError("b/y.mp4", "unreadable_video", "bad"))
    other.add(DatasetError("b/z.parquet", "nan_actions", "bad"))
    first.merge(other)
    assert first.counts == {"unreadable_video": 2, "nan_actions": 1}
    assert first.skipped["unreadable_video"][1].startswith("b/y.mp4")
    assert other.counts == {"unreadable_video": 1, "nan_actions": 1}  # left as it was


def test_window_stream_reads_windows_from_every_folder(ray_cluster, two_folders):
    a, b = (str(p) for p in two_folders)
    spec = WindowSpec(horizon=2, frameskip=2, step=3)
    cfg = WindowPipelineConfig(SourceSpec(a, extra=(b,)), spec, decode=ONE_ACTOR, proprio_dims=(0,))
    pipe = build_window_pipeline(cfg)
    got = collect(pipe, batch_size=4)
    source = load_source(SourceSpec(a, extra=(b,)))
    by_path = dict(zip(source.paths, source.episodes, strict=True))
    folders = set()
    for sid, proprio in got["proprio"].items():
        path = pipe.index.paths[pipe.index.video[sid]]
        folders.add(Path(path).parent.parent)
        episode = by_path[path]
        frames = pipe.index.frame_indices(sid)
        i = int(episode.episode_id.removeprefix("ep"))
        np.testing.assert_array_equal(proprio, known_states(i)[frames][:, [0]])
        expected = window_actions(episode.actions, int(frames[0]), 2, 2)
        np.testing.assert_array_equal(got["actions"][sid], expected)
    assert folders == {Path(a), Path(b)}
