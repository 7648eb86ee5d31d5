"""Phase-2 windows as a Ray Data stream: ``frames`` x_t..x_{t+H} and ``actions`` a_t..a_{t+H-1}.

Each batch holds ``frames`` uint8 [B, H+1, h, w, 3], ``actions`` float32 [B, H, d_a*k] and
``sample_id`` int64, plus ``proprio`` float32 [B, H+1, d_p] when ``proprio_dims`` is set. With
frame skip k the window's frames are t, t+k, ..., t+Hk and each of its H actions is the k raw
actions it spans, concatenated in order (``window_actions``): k=1 gives the dataset's actions
unchanged. ``proprio`` is the entries ``proprio_dims`` of the dataset's per-frame ``states`` at
the window's frames.

Actions and proprio are sliced on the driver into the manifest (they are small next to
frames), so decode actors only decode and augment; flips are refused, they would mirror the
frames but not the actions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from pipelines.augment import AugmentSpec
from pipelines.clips import DecodeConfig, StreamPipeline, build_stream
from pipelines.manifest import SourceSpec, load_source
from vjepa2.data.clips import WindowSpec, episode_proprio, epochs_slice, window_index


@dataclass(frozen=True)
class WindowPipelineConfig:
    source: SourceSpec
    windows: WindowSpec = field(default_factory=WindowSpec)
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    epoch: int = 0  # mixed into every seed (window offsets, order, crops)
    # Epochs in one stream (the actor pool starts only once); None: those that fill skip+limit.
    epochs: int | None = 1
    # A slice of the whole multi-epoch index: a resumed trainer skips what it consumed.
    skip: int = 0
    limit: int | None = None
    # Entries of the dataset's per-frame ``states`` carried as ``proprio``; (): no proprio.
    proprio_dims: tuple[int, ...] = ()


def build_window_pipeline(cfg: WindowPipelineConfig) -> StreamPipeline:
    """Phase-2 stream of (frames, actions[, proprio]) windows from a video-action dataset."""
    cfg.augment.check_for_actions()
    source = load_source(cfg.source, require_actions=True)
    # Checked first: a dataset without the states fails before any index is built.
    proprio = (
        episode_proprio(source.episodes, cfg.proprio_dims, cfg.source.name)
        if cfg.proprio_dims
        else None
    )
    episodes = [(p, int(e.num_frames)) for p, e in zip(source.paths, source.episodes, strict=True)]
    index = epochs_slice(
        lambda e: window_index(episodes, cfg.windows, epoch=e),
        first_epoch=cfg.epoch,
        epochs=cfg.epochs,
        skip=cfg.skip,
        limit=cfg.limit,
    )
    per_sample = {
        "actions": gather_window_actions(
            [e.actions for e in source.episodes], index.video, index.start, cfg.windows
        )
    }
    if proprio is not None:
        per_sample["proprio"] = gather_window_proprio(
            proprio, index.video, index.start, cfg.windows
        )
    return build_stream(
        index,
        source,
        cfg.augment,
        cfg.decode,
        cfg.source.on_error,
        cfg.epoch,
        per_sample=per_sample,
    )


def gather_window_actions(
    episode_actions: list[np.ndarray], video: np.ndarray, start: np.ndarray, spec: WindowSpec
) -> np.ndarray:
    """float32 [N, H, d_a*k]: ``window_actions`` for every sample, one gather per episode."""
    steps = np.arange(spec.horizon * spec.frameskip)  # the H*k raw actions a window spans
    a = _gather_rows(episode_actions, video, start, steps, "actions")  # [N, H*k, d_a]
    return a.reshape(len(start), spec.horizon, spec.frameskip * a.shape[2])


def gather_window_proprio(
    episode_proprio: list[np.ndarray], video: np.ndarray, start: np.ndarray, spec: WindowSpec
) -> np.ndarray:
    """float32 [N, H+1, d_p]: each episode's per-frame rows at frames t, t+k, ..., t+Hk."""
    frames = spec.frameskip * np.arange(spec.num_frames)
    return _gather_rows(episode_proprio, video, start, frames, "states")


def _gather_rows(
    arrays: list[np.ndarray],
    video: np.ndarray,
    start: np.ndarray,
    offsets: np.ndarray,
    what: str,
) -> np.ndarray:
    """float32 [N, len(offsets), d]: ``arrays[video[i]][start[i] + offsets]`` for every i."""
    d = arrays[0].shape[1] if arrays else 0
    out = np.empty((len(start), len(offsets), d), np.float32)
    for v, rows in _rows_by_episode(video):
        starts = start[rows]
        # Fancy indexing would wrap a negative index and raise a bare IndexError past the end.
        first, last = int(starts.min()), int(starts.max())
        end = last + int(offsets[-1])
        if first < 0 or end >= len(arrays[v]):
            raise IndexError(
                f"episode {v}: windows at t={first}..{last} need {what} up to {end}, "
                f"the episode has {len(arrays[v])}"
            )
        out[rows] = arrays[v][starts[:, None] + offsets]
    return out


def _rows_by_episode(video: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(episode, the rows of its samples): an episode's array is indexed once, not per row."""
    if not len(video):
        return  # np.split would still hand back one (empty) group
    order = np.argsort(video, kind="stable")
    videos, first = np.unique(video[order], return_index=True)
    yield from zip(videos.tolist(), np.split(order, first[1:]), strict=True)
