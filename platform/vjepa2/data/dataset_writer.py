"""Writing episodes (video + index row) into a dataset folder, resumably."""

from __future__ import annotations

import os
import posixpath
import re
import uuid

import numpy as np
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from vjepa2.data.dataset_fs import join_path, resolve_root, write_bytes_atomic
from vjepa2.data.dataset_schema import (
    ARRAY_COLUMNS,
    INDEX_FILE,
    VIDEO_DIR,
    EpisodeRecord,
    as_f32,
    episodes_to_table,
)
from vjepa2.data.dataset_validation import check_arrays, validate_index
from vjepa2.data.video import encode_video

_SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


class DatasetWriter:
    """Writes episodes (video + row) into a dataset folder, keeping any episodes already there.

    Resuming: reopening a folder loads its ``episodes.parquet``; callers skip work with
    ``has_episode(id)``. A video is written (atomically) before its row, and ``flush()`` rewrites
    the index atomically, so a crash loses at most the episodes added since the last flush and
    never leaves a row without its video. Use as a context manager to flush on exit.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        crf: int = 18,
        flush_every: int | None = None,
        filesystem: pafs.FileSystem | None = None,
    ) -> None:
        self.root = os.fspath(root)
        self.fs, self.base = resolve_root(root, filesystem)
        self.crf = crf
        self.flush_every = flush_every
        self._pending = 0
        self._episodes: list[EpisodeRecord] = []
        self._ids: set[str] = set()
        self._dims: dict[str, int | None] = dict.fromkeys(ARRAY_COLUMNS)
        self._has_actions: bool | None = None
        if self.fs.get_file_info(posixpath.join(self.base, INDEX_FILE)).is_file:
            for ep in validate_index(self.fs, self.base, on_error="raise").episodes:
                self._remember(ep)
        self.fs.create_dir(posixpath.join(self.base, VIDEO_DIR), recursive=True)

    @property
    def episodes(self) -> list[EpisodeRecord]:
        return list(self._episodes)

    def has_episode(self, episode_id: str) -> bool:
        return episode_id in self._ids

    def add_episode(
        self,
        episode_id: str,
        frames: np.ndarray,
        fps: int,
        *,
        actions: np.ndarray | None = None,
        states: np.ndarray | None = None,
        proprio: np.ndarray | None = None,
        split: str | None = None,
    ) -> EpisodeRecord:
        """Validate, write ``videos/<episode_id>.mp4`` and queue the row for the next flush.

        ``frames`` uint8 [T, H, W, 3] (H, W even); ``actions`` [T-1, d_a]; ``states`` and
        ``proprio`` [T, d]. Arrays are stored as float32. Raises ``ValueError`` on bad input or
        an id already present (check ``has_episode`` first).
        """
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"episode {episode_id!r}: expected uint8 frames [T, H, W, 3]")
        # Validate everything before the (costly) encode.
        record = self._record(episode_id, frames.shape[:3], fps, actions, states, proprio, split)
        return self._store(record, encode_video(frames, fps, crf=self.crf))

    def add_encoded_episode(
        self,
        episode_id: str,
        video: bytes,
        frame_shape: tuple[int, int, int],
        fps: int,
        *,
        actions: np.ndarray | None = None,
        states: np.ndarray | None = None,
        proprio: np.ndarray | None = None,
        split: str | None = None,
    ) -> EpisodeRecord:
        """Like ``add_episode`` for an mp4 already encoded elsewhere (e.g. by a Ray worker).

        ``frame_shape`` is (T, H, W) of the encoded video; the same validation applies.
        """
        record = self._record(episode_id, frame_shape, fps, actions, states, proprio, split)
        return self._store(record, video)

    def _record(
        self,
        episode_id: str,
        frame_shape: tuple[int, ...],
        fps: int,
        actions: np.ndarray | None,
        states: np.ndarray | None,
        proprio: np.ndarray | None,
        split: str | None,
    ) -> EpisodeRecord:
        if not isinstance(episode_id, str) or not _SAFE_ID.fullmatch(episode_id):
            raise ValueError(
                f"episode id {episode_id!r} must match {_SAFE_ID.pattern} (it names a file)"
            )
        if episode_id in self._ids:
            raise ValueError(f"{self.root}: episode {episode_id!r} is already in the dataset")
        if self._has_actions is not None and (actions is not None) != self._has_actions:
            have = "has" if self._has_actions else "has no"
            raise ValueError(f"episode {episode_id!r}: the dataset {have} actions; be consistent")
        t, h, w = (int(x) for x in frame_shape)
        record = EpisodeRecord(
            episode_id=episode_id,
            video_path=f"{VIDEO_DIR}/{episode_id}.mp4",
            num_frames=t,
            fps=float(fps),
            height=h,
            width=w,
            split=split,
            actions=as_f32(actions),
            states=as_f32(states),
            proprio=as_f32(proprio),
        )
        problem = check_arrays(record, self._dims)
        if problem is not None:
            raise ValueError(f"episode {episode_id!r}: {problem[1]} [{problem[0]}]")
        return record

    def _store(self, record: EpisodeRecord, video: bytes) -> EpisodeRecord:
        # The video lands (atomically) before its row, so a row never lacks its file.
        write_bytes_atomic(self.fs, join_path(self.base, record.video_path), video)
        self._remember(record)
        self._pending += 1
        if self.flush_every and self._pending >= self.flush_every:
            self.flush()
        return record

    def sort_episodes(self) -> None:
        """Order the index by episode id (numeric-aware for zero-padded ids) at the next flush."""
        self._episodes.sort(key=lambda e: (len(e.episode_id), e.episode_id))

    def flush(self) -> None:
        """Rewrite ``episodes.parquet`` with every episode (old and new), atomically."""
        table = episodes_to_table(self._episodes, action_dim=self._dims["actions"])
        dest = posixpath.join(self.base, INDEX_FILE)
        tmp = posixpath.join(self.base, f".{INDEX_FILE}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            pq.write_table(table, tmp, filesystem=self.fs)
            self.fs.move(tmp, dest)  # a rename locally; object stores publish on write anyway
        finally:
            if self.fs.get_file_info(tmp).is_file:
                self.fs.delete_file(tmp)
        self._pending = 0

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        # Flush even after an error: every queued episode is complete and valid, so keeping
        # them is what lets a rerun resume instead of redoing them.
        self.flush()

    def _remember(self, ep: EpisodeRecord) -> None:
        self._episodes.append(ep)
        self._ids.add(ep.episode_id)
        if self._has_actions is None:
            self._has_actions = ep.actions is not None
        for name in ARRAY_COLUMNS:
            arr = getattr(ep, name)
            if arr is not None and self._dims[name] is None:
                self._dims[name] = int(arr.shape[1])
