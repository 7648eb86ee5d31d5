"""The on-disk format of a video-action dataset: names, the episode record, arrow <-> numpy.

``episodes.parquet`` columns: ``episode_id`` (string, unique), ``video_path`` (string, relative
to the folder), ``num_frames`` (int64), ``fps`` (float64), ``height``/``width`` (int32),
``split`` (string or null), ``actions`` and optionally ``states``/``proprio`` as
``list<list<float32>>`` (row-major [steps, dim]; null for a plain video dataset).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

INDEX_FILE = "episodes.parquet"
VIDEO_DIR = "videos"
FORMAT_VERSION = "1"
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")
ARRAY_COLUMNS = ("actions", "states", "proprio")

_META_VERSION = b"vjepa2.format_version"
_META_ACTION_DIM = b"vjepa2.action_dim"
MATRIX_TYPE = pa.list_(pa.list_(pa.float32()))
_SCALAR_FIELDS = (
    pa.field("episode_id", pa.string()),
    pa.field("video_path", pa.string()),
    pa.field("num_frames", pa.int64()),
    pa.field("fps", pa.float64()),
    pa.field("height", pa.int32()),
    pa.field("width", pa.int32()),
    pa.field("split", pa.string()),
)
# Every column but ``split`` (optional) and the arrays must be present in an index.
REQUIRED_COLUMNS = tuple(f.name for f in _SCALAR_FIELDS if f.name != "split")


@dataclass
class EpisodeRecord:
    """One episode. Metadata is None only for plain videos that were not probed."""

    episode_id: str
    video_path: str  # relative to the dataset root (or absolute)
    num_frames: int | None
    fps: float | None
    height: int | None
    width: int | None
    split: str | None = None
    actions: np.ndarray | None = None  # float32 [T-1, d_a]
    states: np.ndarray | None = None  # float32 [T, d_s]
    proprio: np.ndarray | None = None  # float32 [T, d_p]


def episodes_to_table(
    episodes: Sequence[EpisodeRecord], *, action_dim: int | None = None
) -> pa.Table:
    """The ``episodes.parquet`` table for ``episodes`` (arrays as list<list<float32>>)."""
    columns: dict[str, pa.Array] = {
        f.name: pa.array([getattr(e, f.name) for e in episodes], f.type) for f in _SCALAR_FIELDS
    }
    fields = [*_SCALAR_FIELDS, pa.field("actions", MATRIX_TYPE)]
    columns["actions"] = matrices_to_arrow([e.actions for e in episodes])
    for name in ("states", "proprio"):
        mats = [getattr(e, name) for e in episodes]
        if any(m is not None for m in mats):
            columns[name] = matrices_to_arrow(mats)
            fields.append(pa.field(name, MATRIX_TYPE))
    meta = {_META_VERSION: FORMAT_VERSION.encode()}
    if action_dim is not None:
        meta[_META_ACTION_DIM] = str(action_dim).encode()
    return pa.table(columns, schema=pa.schema(fields, metadata=meta))


def recorded_action_dim(schema: pa.Schema) -> int | None:
    """The action dimension the writer stored in the index's metadata, if any."""
    meta = schema.metadata or {}
    return int(meta[_META_ACTION_DIM]) if _META_ACTION_DIM in meta else None


def is_matrix_type(t: pa.DataType) -> bool:
    """Whether a column of type ``t`` can hold per-row [steps, dim] matrices (list of lists)."""
    return _is_list(t) and _is_list(t.value_type)


def as_f32(arr: np.ndarray | None) -> np.ndarray | None:
    return None if arr is None else np.ascontiguousarray(arr, dtype=np.float32)


def matrices_to_arrow(mats: Sequence[np.ndarray | None]) -> pa.Array:
    """A list<list<float32>> array with one [rows, dim] matrix (or null) per entry."""
    present = [m for m in mats if m is not None]
    if not present:
        return pa.nulls(len(mats), MATRIX_TYPE)
    rows = np.array([0 if m is None else m.shape[0] for m in mats], np.int64)
    inner_lengths = np.concatenate(
        [np.full(m.shape[0], m.shape[1], np.int64) for m in present] + [np.zeros(0, np.int64)]
    )
    flat = np.concatenate([np.ascontiguousarray(m, np.float32).reshape(-1) for m in present])
    inner = pa.ListArray.from_arrays(
        pa.array(np.concatenate([[0], np.cumsum(inner_lengths)]), pa.int32()),
        pa.array(flat, pa.float32()),
    )
    return pa.ListArray.from_arrays(
        pa.array(np.concatenate([[0], np.cumsum(rows)]), pa.int32()),
        inner,
        type=MATRIX_TYPE,
        mask=pa.array([m is None for m in mats], pa.bool_()),
    )


def arrow_to_matrices(column: pa.ChunkedArray) -> tuple[list[np.ndarray | None], set[int]]:
    """Per-row float32 [rows, dim] arrays (None for null rows) and the set of ragged rows.

    ``column`` must be null-typed or pass ``is_matrix_type``; ragged rows come back as None.
    """
    out: list[np.ndarray | None] = []
    ragged: set[int] = set()
    for chunk in column.chunks:
        if pa.types.is_null(chunk.type):
            out.extend([None] * len(chunk))
            continue
        rows = pc.list_value_length(chunk).to_numpy(zero_copy_only=False)
        inner = pc.list_flatten(chunk)
        cols = pc.list_value_length(inner).to_numpy(zero_copy_only=False)
        flat = pc.list_flatten(inner).to_numpy(zero_copy_only=False)
        if flat.dtype != np.float32:
            flat = flat.astype(np.float32)
        r0 = v0 = 0
        for nrows, valid in zip(rows, chunk.is_valid().to_numpy(zero_copy_only=False), strict=True):
            if not valid:
                out.append(None)
                continue
            nrows = int(nrows)
            widths = cols[r0 : r0 + nrows]
            r0 += nrows
            if nrows and (np.isnan(widths).any() or (widths != widths[0]).any()):
                ragged.add(len(out))
                out.append(None)
                v0 += int(np.nan_to_num(widths).sum())
                continue
            dim = int(widths[0]) if nrows else 0
            out.append(flat[v0 : v0 + nrows * dim].reshape(nrows, dim).copy())
            v0 += nrows * dim
    return out, ragged


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
