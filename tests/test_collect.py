"""Collection: local and Ray runs agree, resuming equals a fresh run, PushT works, inspection."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from vjepa2.config import ConfigError
from vjepa2.data.collect import (
    CollectConfig,
    episode_id,
    episode_seed,
    episode_split,
    rollout_episode,
)
from vjepa2.data.collect_sink import collect_local
from vjepa2.data.contact_sheet import dataset_contact_sheet, frame_indices
from vjepa2.data.dataset import VideoActionDataset

STEPS = 10  # 11 frames an episode


def tworoom(out, episodes: int = 4, **kwargs) -> CollectConfig:
    return CollectConfig(
        out=str(out),
        env="tworoom",
        episodes=episodes,
        steps_per_episode=STEPS,
        img_size=32,
        val_fraction=0.25,
        **kwargs,
    )


def index_table(root):
    return pq.read_table(root / "episodes.parquet")


def decoded(root) -> dict[str, np.ndarray]:
    ds = VideoActionDataset.open(root, verify_videos=True)
    out = {}
    for ep in ds:
        with ds.open_video(ep, "pyav") as reader:
            assert reader.num_frames == ep.num_frames == STEPS + 1
            out[ep.episode_id] = reader.get_frames(range(reader.num_frames))
    return out


def assert_same_dataset(a, b) -> None:
    """Index files equal byte for byte; videos decode to the same frames. The mp4 bytes may
    differ: x264 does not always emit the same bitstream for the same frames."""
    assert index_table(a).equals(index_table(b), check_metadata=True)
    assert (a / "episodes.parquet").read_bytes() == (b / "episodes.parquet").read_bytes()
    va, vb = decoded(a), decoded(b)
    assert va.keys() == vb.keys()
    for key in va:
        assert np.abs(va[key].astype(np.int16) - vb[key]).mean() < 0.5, key


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A 5-episode local collection everything else is compared with."""
    root = tmp_path_factory.mktemp("fresh")
    summary = collect_local(tworoom(root, episodes=5), progress=False)
    assert (summary.episodes, summary.new_episodes, summary.new_frames) == (5, 5, 5 * (STEPS + 1))
    return root


def test_rollout_is_deterministic_per_index_and_matches_the_video(fresh):
    cfg = tworoom(fresh)
    frames, actions, states = rollout_episode(cfg, 3)
    again = rollout_episode(cfg, 3)
    for x, y in zip((frames, actions, states), again, strict=True):
        np.testing.assert_array_equal(x, y)
    assert frames.shape == (STEPS + 1, 32, 32, 3) and frames.dtype == np.uint8
    assert actions.shape == (STEPS, 2) and states.shape == (STEPS + 1, 2)
    assert not np.array_equal(states, rollout_episode(cfg, 2)[2])
    ep = VideoActionDataset.open(fresh)[3]
    np.testing.assert_array_equal(ep.actions, actions)
    np.testing.assert_array_equal(ep.states, states)
    with VideoActionDataset.open(fresh).open_video(ep, "pyav") as reader:
        video = reader.get_frames(range(reader.num_frames))
    assert np.abs(video.astype(np.int16) - frames).mean() < 3.0
    # Drawn larger and resized to img_size (what an evaluation at another render size shows):
    # the same episode, resized frames that are not the stored ones.
    large, large_actions, large_states = rollout_episode(cfg, 3, render_size=64)
    np.testing.assert_array_equal(large_actions, actions)
    np.testing.assert_array_equal(large_states, states)
    assert large.shape == frames.shape
    assert np.abs(large.astype(np.int16) - frames).mean() > 0.5


def test_seeds_ids_and_splits_are_fixed_by_index():
    a, b = episode_seed(0, 7), episode_seed(0, 7)
    assert a.generate_state(2).tolist() == b.generate_state(2).tolist()
    assert episode_seed(0, 8).generate_state(2).tolist() != a.generate_state(2).tolist()
    assert episode_id(12) == "ep_000012"
    splits = [episode_split(i, 0.25) for i in range(8)]
    assert splits == ["val", "train", "train", "train", "val", "train", "train", "train"]
    assert {episode_split(i, 0.0) for i in range(10)} == {"train"}


