"""Ray Data pipelines: clip/window indices, augmentations, decoded streams, bad input, Train."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.augment import AugmentSpec, augment_clip
from pipelines.clips import (
    ClipPipelineConfig,
    SampleDecodeError,
    build_clip_pipeline,
    iter_clip_batches,
)
from pipelines.decode import SampleDecoder
from pipelines.manifest import SourceSpec, load_source
from pipelines.windows import (
    WindowPipelineConfig,
    build_window_pipeline,
)
from tests.pipeline_data import ONE_ACTOR, SIZE, T, collect, write_dataset
from vjepa2.data.clips import (
    ClipSpec,
    WindowSpec,
    clip_index,
    concat_indices,
    epochs_slice,
    video_aligned_chunks,
)
from vjepa2.data.dataset import DatasetError, split_episodes
from vjepa2.data.video import open_video


def rewrite_index(root: Path, edit) -> None:
    """Apply ``edit(rows)`` to the index rows, bypassing the writer's validation."""
    index = root / "episodes.parquet"
    table = pq.read_table(index)
    rows = {r["episode_id"]: r for r in table.to_pylist()}
    edit(rows)  # may change or drop rows
    pq.write_table(pa.Table.from_pylist(list(rows.values()), schema=table.schema), index)


# --- indices (pure) ----------------------------------------------------------------------------


def test_clip_index_is_seeded_bounded_and_order_independent():
    videos = [("a.mp4", 40), ("b.mp4", 25), ("short.mp4", 5)]
    spec = ClipSpec(num_frames=4, stride=3, step=2, max_clips_per_video=3, random_offset=True)
    index = clip_index(videos, spec, epoch=0)
    assert index.too_short == ["short.mp4"] and len(index) == 6
    for i, row in enumerate(index.rows()):
        frames = index.frame_indices(i)
        assert row["stride"] == 3 and row["num_frames"] == 4
        assert frames[0] == row["start"] and frames[-1] < dict(videos)[row["video_path"]]
    # Same seed, same clips; each video's clips do not depend on the other videos.
    assert clip_index(videos, spec).rows() == index.rows()
    alone = clip_index(videos[1:2], spec).rows()
    assert alone == [r for r in index.rows() if r["video_path"] == "b.mp4"][: len(alone)]
    assert sorted(map(str, clip_index(videos[::-1], spec).rows())) == sorted(map(str, index.rows()))
    assert clip_index(videos, spec, epoch=1).rows() != index.rows()
    two = concat_indices([index, clip_index(videos, spec, epoch=1)])
    assert two.rows() == index.rows() + clip_index(videos, spec, epoch=1).rows()
    # Defaults: non-overlapping clips covering each video; "videos" order keeps them together.
    grid = clip_index([("a.mp4", 40)], ClipSpec(num_frames=4, stride=3))
    assert grid.start.tolist() == [0, 10, 20, 30]
    with pytest.raises(ValueError, match="order"):
        ClipSpec(order="random")  # type: ignore[arg-type]


