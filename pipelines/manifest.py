"""From a dataset source to the episodes a pipeline samples from, and the manifest blocks.

A source is a video-action dataset folder (``episodes.parquet``), a plain folder of videos or a
CSV list of them, local or any pyarrow URI. Dataset-level problems (missing video, action
count or dim mismatch, NaN actions, ...) are found here by ``VideoActionDataset.open`` and
either raise or land in the ``SkipReport``; plain videos carry no metadata, so they are probed
here for their frame count and size.

The manifest handed to Ray Data holds numbers only (video index, start, sample id, and
per-sample arrays such as actions): paths travel once, to each decode actor, not once per
sample.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
from ray.data.extensions import ArrowTensorArray

from vjepa2.data.clips import SampleIndex, video_aligned_chunks
from vjepa2.data.dataset import (
    DatasetError,
    EpisodeRecord,
    OnError,
    SkipReport,
    VideoActionDataset,
    open_plain_videos,
    split_episodes,
)
from vjepa2.data.dataset_fs import is_local
from vjepa2.data.video import VideoDecodeError, open_video

# What a decode actor reads from a manifest block; any other column is carried per sample.
MANIFEST_COLUMNS = ("sample_id", "video", "start")


@dataclass(frozen=True)
class SourceSpec:
    """Where the videos come from, which split, and what to do with bad input."""

    source: str  # dataset folder, plain folder or CSV of videos; local path or URI
    split: str | None = None  # None: every episode
    split_fractions: Mapping[str, float] | None = None  # else the index's ``split`` column
    split_seed: int = 0
    on_error: OnError = "raise"
    verify_videos: bool = False  # open every video up front (dataset folders; slow)
    action_dim: int | None = None  # expected d_a; None: the dataset's recorded one
    # Further sources whose episodes join ``source``'s, each split on its own (one filesystem,
    # one action width).
    extra: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The sources, for messages."""
        return " + ".join((self.source, *self.extra))


@dataclass
class LoadedSource:
    """The episodes of one split, with full video paths inside ``filesystem``."""

    filesystem: pafs.FileSystem | None  # None: local paths
    episodes: list[EpisodeRecord]
    paths: list[str]
    skipped: SkipReport  # dataset-level skips (opening, validation, probing)
    action_dim: int | None

    def frame_size(self) -> tuple[int, int] | None:
        """The (height, width) every episode shares, or None if they differ."""
        sizes = {(e.height, e.width) for e in self.episodes}
        return next(iter(sizes)) if len(sizes) == 1 else None  # type: ignore[return-value]


def load_source(spec: SourceSpec, *, require_actions: bool = False) -> LoadedSource:
    """Open, validate, (probe,) and split ``spec.source`` and each of ``spec.extra``; their
    episodes are pooled in that order."""
    loaded = [_load_one(spec, root, require_actions) for root in (spec.source, *spec.extra)]
    first = loaded[0]
    for root, other in zip(spec.extra, loaded[1:], strict=True):
        if type(other.filesystem) is not type(first.filesystem):
            raise ValueError(
                f"{root} is on another filesystem than {spec.source}; pooled sources share one"
            )
        if other.action_dim != first.action_dim:
            raise ValueError(
                f"{root}: actions are {other.action_dim}-dimensional, {spec.source}'s "
                f"{first.action_dim}-dimensional"
            )
        first.episodes += other.episodes
        first.paths += other.paths
        first.skipped.merge(other.skipped)
    return first


def _load_one(spec: SourceSpec, root: str, require_actions: bool) -> LoadedSource:
    if require_actions:
        ds = VideoActionDataset.open(
            root,
            on_error=spec.on_error,
            verify_videos=spec.verify_videos,
            action_dim=spec.action_dim,
        )
        if ds.episodes and ds.episodes[0].actions is None:
            raise DatasetError(ds.root, "missing_actions", "Phase-2 windows need actions")
    else:
        ds = open_plain_videos(root, on_error=spec.on_error, probe=spec.verify_videos)
    episodes = list(ds.episodes)
    skipped = ds.skipped
    fs = None if is_local(ds.filesystem) else ds.filesystem
    if any(e.num_frames is None for e in episodes):
        episodes = _probe(episodes, [ds.video_path(e) for e in episodes], fs, spec, skipped)
    if spec.split is not None:
        splits = split_episodes(episodes, spec.split_fractions, seed=spec.split_seed)
        if spec.split not in splits:
            raise ValueError(f"no split {spec.split!r} in {root} (have {sorted(splits)})")
        episodes = splits[spec.split]
    return LoadedSource(
        filesystem=fs,
        episodes=episodes,
        paths=[ds.video_path(e) for e in episodes],
        skipped=skipped,
        action_dim=ds.action_dim,
    )


def manifest_blocks(
    index: SampleIndex,
    rows_per_block: int,
    *,
    per_sample: Mapping[str, np.ndarray] | None = None,
) -> list[pa.Table]:
    """The index as Arrow tables of at most ``rows_per_block`` rows: one per decode call.

    Blocks follow ``video_aligned_chunks``, so a video's consecutive samples are decoded by
    one reader. Columns: ``sample_id`` (position in the index, seeds the augmentation),
    ``video``, ``start``, and each ``per_sample`` array (one row per sample, e.g. ``actions``
    float32 [N, H, d]) under its name, which the decode actors pass through to the batches.
    """
    per_sample = dict(per_sample or {})
    for name, values in per_sample.items():
        if name in MANIFEST_COLUMNS or name == "frames":
            raise ValueError(f"per-sample column {name!r} would shadow a stream column")
        if len(values) != len(index):
            raise ValueError(
                f"per-sample column {name!r} has {len(values)} rows for {len(index)} samples"
            )
    out = []
    for lo, hi in video_aligned_chunks(index.video, rows_per_block):
        columns = {
            "sample_id": pa.array(np.arange(lo, hi, dtype=np.int64)),
            "video": pa.array(index.video[lo:hi]),
            "start": pa.array(index.start[lo:hi]),
        }
        for name, values in per_sample.items():
            columns[name] = ArrowTensorArray.from_numpy(values[lo:hi])
        out.append(pa.table(columns))
    return out


def _probe(
    episodes: list[EpisodeRecord],
    paths: list[str],
    fs: pafs.FileSystem | None,
    spec: SourceSpec,
    skipped: SkipReport,
) -> list[EpisodeRecord]:
    """Fill frame count and size of plain videos by opening each one.

    Threads in the driver, not Ray tasks: the decoders release the GIL while they read, and
    a task would first pay a worker's start-up and imports, which is most of a probe's cost.
    """
    with ThreadPoolExecutor(max_workers=2 * (os.cpu_count() or 1)) as pool:
        results = list(pool.map(lambda p: _probe_one(p, fs), paths))
    kept = []
    for ep, path, (info, reason) in zip(episodes, paths, results, strict=True):
        if info is None:
            err = DatasetError(path, "unreadable_video", reason, ep.episode_id)
            if spec.on_error == "raise":
                raise err
            skipped.add(err)
            continue
        ep.num_frames, ep.height, ep.width, ep.fps = info
        kept.append(ep)
    return kept


def _probe_one(
    path: str, fs: pafs.FileSystem | None
) -> tuple[tuple[int, int, int, float] | None, str]:
    reader = open_video(path, filesystem=fs)
    try:
        # Frame 0 gives the size; a cut-off file is caught later, at decode time.
        return (reader.num_frames, reader.height, reader.width, reader.fps), ""
    except VideoDecodeError as e:
        return None, e.reason
    finally:
        reader.close()