def test_ray_collection_equals_local(fresh, tmp_path, ray_cluster):
    from jobs.collect import run_collect

    summary = run_collect(tworoom(tmp_path, episodes=5, workers=2), progress=False)
    assert summary.new_episodes == 5 and summary.bytes_on_disk > 0
    assert_same_dataset(fresh, tmp_path)


def test_resume_produces_only_the_missing_episodes(fresh, tmp_path, ray_cluster):
    from jobs.collect import run_collect

    assert collect_local(tworoom(tmp_path, episodes=3), progress=False).new_episodes == 3
    # Simulate an interruption that lost episode 1's row: only 1, 3 and 4 are made again.
    table = index_table(tmp_path)
    pq.write_table(table.filter(np.array(table["episode_id"].to_pylist()) != "ep_000001"),
                   tmp_path / "episodes.parquet")  # fmt: skip
    summary = run_collect(tworoom(tmp_path, episodes=5, episodes_per_task=1), progress=False)
    assert (summary.resumed_from, summary.new_episodes, summary.episodes) == (2, 3, 5)
    assert_same_dataset(fresh, tmp_path)  # rows back in id order, contents as a fresh run
    assert collect_local(tworoom(tmp_path, episodes=5), progress=False).new_episodes == 0


def test_resume_with_other_settings_is_refused(fresh, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(fresh, root)
    with pytest.raises(ConfigError, match="seed"):
        collect_local(tworoom(root, episodes=6, seed=1), progress=False)
    assert len(index_table(root)) == 5


def test_pusht_collection(tmp_path):
    cfg = CollectConfig(
        out=str(tmp_path), env="pusht", policy="block_pushing", episodes=1, steps_per_episode=6
    )
    collect_local(cfg, progress=False)
    ds = VideoActionDataset.open(tmp_path, verify_videos=True)
    (ep,) = ds.episodes
    assert (ep.num_frames, ep.height, ep.width) == (7, 64, 64)
    assert ep.actions.shape == (6, 2) and ep.states.shape == (7, 5)
    assert np.abs(ep.actions).max() <= 1.0


def test_contact_sheet_shows_each_episode(fresh):
    ds = VideoActionDataset.open(fresh)
    sheet = dataset_contact_sheet(ds, episodes=3, frames=4, min_cell=64)
    # 32 px frames doubled, 4 columns after a 110 px label column, 3 rows of 64 + 14 px labels.
    assert sheet.dtype == np.uint8 and sheet.shape == (3 * (64 + 14 + 4) + 4, 110 + 4 * 68 + 4, 3)
    cells = [sheet[4 + r * 82 : 4 + r * 82 + 64, 114 : 114 + 64] for r in range(3)]
    assert not np.array_equal(cells[0], cells[1]) and not np.array_equal(cells[1], cells[2])
    assert frame_indices(11, 4) == [0, 3, 7, 10] and frame_indices(2, 8) == [0, 1]


def test_inspect_job_writes_a_png_and_summarises(fresh, tmp_path, capsys):
    from PIL import Image

    from jobs.inspect_dataset import main

    summary = main([str(fresh), "--out", str(tmp_path / "sheet.png"), "--frames", "3"])
    assert summary["episodes"] == 5 and summary["splits"] == {"train": 3, "val": 2}
    assert summary["action_dim"] == 2 and summary["state_dim"] == 2
    assert -1.0 <= min(summary["action_min"]) <= max(summary["action_max"]) <= 1.0
    assert Image.open(tmp_path / "sheet.png").size[0] > 110
    assert "splits" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--env", "nowhere"], "unknown env 'nowhere'"),
        (["--env", "gym:NoSuchEnv-v0"], "cannot build env"),
        (["--env", "pusht", "--policy", "door_seeking"], "needs a TwoRoom"),
        (["--img-size", "33"], "img_size must be even"),
        (["--env-kwarg", "door_y"], "KEY=VALUE"),
    ],
)
def test_cli_errors_are_clear(tmp_path, argv, message):
    from jobs.collect import main

    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "d"), "--local", "--quiet", *argv])
    assert message in str(exc.value)
    assert not (tmp_path / "d" / "episodes.parquet").exists()


def test_config_round_trips_through_from_dict():
    from vjepa2.config import from_dict, to_dict

    cfg = CollectConfig(out="x", env_kwargs={"random_door": False}, episodes=3)
    assert from_dict(CollectConfig, to_dict(cfg)) == cfg
    assert dataclasses.replace(cfg, seed=2).seed == 2