def test_epochs_slice_fills_a_slice_whatever_each_epochs_size():
    # The test suite's TwoRoom episodes: 17 frames hold one or two 8-frame clips, depending on
    # each video's seeded offset, so epochs differ in size.
    videos = [(f"/data/ep{i}.mp4", 17) for i in range(6)]

    def epochs_for(seed: int) -> list:
        spec = ClipSpec(num_frames=8, random_offset=True, seed=seed)
        return [clip_index(videos, spec, epoch=e) for e in range(4)]

    def short_by_first_epoch(seed: int) -> bool:
        # The old count: ceil(16 / size of epoch 0) epochs, then slice 16.
        parts = epochs_for(seed)
        n = -(-16 // len(parts[0]))
        return sum(len(p) for p in parts[:n]) < 16

    seed = next(s for s in range(200) if short_by_first_epoch(s))
    parts = epochs_for(seed)
    spec = ClipSpec(num_frames=8, random_offset=True, seed=seed)
    every = concat_indices(parts).rows()

    def one_epoch(e: int):
        return clip_index(videos, spec, epoch=e)

    got = epochs_slice(one_epoch, epochs=None, limit=16)
    assert got.rows() == every[:16]
    # A resumed run's slice continues exactly where the first stopped.
    assert epochs_slice(one_epoch, epochs=None, skip=8, limit=8).rows() == every[8:16]
    assert (
        epochs_slice(one_epoch, first_epoch=1, epochs=2).rows()
        == every[len(parts[0]) : sum(map(len, parts[:3]))]
    )
    with pytest.raises(ValueError, match="fewer than the 16"):
        epochs_slice(one_epoch, epochs=-(-16 // len(parts[0])), limit=16)
    with pytest.raises(ValueError, match="needs a limit"):
        epochs_slice(one_epoch, epochs=None)
    with pytest.raises(ValueError, match="no samples"):
        epochs_slice(lambda e: clip_index([("short.mp4", 3)], spec, epoch=e), epochs=None, limit=1)


def test_manifest_chunks_keep_a_video_in_one_decode_call():
    video = np.array([0] * 19 + [1] * 5 + [2] * 6 + [3] * 2)
    # Runs are packed whole; only a run longer than a chunk is cut (then in full chunks).
    assert video_aligned_chunks(video, 16) == [(0, 16), (16, 32)]
    assert video_aligned_chunks(video, 12) == [(0, 12), (12, 24), (24, 32)]
    assert video_aligned_chunks(np.arange(7), 3) == [(0, 3), (3, 6), (6, 7)]
    assert video_aligned_chunks(np.zeros(0, np.int32), 4) == []


def test_augment_is_seeded_per_clip_and_the_same_for_every_frame():
    rng = np.random.default_rng(0)
    clip = np.repeat(rng.integers(0, 255, (1, 40, 48, 3), dtype=np.uint8), 3, axis=0)
    spec = AugmentSpec(size=(16, 24), random_resized_crop=True, hflip=True, seed=3)
    a = augment_clip(clip, spec, sample_id=7)
    assert a.shape == (3, 16, 24, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, augment_clip(clip, spec, sample_id=7))
    assert all((a[t] == a[0]).all() for t in range(3))  # one draw for the whole clip
    outs = [augment_clip(clip, spec, sample_id=i) for i in range(8)]
    assert len({o.tobytes() for o in outs}) == 8
    flip = AugmentSpec(hflip=True)
    flips = [augment_clip(clip, flip, i) for i in range(8)]
    assert any((f == clip[:, :, ::-1]).all() for f in flips)
    assert any((f == clip).all() for f in flips)
    with pytest.raises(ValueError, match="hflip is not allowed"):
        flip.check_for_actions()
    with pytest.raises(ValueError, match="needs an output size"):
        AugmentSpec(random_resized_crop=True)


# --- streams -----------------------------------------------------------------------------------


def test_clip_stream_is_the_indexed_frames_of_the_train_split(ray_cluster, dataset):
    import torch

    fractions = {"train": 0.75, "val": 0.25}
    cfg = ClipPipelineConfig(
        SourceSpec(str(dataset), split="train", split_fractions=fractions, split_seed=1),
        ClipSpec(num_frames=4, stride=2, step=3),
        decode=ONE_ACTOR,
    )
    pipe = build_clip_pipeline(cfg)
    first = next(iter_clip_batches(pipe.dataset, 3))
    assert set(first) == {"frames", "sample_id"} and first["frames"].dtype == torch.uint8
    assert tuple(first["frames"].shape) == (3, 4, SIZE, SIZE, 3)
    got = collect(pipe)["frames"]
    assert sorted(got) == list(range(len(pipe.index)))
    for sid, frames in got.items():
        path = pipe.index.paths[pipe.index.video[sid]]
        np.testing.assert_array_equal(
            frames, open_video(path).get_frames(pipe.index.frame_indices(sid))
        )
    # Whole episodes per split, never frames: the stream holds exactly the train episodes.
    episodes = load_source(SourceSpec(str(dataset))).episodes
    train = {e.episode_id for e in split_episodes(episodes, fractions, seed=1)["train"]}
    assert {Path(p).stem for p in pipe.index.paths} == train and len(train) == 3
    assert pipe.report().total_skipped == 0


# --- bad input ---------------------------------------------------------------------------------


def break_dataset(root: Path) -> None:
    """Nine episodes: two good, seven broken in the ways a real dataset breaks."""
    write_dataset(root, n=9, seed=1)
    videos = root / "videos"
    data = (videos / "ep2.mp4").read_bytes()
    (videos / "ep2.mp4").write_bytes(data[: len(data) // 2])  # truncated
    (videos / "ep3.mp4").write_bytes(np.random.default_rng(0).bytes(2048))  # not a video
    (videos / "ep4.mp4").unlink()  # missing

    def edit(rows):
        rows["ep5"]["actions"] = rows["ep5"]["actions"][:-1]  # T-2 actions
        rows["ep6"]["actions"] = [a + [0.0] for a in rows["ep6"]["actions"]]  # d_a = 3
        rows["ep7"]["actions"][3][1] = float("nan")
        # The index claims two more frames than the video has (actions to match).
        rows["ep8"]["num_frames"] = T + 2
        rows["ep8"]["actions"] = rows["ep8"]["actions"] + [[0.0, 0.0]] * 2

    rewrite_index(root, edit)


DATASET_PROBLEMS = {
    "ep4": "missing_video",
    "ep5": "action_count_mismatch",
    "ep6": "action_dim_mismatch",
    "ep7": "non_finite_actions",
}


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("broken") / "ds"
    break_dataset(root)
    return root


def test_bad_input_is_skipped_counted_and_reported(ray_cluster, broken):
    cfg = WindowPipelineConfig(
        SourceSpec(str(broken), on_error="skip"),
        WindowSpec(horizon=1, step=3),
        decode=ONE_ACTOR,
    )
    pipe = build_window_pipeline(cfg)
    got = collect(pipe)
    report = pipe.report()
    assert report.dataset.counts == dict.fromkeys(DATASET_PROBLEMS.values(), 1)
    for ep, reason in DATASET_PROBLEMS.items():
        assert any(f"{ep}.mp4" in m for m in report.dataset.skipped[reason])
    decoded_eps = {Path(pipe.index.paths[pipe.index.video[s]]).stem for s in got["frames"]}
    assert {"ep0", "ep1"} <= decoded_eps <= {"ep0", "ep1", "ep2"}
    # Every sample either arrived or was dropped and counted, naming its file.
    assert len(got["frames"]) + report.decode.total == len(pipe.index)
    assert set(report.decode.counts) == {"unreadable_video", "frame_count_mismatch"}
    messages = [m for ms in report.decode.skipped.values() for m in ms]
    for ep in ("ep2", "ep3", "ep8"):
        assert any(f"{ep}.mp4" in m for m in messages), ep
    assert all("ep8.mp4" in m for m in report.decode.skipped["frame_count_mismatch"])
    assert report.total_skipped == 4 + report.decode.total


@pytest.mark.parametrize("episode", sorted(DATASET_PROBLEMS))
def test_dataset_level_problems_raise_naming_the_file(broken, tmp_path, episode):
    root = tmp_path / "ds"
    shutil.copytree(broken, root)
    others = set(DATASET_PROBLEMS) - {episode}
    rewrite_index(root, lambda rows: [rows.pop(ep) for ep in others])
    with pytest.raises(DatasetError, match=f"{episode}.mp4") as info:
        build_window_pipeline(WindowPipelineConfig(SourceSpec(str(root))))
    assert info.value.reason == DATASET_PROBLEMS[episode]


def test_decode_error_reaches_the_driver_naming_the_file(ray_cluster, broken):
    source = SourceSpec(str(broken), on_error="skip")  # dataset-level rows skipped ...
    pipe = build_clip_pipeline(ClipPipelineConfig(source, ClipSpec(num_frames=4), decode=ONE_ACTOR))
    # ... but decode-time problems raise: a stream built with on_error="raise".
    from pipelines.clips import build_stream

    raising = build_stream(pipe.index, pipe.source, AugmentSpec(), ONE_ACTOR, "raise", epoch=0)
    with pytest.raises(SampleDecodeError) as info:
        collect(raising)
    assert Path(info.value.path).name in {"ep2.mp4", "ep3.mp4", "ep8.mp4"}
    assert info.value.path in str(info.value) and info.value.reason


@pytest.mark.parametrize(
    ("episode", "problem"),
    [
        ("ep3", "cannot open video"),
        ("ep8", "frame_count_mismatch"),
        ("ep2", "cannot open video|truncated"),  # depends on where the cut falls
    ],
)
def test_decoder_names_each_kind_of_broken_video(broken, episode, problem):
    source = load_source(SourceSpec(str(broken), on_error="skip"))
    video = [Path(p).stem for p in source.paths].index(episode)
    n = source.episodes[video].num_frames
    decoder = SampleDecoder(
        paths=source.paths,
        video_frames=np.array([e.num_frames for e in source.episodes]),
        filesystem=None,
        num_frames=4,
        stride=1,
        out_hw=(SIZE, SIZE),
        augment=AugmentSpec(),
        on_error="raise",
        log=None,
        max_open_readers=2,
        backend="decord",
        num_threads=1,
    )
    batch = {
        "sample_id": np.arange(2),
        "video": np.array([video] * 2),
        "start": np.array([0, n - 4]),
    }
    with pytest.raises(SampleDecodeError, match=f"{episode}.mp4") as info:
        decoder(batch)
    assert re.search(problem, str(info.value))


def test_plain_csv_source_is_probed_and_bad_files_reported(dataset, tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\0" * 1000)
    csv = tmp_path / "list.csv"
    csv.write_text(f"path\n{dataset}/videos/ep0.mp4\n{garbage}\n{dataset}/videos/ep1.mp4\n")
    loaded = load_source(SourceSpec(str(csv), on_error="skip"))
    assert [Path(p).name for p in loaded.paths] == ["ep0.mp4", "ep1.mp4"]
    assert [(e.num_frames, e.height, e.width) for e in loaded.episodes] == [(T, SIZE, SIZE)] * 2
    assert loaded.skipped.counts == {"unreadable_video": 1}
    with pytest.raises(DatasetError, match="garbage.mp4"):
        load_source(SourceSpec(str(csv)))


# --- Ray Train ---------------------------------------------------------------------------------


def test_exact_batches_carry_short_batches_over():
    import torch

    from pipelines.train_data import exact_batches

    rows = torch.arange(19)
    cuts = [0, 4, 8, 10, 14, 16, 19]  # batches of 4, 4, 2, 4, 2, 3
    given = [{"x": rows[a:b], "y": -rows[a:b]} for a, b in zip(cuts, cuts[1:], strict=False)]
    got = list(exact_batches(iter(given), 4))
    assert [b["x"].tolist() for b in got] == [list(range(i, i + 4)) for i in range(0, 16, 4)]
    assert all(torch.equal(b["y"], -b["x"]) for b in got)
    assert got[0] is given[0] and got[1] is given[1]  # full batches pass through uncopied


def test_stream_batches_are_full_when_the_shuffle_buffer_is_small(ray_cluster):
    """Ray's local shuffle hands out [8, 8, 8, 6, 8] from blocks of 30 and 10 rows with an
    8-row buffer (ray-project/ray#66085); a training step must still see 8 samples."""
    import ray
    import torch

    from pipelines.train_data import StreamBatches
    from vjepa2.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    ids = np.arange(40, dtype=np.uint8)
    frames = np.zeros((40, 1, 1, 1, 3), np.uint8)
    frames[..., 0] = ids[:, None, None, None]
    blocks = ray.data.from_numpy([frames[:30], frames[30:]])
    ds = blocks.map_batches(lambda b: {"frames": b["data"]}, batch_size=None)
    source = StreamBatches(ds, "pretrain", batch_size=8, shuffle_buffer=8, seed=0)
    seen = []
    for step in range(5):
        (x,) = source.batch(step)  # [B, C, T, H, W]
        assert x.shape[0] == 8, f"step {step} got {x.shape[0]} samples"
        red = x[:, 0].flatten() * IMAGENET_STD[0] + IMAGENET_MEAN[0]
        seen += torch.round(red * 255).long().tolist()
    assert sorted(seen) == ids.tolist()  # every row once: none lost to a short batch
    with pytest.raises(RuntimeError, match="ended early, at step 5, after 5 batches"):
        source.batch(5)


def test_train_worker_iterates_its_dataset_shard(ray_cluster, dataset, tmp_path):
    import ray.train
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    pipe = build_clip_pipeline(
        ClipPipelineConfig(SourceSpec(str(dataset)), ClipSpec(num_frames=4), decode=ONE_ACTOR)
    )

    def loop(config):
        import tempfile

        import torch

        from pipelines.clips import iter_clip_batches

        batches = clips = 0
        for batch in iter_clip_batches(ray.train.get_dataset_shard("train"), 2):
            assert batch["frames"].dtype == torch.uint8
            batches += 1
            clips += len(batch["frames"])
        # Train V2 keeps the metrics of reports that carry a checkpoint.
        with tempfile.TemporaryDirectory() as d:
            checkpoint = ray.train.Checkpoint.from_directory(d)
            ray.train.report({"batches": batches, "clips": clips}, checkpoint=checkpoint)

    trainer = TorchTrainer(
        loop,
        scaling_config=ScalingConfig(num_workers=1, use_gpu=False, resources_per_worker={"CPU": 1}),
        datasets={"train": pipe.dataset},
        run_config=RunConfig(storage_path=str(tmp_path), name="pipeline_shard"),
    )
    result = trainer.fit()
    assert result.metrics == {"batches": len(pipe.index) // 2, "clips": len(pipe.index)}
