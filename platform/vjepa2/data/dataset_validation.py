"""Checking a dataset index and its episodes: errors, the skip report, and every per-row rule.

A bad row raises a ``DatasetError`` naming the file and the problem, or, with
``on_error="skip"``, is dropped and counted in a ``SkipReport``. Nothing is silently repaired.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from vjepa2.data.dataset_fs import files_exist, join_path, open_video_on
from vjepa2.data.dataset_schema import (
    ARRAY_COLUMNS,
    INDEX_FILE,
    REQUIRED_COLUMNS,
    EpisodeRecord,
    arrow_to_matrices,
    is_matrix_type,
    recorded_action_dim,
)
from vjepa2.data.video import Backend, VideoDecodeError

OnError = Literal["raise", "skip"]
Problem = tuple[str, str]  # (reason, message)


class DatasetError(ValueError):
    """A malformed dataset or episode; ``str()`` names the file and the problem."""

    def __init__(self, file: str, reason: str, message: str, episode_id: str | None = None):
        self.file = file
        self.reason = reason
        self.episode_id = episode_id
        super().__init__(f"{file}: {message} [{reason}]")


@dataclass
class SkipReport:
    """Rows dropped under ``on_error="skip"``: reason -> messages naming each file."""

    skipped: dict[str, list[str]] = field(default_factory=dict)

    def add(self, error: DatasetError) -> None:
        self.skipped.setdefault(error.reason, []).append(str(error))

    def merge(self, other: SkipReport) -> None:
        """Fold another source's skips into this report."""
        for reason, messages in other.skipped.items():
            self.skipped.setdefault(reason, []).extend(messages)

    @property
    def counts(self) -> dict[str, int]:
        return {reason: len(items) for reason, items in self.skipped.items()}

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        if not self.total:
            return "no episodes skipped"
        parts = ", ".join(f"{n} {reason}" for reason, n in sorted(self.counts.items()))
        return f"skipped {self.total} episodes: {parts}"


@dataclass
class ValidatedEpisodes:
    """The episodes that passed, what was skipped and why, and the dataset's action dim."""

    episodes: list[EpisodeRecord]
    skipped: SkipReport
    action_dim: int | None


def check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")


def validate_index(
    fs: pafs.FileSystem,
    base: str,
    *,
    on_error: OnError = "raise",
    verify_videos: bool = False,
    action_dim: int | None = None,
    backend: Backend = "decord",
) -> ValidatedEpisodes:
    """Read ``base/episodes.parquet`` and validate every row (see ``VideoActionDataset.open``)."""
    index = posixpath.join(base, INDEX_FILE)
    table = _read_index(fs, index)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise DatasetError(index, "bad_schema", f"missing required columns {missing}")
    n = table.num_rows
    scalars = {c: table.column(c).to_pylist() for c in REQUIRED_COLUMNS}
    splits = table.column("split").to_pylist() if "split" in table.column_names else [None] * n
    arrays: dict[str, list[np.ndarray | None]] = {}
    ragged: dict[str, set[int]] = {}
    for name in ARRAY_COLUMNS:
        arrays[name], ragged[name] = _matrix_column(table, index, name)

    if action_dim is None:
        action_dim = recorded_action_dim(table.schema)
    dims = {
        name: action_dim if name == "actions" and action_dim is not None else _mode_dim(mats)
        for name, mats in arrays.items()
    }
    has_actions = any(a is not None for a in arrays["actions"]) or bool(ragged["actions"])

    records: list[EpisodeRecord | DatasetError] = []
    for i in range(n):
        ep_id = scalars["episode_id"][i]
        label = f"{index} row {i} (episode {ep_id!r}, {scalars['video_path'][i]})"
        bad = _check_scalars({c: v[i] for c, v in scalars.items()})
        if bad is None:
            for name in ARRAY_COLUMNS:
                if i in ragged[name]:
                    bad = (f"malformed_{name}", f"{name} rows have different lengths")
                    break
            else:
                if has_actions and arrays["actions"][i] is None:
                    bad = ("missing_actions", "actions are null but other episodes have them")
        if bad is not None:
            records.append(DatasetError(label, bad[0], bad[1], ep_id))
            continue
        records.append(
            EpisodeRecord(
                episode_id=ep_id,
                video_path=scalars["video_path"][i],
                num_frames=int(scalars["num_frames"][i]),
                fps=float(scalars["fps"][i]),
                height=int(scalars["height"][i]),
                width=int(scalars["width"][i]),
                split=splits[i],
                actions=arrays["actions"][i],
                states=arrays["states"][i],
                proprio=arrays["proprio"][i],
            )
        )
    return validate_records(
        records,
        fs=fs,
        base=base,
        index=index,
        on_error=on_error,
        verify_videos=verify_videos,
        fill_metadata=False,
        dims=dims,
        backend=backend,
    )


