"""Video-action datasets: round trip, validation of bad input, resuming, plain videos, splits."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow._fs import _MockFileSystem

from vjepa2.data.dataset import (
    DatasetError,
    DatasetWriter,
    EpisodeRecord,
    VideoActionDataset,
    open_plain_videos,
    split_episodes,
)

SIZE, FPS, D_A = 32, 5, 2


def episode(seed: int, t: int = 6) -> dict[str, np.ndarray]:
    """A square pushed by the actions (2-D velocity), with its position as the state."""
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (t - 1, D_A)).astype(np.float32)
    pos = np.cumsum(np.vstack([[12.0, 12.0], 3 * actions]), axis=0).clip(0, SIZE - 8)
    frames = np.full((t, SIZE, SIZE, 3), 20, np.uint8)
    for i, (y, x) in enumerate(pos.astype(int)):
        frames[i, y : y + 8, x : x + 8] = (40, 200, 90)
    return {
        "frames": frames,
        "actions": actions,
        "states": pos.astype(np.float32),
        "proprio": rng.normal(size=(t, 3)).astype(np.float32),
    }


def write_dataset(root: Path | str, n: int = 3, **kwargs) -> dict[str, dict[str, np.ndarray]]:
    data = {f"ep{i}": episode(i, t=5 + i) for i in range(n)}
    with DatasetWriter(root, **kwargs) as writer:
        for ep_id, d in data.items():
            writer.add_episode(
                ep_id,
                d["frames"],
                FPS,
                actions=d["actions"],
                states=d["states"],
                proprio=d["proprio"],
            )
    return data


def test_round_trip_is_exact(tmp_path):
    data = write_dataset(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["episodes.parquet", "videos"]
    ds = VideoActionDataset.open(tmp_path, verify_videos=True)
    assert [e.episode_id for e in ds] == ["ep0", "ep1", "ep2"]
    assert ds.action_dim == D_A and ds.skipped.total == 0
    for ep in ds:
        d = data[ep.episode_id]
        assert (ep.num_frames, ep.height, ep.width, ep.fps) == (len(d["frames"]), SIZE, SIZE, FPS)
        assert ep.video_path == f"videos/{ep.episode_id}.mp4"
        for name in ("actions", "states", "proprio"):
            got = getattr(ep, name)
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, d[name])  # bitwise
        frames = ds.open_video(ep, "pyav").get_frames(range(ep.num_frames))
        assert np.abs(frames.astype(np.int16) - d["frames"]).mean() < 3.0
    schema = pq.read_schema(tmp_path / "episodes.parquet")
    assert schema.field("actions").type == pa.list_(pa.list_(pa.float32()))


def test_open_accepts_uri_and_any_pyarrow_filesystem(tmp_path):
    write_dataset(tmp_path, n=2)
    ds = VideoActionDataset.open(f"file://{tmp_path}", verify_videos=True)
    assert len(ds) == 2
    # A non-local filesystem: videos are uploaded on write and fetched as bytes on read.
    fs = _MockFileSystem()
    data = write_dataset("bucket/ds", n=2, filesystem=fs)
    for backend in ("decord", "pyav"):
        ds = VideoActionDataset.open(
            "bucket/ds", filesystem=fs, verify_videos=True, backend=backend
        )
        assert [e.episode_id for e in ds] == ["ep0", "ep1"]
        np.testing.assert_array_equal(ds[1].actions, data["ep1"]["actions"])
        assert ds.open_video(ds[0], backend).get_frames([0]).shape == (1, SIZE, SIZE, 3)


def test_plain_dataset_without_actions(tmp_path):
    frames = episode(0)["frames"]
    with DatasetWriter(tmp_path) as w:
        w.add_episode("a", frames, FPS, split="train")
        with pytest.raises(ValueError, match="has no actions"):
            w.add_episode("b", frames, FPS, actions=np.zeros((5, 2), np.float32))
    ds = VideoActionDataset.open(tmp_path)
    assert ds.action_dim is None and ds[0].actions is None and ds[0].split == "train"


def test_writer_rejects_bad_episodes(tmp_path):
    d = episode(0)
    w = DatasetWriter(tmp_path)
    w.add_episode("ok", d["frames"], FPS, actions=d["actions"])
    cases = {
        "action_count_mismatch": dict(actions=np.zeros((6, D_A), np.float32)),
        "action_dim_mismatch": dict(actions=np.zeros((5, 3), np.float32)),
        "non_finite_actions": dict(actions=np.full((5, D_A), np.nan, np.float32)),
    }
    for reason, kwargs in cases.items():
        with pytest.raises(ValueError, match=reason):
            w.add_episode("bad", d["frames"], FPS, **kwargs)
    with pytest.raises(ValueError, match="already"):
        w.add_episode("ok", d["frames"], FPS, actions=d["actions"])
    with pytest.raises(ValueError, match="names a file"):
        w.add_episode("../escape", d["frames"], FPS, actions=d["actions"])
    assert not (tmp_path / "videos" / "bad.mp4").exists()  # validated before writing


def test_resume_keeps_existing_episodes(tmp_path):
    data = write_dataset(tmp_path, n=2)
    more = episode(7)
    writer = DatasetWriter(tmp_path)
    assert writer.has_episode("ep0") and writer.has_episode("ep1")
    assert not writer.has_episode("ep2")
    assert [e.episode_id for e in writer.episodes] == ["ep0", "ep1"]
    with pytest.raises(RuntimeError), writer:
        writer.add_episode(
            "ep2",
            more["frames"],
            FPS,
            actions=more["actions"],
            states=more["states"],
            proprio=more["proprio"],
        )
        raise RuntimeError("crash after one more episode")  # the exit flush still saves it
    ds = VideoActionDataset.open(tmp_path, verify_videos=True)
    assert [e.episode_id for e in ds] == ["ep0", "ep1", "ep2"]
    np.testing.assert_array_equal(ds[0].actions, data["ep0"]["actions"])
    np.testing.assert_array_equal(ds[2].states, more["states"])


# --- malformed input: every case raises naming the file, or is skipped and counted ---------


def _edit_row(root: Path, ep_id: str, **changes) -> None:
    table = pq.read_table(root / "episodes.parquet")
    rows = table.to_pylist()
    for row in rows:
        if row["episode_id"] == ep_id:
            row.update(changes)
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), root / "episodes.parquet")


def _truncate(root: Path) -> None:
    video = root / "videos" / "ep1.mp4"
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])


def _actions(t: int, d: int = D_A, fill: float = 0.0) -> list[list[float]]:
    return np.full((t, d), fill, np.float32).tolist()


# ep1 has 6 frames, so 5 actions. Each case: (corrupt, reason, needs verify_videos, text)
BAD_CASES: dict[str, tuple[Callable[[Path], None], str, bool, str]] = {
    "missing video": (
        lambda r: (r / "videos" / "ep1.mp4").unlink(),
        "missing_video",
        False,
        "not found",
    ),
    "truncated video": (_truncate, "unreadable_video", True, ""),
    "garbage video": (
        lambda r: (r / "videos" / "ep1.mp4").write_bytes(os.urandom(3000)),
        "unreadable_video",
        True,
        "",
    ),
    "frame count vs file": (
        lambda r: _edit_row(
            r, "ep1", num_frames=8, actions=_actions(7), states=_actions(8), proprio=_actions(8, 3)
        ),
        "frame_count_mismatch",
        True,
        "8 frames",
    ),
    "action count": (
        lambda r: _edit_row(r, "ep1", actions=_actions(6)),
        "action_count_mismatch",
        False,
        "6 rows",
    ),
    "action dim": (
        lambda r: _edit_row(r, "ep1", actions=_actions(5, 3)),
        "action_dim_mismatch",
        False,
        "dimension 3",
    ),
    "nan actions": (
        lambda r: _edit_row(r, "ep1", actions=_actions(5, fill=float("nan"))),
        "non_finite_actions",
        False,
        "NaN",
    ),
    "ragged actions": (
        lambda r: _edit_row(r, "ep1", actions=[[0.0, 0.0]] * 4 + [[0.0]]),
        "malformed_actions",
        False,
        "different lengths",
    ),
    "state count": (
        lambda r: _edit_row(r, "ep1", states=_actions(5)),
        "states_count_mismatch",
        False,
        "5 rows",
    ),
    "duplicate id": (
        lambda r: _edit_row(r, "ep1", episode_id="ep0"),
        "duplicate_episode",
        False,
        "twice",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_raises_or_is_skipped(tmp_path, case):
    corrupt, reason, verify, text = BAD_CASES[case]
    write_dataset(tmp_path)
    corrupt(tmp_path)
    for backend in ("decord", "pyav") if verify else ("decord",):
        with pytest.raises(DatasetError) as info:
            VideoActionDataset.open(tmp_path, verify_videos=verify, backend=backend)
        assert info.value.reason == reason
        assert "ep1.mp4" in str(info.value) and text in str(info.value)

        ds = VideoActionDataset.open(
            tmp_path, verify_videos=verify, backend=backend, on_error="skip"
        )
        assert ds.skipped.counts == {reason: 1}, ds.skipped.skipped
        assert "ep1.mp4" in ds.skipped.skipped[reason][0]
        assert len(ds) == 2 and "ep0" in [e.episode_id for e in ds]


def test_action_dim_inferred_without_writer_metadata(tmp_path):
    write_dataset(tmp_path)
    _edit_row(tmp_path, "ep0", actions=_actions(4, 3))
    table = pq.read_table(tmp_path / "episodes.parquet").replace_schema_metadata(None)
    pq.write_table(table, tmp_path / "episodes.parquet")
    ds = VideoActionDataset.open(tmp_path, on_error="skip")  # the majority dim (2) wins
    assert ds.action_dim == D_A and ds.skipped.counts == {"action_dim_mismatch": 1}
    with pytest.raises(DatasetError, match="dimension 2"):
        VideoActionDataset.open(tmp_path, action_dim=3)


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="episodes.parquet"):
        VideoActionDataset.open(tmp_path)


# --- plain video folders and lists (Phase 1) ------------------------------------------------


def _plain_videos(root: Path) -> list[str]:
    rels = ["a.mp4", "sub/b.mp4", "sub/deeper/c.mp4"]
    with DatasetWriter(root / "tmp") as w:  # reuse the writer's encoder, then move files
        for i in range(len(rels)):
            w.add_episode(f"v{i}", episode(i, t=4 + i)["frames"], FPS)
    for i, rel in enumerate(rels):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(root / "tmp" / "videos" / f"v{i}.mp4", root / rel)
    (root / "notes.txt").write_text("not a video")
    return rels


def test_plain_folder(tmp_path):
    rels = _plain_videos(tmp_path / "vids")
    ds = open_plain_videos(tmp_path / "vids")
    assert [e.video_path for e in ds] == sorted(rels) and ds[0].num_frames is None
    probed = open_plain_videos(tmp_path / "vids", probe=True)
    assert [e.num_frames for e in probed] == [4, 5, 6]
    assert probed[1].height == SIZE and probed[1].actions is None


@pytest.mark.parametrize("header", [False, True])
def test_plain_csv_list(tmp_path, header):
    rels = _plain_videos(tmp_path)
    lines = (["path,label"] if header else []) + [
        f"{r},0" if header else r for r in [*rels, "gone.mp4"]
    ]
    (tmp_path / "list.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match="gone.mp4"):
        open_plain_videos(tmp_path / "list.csv")
    ds = open_plain_videos(tmp_path / "list.csv", on_error="skip", probe=True, backend="pyav")
    assert [e.video_path for e in ds] == rels
    assert ds.skipped.counts == {"missing_video": 1}
    assert ds.open_video(ds[2]).num_frames == 6


def test_plain_open_of_a_dataset_folder_reads_the_index(tmp_path):
    write_dataset(tmp_path, n=2)
    assert [e.episode_id for e in open_plain_videos(tmp_path)] == ["ep0", "ep1"]


# --- splits -----------------------------------------------------------------------------------


def _records(n: int, split: str | None = None) -> list[EpisodeRecord]:
    return [
        EpisodeRecord(f"e{i:03d}", f"videos/e{i:03d}.mp4", 8, 5.0, 32, 32, split) for i in range(n)
    ]


def _ids(split: dict[str, list[EpisodeRecord]]) -> dict[str, list[str]]:
    return {k: [e.episode_id for e in v] for k, v in split.items()}


def test_split_by_episode_is_deterministic_and_disjoint():
    eps = _records(50)
    fractions = {"train": 0.8, "val": 0.1, "test": 0.1}
    a = _ids(split_episodes(eps, fractions, seed=3))
    assert {k: len(v) for k, v in a.items()} == {"train": 40, "val": 5, "test": 5}
    all_ids = [i for v in a.values() for i in v]
    assert sorted(all_ids) == sorted(e.episode_id for e in eps)  # disjoint and complete
    assert _ids(split_episodes(eps, fractions, seed=3)) == a
    shuffled = random.Random(0).sample(eps, len(eps))
    assert {k: sorted(v) for k, v in _ids(split_episodes(shuffled, fractions, seed=3)).items()} == {
        k: sorted(v) for k, v in a.items()
    }
    assert _ids(split_episodes(eps, fractions, seed=4)) != a
    tiny = _ids(split_episodes(_records(3), fractions))
    assert all(len(v) == 1 for v in tiny.values())  # each non-zero split gets an episode


def test_split_honours_the_split_column():
    eps = (
        _records(4, "train")
        + _records(2, "val")[:0]
        + [EpisodeRecord("x", "videos/x.mp4", 8, 5.0, 32, 32, "val")]
    )
    assert {k: len(v) for k, v in split_episodes(eps).items()} == {"train": 4, "val": 1}
    mixed = eps + [EpisodeRecord("new", "videos/new.mp4", 8, 5.0, 32, 32)]
    with pytest.raises(ValueError, match="no split"):
        split_episodes(mixed)
    out = _ids(split_episodes(mixed, {"test": 1.0}))
    assert out["test"] == ["new"] and len(out["train"]) == 4
    ignored = split_episodes(mixed, {"a": 0.5, "b": 0.5}, use_split_column=False)
    assert {k: len(v) for k, v in ignored.items()} == {"a": 3, "b": 3}
