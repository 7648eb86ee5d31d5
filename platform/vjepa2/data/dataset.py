"""Video-action datasets on disk: opening them with validation (and the public API).

Layout of a dataset folder (a local path or any pyarrow filesystem URI, e.g. ``s3://b/d``)::

    episodes.parquet   one row per episode (columns: see ``dataset_schema``)
    videos/<id>.mp4    H.264 (any container decord reads works for reading)

Convention: an episode of T frames has **T-1 actions**; action t moves frame t to frame t+1.
``states``/``proprio`` are per frame: [T, d]. Every row is validated on open; a bad row raises a
``DatasetError`` naming the file and the problem, or, with ``on_error="skip"``, is dropped and
counted in a ``SkipReport``. Nothing is silently repaired.

The pieces live in ``dataset_schema`` (format, ``EpisodeRecord``), ``dataset_validation``
(errors and checks), ``dataset_writer`` (``DatasetWriter``), ``dataset_fs`` (where a dataset
lives) and ``splits`` (``split_episodes``); everything public is importable from here.
"""

from __future__ import annotations

import csv
import io
import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow.fs as pafs

from vjepa2.data.dataset_fs import join_path, open_video_on, resolve_root
from vjepa2.data.dataset_schema import (
    ARRAY_COLUMNS,
    FORMAT_VERSION,
    INDEX_FILE,
    VIDEO_DIR,
    VIDEO_EXTENSIONS,
    EpisodeRecord,
    episodes_to_table,
)
from vjepa2.data.dataset_validation import (
    DatasetError,
    OnError,
    SkipReport,
    ValidatedEpisodes,
    check_on_error,
    validate_index,
    validate_records,
)
from vjepa2.data.dataset_writer import DatasetWriter
from vjepa2.data.splits import split_episodes
from vjepa2.data.video import Backend, VideoReader

__all__ = [
    "ARRAY_COLUMNS",
    "FORMAT_VERSION",
    "INDEX_FILE",
    "VIDEO_DIR",
    "VIDEO_EXTENSIONS",
    "DatasetError",
    "DatasetWriter",
    "EpisodeRecord",
    "OnError",
    "SkipReport",
    "VideoActionDataset",
    "episodes_to_table",
    "open_plain_videos",
    "resolve_root",
    "split_episodes",
]


@dataclass
class VideoActionDataset:
    """Validated episodes of a dataset folder, plus what was skipped and why."""

    root: str
    filesystem: pafs.FileSystem
    base: str  # root as a path inside ``filesystem``
    episodes: list[EpisodeRecord]
    skipped: SkipReport
    action_dim: int | None

    @classmethod
    def open(
        cls,
        root: str | os.PathLike[str],
        *,
        on_error: OnError = "raise",
        verify_videos: bool = False,
        action_dim: int | None = None,
        backend: Backend = "decord",
        filesystem: pafs.FileSystem | None = None,
    ) -> VideoActionDataset:
        """Read and validate ``root/episodes.parquet``.

        Always checked: required columns, unique ids, positive metadata, every video exists,
        actions [T-1, d_a] with one d_a for the whole dataset (``action_dim``, else the one the
        writer recorded, else the most common), finite values, states/proprio [T, d].
        ``verify_videos=True`` also opens every video (slow on big datasets): it must decode to
        its last frame and match ``num_frames``, ``height`` and ``width``.
        """
        check_on_error(on_error)
        fs, base = resolve_root(root, filesystem)
        result = validate_index(
            fs,
            base,
            on_error=on_error,
            verify_videos=verify_videos,
            action_dim=action_dim,
            backend=backend,
        )
        return cls._from_validated(root, fs, base, result)

    @classmethod
    def _from_validated(
        cls, root: str | os.PathLike[str], fs: pafs.FileSystem, base: str, result: ValidatedEpisodes
    ) -> VideoActionDataset:
        return cls(
            root=os.fspath(root),
            filesystem=fs,
            base=base,
            episodes=result.episodes,
            skipped=result.skipped,
            action_dim=result.action_dim,
        )

    def __repr__(self) -> str:
        return (
            f"VideoActionDataset({self.root!r}, {len(self.episodes)} episodes, "
            f"action_dim={self.action_dim}, {self.skipped.summary()})"
        )

    def __len__(self) -> int:
        return len(self.episodes)

    def __iter__(self) -> Iterator[EpisodeRecord]:
        return iter(self.episodes)

    def __getitem__(self, i: int) -> EpisodeRecord:
        return self.episodes[i]

    def video_path(self, episode: EpisodeRecord) -> str:
        """The episode's video as a path inside ``self.filesystem``."""
        return join_path(self.base, episode.video_path)

    def open_video(self, episode: EpisodeRecord, backend: Backend = "decord") -> VideoReader:
        return open_video_on(self.filesystem, self.video_path(episode), backend)


def open_plain_videos(
    source: str | os.PathLike[str],
    *,
    on_error: OnError = "raise",
    probe: bool = False,
    backend: Backend = "decord",
    filesystem: pafs.FileSystem | None = None,
) -> VideoActionDataset:
    """A Phase 1 (no actions) dataset from a folder of videos or a CSV list of them.

    ``source`` may be a dataset folder with ``episodes.parquet`` (opened as such), any other
    folder (video files found recursively, sorted), or a CSV file: one path per line, or a
    header with a ``path`` column; relative paths are relative to the CSV's folder. Each
    video's path is its episode id. Without ``probe`` only existence is checked and the
    metadata is None; ``probe=True`` opens every video (metadata, last frame decodes).
    """
    check_on_error(on_error)
    fs, path = resolve_root(source, filesystem)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.Directory:
        if fs.get_file_info(posixpath.join(path, INDEX_FILE)).is_file:
            return VideoActionDataset.open(
                path, on_error=on_error, verify_videos=probe, backend=backend, filesystem=fs
            )
        base = path
        selector = pafs.FileSelector(path, recursive=True)
        rels = sorted(
            posixpath.relpath(f.path, path)
            for f in fs.get_file_info(selector)
            if f.is_file and f.path.lower().endswith(VIDEO_EXTENSIONS)
        )
        if not rels:
            raise DatasetError(path, "no_videos", f"no video files ({VIDEO_EXTENSIONS}) found")
    elif info.is_file:
        base = posixpath.dirname(path)
        rels = _read_csv_paths(fs, path)
    else:
        raise DatasetError(path, "missing_source", "no such folder or CSV file")

    rows = [EpisodeRecord(rel, rel, None, None, None, None) for rel in rels]
    result = validate_records(
        rows,
        fs=fs,
        base=base,
        index=path,
        on_error=on_error,
        verify_videos=probe,
        fill_metadata=True,
        dims=dict.fromkeys(ARRAY_COLUMNS),
        backend=backend,
    )
    return VideoActionDataset._from_validated(source, fs, base, result)


def _read_csv_paths(fs: pafs.FileSystem, path: str) -> list[str]:
    with fs.open_input_stream(path) as f:
        text = f.read().decode("utf-8-sig")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise DatasetError(path, "no_videos", "the CSV lists no videos")
    header = next(csv.reader([lines[0]]))
    if "path" in [h.strip() for h in header]:
        reader = csv.DictReader(io.StringIO("\n".join(lines)), skipinitialspace=True)
        return [row["path"].strip() for row in reader if (row.get("path") or "").strip()]
    return [ln.strip() for ln in lines]