def validate_records(
    records: Sequence[EpisodeRecord | DatasetError],
    *,
    fs: pafs.FileSystem,
    base: str,
    index: str,
    on_error: OnError,
    verify_videos: bool,
    fill_metadata: bool,
    dims: dict[str, int | None],
    backend: Backend,
) -> ValidatedEpisodes:
    """Row-independent checks done; now ids, arrays, files, and (optionally) the videos.

    ``fill_metadata`` (with ``verify_videos``) takes num_frames/size/fps from each video
    instead of checking them against the record.
    """
    report = SkipReport()
    kept: list[EpisodeRecord] = []
    seen: set[str] = set()
    paths = [join_path(base, r.video_path) if isinstance(r, EpisodeRecord) else "" for r in records]
    exists = files_exist(fs, [p for p in paths if p])

    def fail(err: DatasetError) -> None:
        if on_error == "raise":
            raise err
        report.add(err)

    for i, rec in enumerate(records):
        if isinstance(rec, DatasetError):
            fail(rec)
            continue
        video = paths[i]
        where = f"{video} (episode {rec.episode_id!r} in {index})"
        if rec.episode_id in seen:
            fail(
                DatasetError(where, "duplicate_episode", "episode id appears twice", rec.episode_id)
            )
            continue
        problem = check_arrays(rec, dims)
        if problem is None and not exists[video]:
            problem = ("missing_video", "video file not found")
        if problem is None and verify_videos:
            problem = _check_video(rec, video, fs, backend, fill_metadata)
        if problem is not None:
            fail(DatasetError(where, problem[0], problem[1], rec.episode_id))
            continue
        seen.add(rec.episode_id)
        kept.append(rec)
    return ValidatedEpisodes(episodes=kept, skipped=report, action_dim=dims.get("actions"))


def check_arrays(rec: EpisodeRecord, dims: Mapping[str, int | None]) -> Problem | None:
    """(reason, message) for the first problem with the episode's arrays, else None.

    Actions are [T-1, d_a] (action t moves frame t to frame t+1); states/proprio are [T, d];
    each array's d must equal ``dims[name]`` when that is known; all values finite.
    """
    t = rec.num_frames
    for name in ARRAY_COLUMNS:
        arr = getattr(rec, name)
        if arr is None:
            continue
        # "actions" gives "action_count_mismatch", "action_dim_mismatch"; others keep their name.
        prefix = "action" if name == "actions" else name
        if arr.ndim != 2:
            return f"malformed_{name}", f"{name} must be 2-D [steps, dim], got shape {arr.shape}"
        if t is not None:
            want = t - 1 if name == "actions" else t
            if arr.shape[0] != want:
                rule = "T-1: one per transition" if name == "actions" else "T: one per frame"
                return (
                    f"{prefix}_count_mismatch",
                    f"{name} have {arr.shape[0]} rows but the episode has {t} frames "
                    f"(expected {want} = {rule})",
                )
        dim = dims.get(name)
        if arr.shape[0] and dim is not None and arr.shape[1] != dim:
            return (
                f"{prefix}_dim_mismatch",
                f"{name} have dimension {arr.shape[1]} but the dataset's is {dim}",
            )
        if not np.isfinite(arr).all():
            bad = np.argwhere(~np.isfinite(arr))[0].tolist()
            return (
                f"non_finite_{name}",
                f"{name} contain NaN/inf (first at step {bad[0]}, component {bad[1]})",
            )
    if rec.actions is not None and t is not None and t < 2:
        return "action_count_mismatch", "an episode with actions needs at least 2 frames"
    return None


def _read_index(fs: pafs.FileSystem, index: str) -> pa.Table:
    if not fs.get_file_info(index).is_file:
        raise DatasetError(index, "missing_index", "no episodes.parquet (not a dataset folder?)")
    try:
        return pq.read_table(index, filesystem=fs)
    except (pa.ArrowException, OSError) as e:
        raise DatasetError(index, "unreadable_index", f"cannot read parquet: {e}") from e


def _matrix_column(
    table: pa.Table, index: str, name: str
) -> tuple[list[np.ndarray | None], set[int]]:
    """The column's per-row matrices and ragged rows; all None when the column is absent."""
    if name not in table.column_names:
        return [None] * table.num_rows, set()
    column = table.column(name)
    if not (pa.types.is_null(column.type) or is_matrix_type(column.type)):
        raise DatasetError(
            index, "bad_schema", f"column {name!r} is {column.type}, expected list<list<float32>>"
        )
    return arrow_to_matrices(column)


def _check_scalars(row: dict[str, Any]) -> Problem | None:
    for name in ("episode_id", "video_path"):
        if not row[name]:
            return "invalid_row", f"{name} is empty"
    if row["num_frames"] is None or row["num_frames"] < 1:
        return "invalid_row", f"num_frames must be >= 1, got {row['num_frames']}"
    for name in ("fps", "height", "width"):
        value = row[name]
        if value is None or not np.isfinite(value) or value <= 0:
            return "invalid_row", f"{name} must be positive, got {value}"
    return None


def _check_video(
    rec: EpisodeRecord, video: str, fs: pafs.FileSystem, backend: Backend, fill: bool
) -> Problem | None:
    reader = open_video_on(fs, video, backend)
    try:
        n = reader.num_frames
        reader.get_frames([n - 1])  # a cut-off file often opens fine but fails near the end
        h, w, fps = reader.height, reader.width, reader.fps
    except VideoDecodeError as e:
        return "unreadable_video", e.reason
    finally:
        reader.close()
    if fill:
        rec.num_frames, rec.height, rec.width, rec.fps = n, h, w, fps
        return None
    if n != rec.num_frames:
        return "frame_count_mismatch", f"index says {rec.num_frames} frames, the video has {n}"
    if (h, w) != (rec.height, rec.width):
        return "size_mismatch", f"index says {rec.height}x{rec.width}, the video is {h}x{w}"
    return None


def _mode_dim(mats: Sequence[np.ndarray | None]) -> int | None:
    # Ties go to the smaller dim so the choice does not depend on row order.
    counts = Counter(m.shape[1] for m in mats if m is not None and m.ndim == 2 and m.shape[0])
    if not counts:
        return None
    best = max(counts.values())
    return min(d for d, c in counts.items() if c == best)
