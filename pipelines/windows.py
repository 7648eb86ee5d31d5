"""Phase-2 windows as a Ray Data stream: ``frames`` x_t..x_{t+H} and ``actions`` a_t..a_{t+H-1}.

Each batch holds ``frames`` uint8 [B, H+1, h, w, 3], ``actions`` float32 [B, H, d_a*k] and
``sample_id`` int64. With frame skip k the window's frames are t, t+k, ..., t+Hk and each of
its H actions is the k raw actions it spans, concatenated in order (``window_actions``): k=1
gives the dataset's actions unchanged.

The actions are sliced on the driver into the manifest (they are small next to frames), so
decode actors only decode and augment; flips are refused, they would mirror the frames but
not the actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipelines.augment import AugmentSpec
from pipelines.clips import DecodeConfig, StreamPipeline, build_stream
from pipelines.manifest import SourceSpec, load_source
from vjepa2.data.clips import WindowSpec, epochs_slice, window_actions, window_index


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


def build_window_pipeline(cfg: WindowPipelineConfig) -> StreamPipeline:
    """Phase-2 stream of (frames, actions) windows from a video-action dataset."""
    cfg.augment.check_for_actions()
    source = load_source(cfg.source, require_actions=True)
    episodes = [(p, int(e.num_frames)) for p, e in zip(source.paths, source.episodes, strict=True)]
    index = epochs_slice(
        lambda e: window_index(episodes, cfg.windows, epoch=e),
        first_epoch=cfg.epoch,
        epochs=cfg.epochs,
        skip=cfg.skip,
        limit=cfg.limit,
    )
    actions = gather_window_actions(
        [e.actions for e in source.episodes], index.video, index.start, cfg.windows
    )
    return build_stream(
        index, source, cfg.augment, cfg.decode, cfg.source.on_error, cfg.epoch, actions=actions
    )


def gather_window_actions(
    episode_actions: list[np.ndarray], video: np.ndarray, start: np.ndarray, spec: WindowSpec
) -> np.ndarray:
    """float32 [N, H, d_a*k]: ``window_actions`` for every sample, one gather per episode."""
    d = episode_actions[0].shape[1] * spec.frameskip if episode_actions else 0
    out = np.empty((len(start), spec.horizon, d), np.float32)
    steps = np.arange(spec.horizon * spec.frameskip)
    order = np.argsort(video, kind="stable")
    videos, first = np.unique(video[order], return_index=True)
    for v, rows in zip(videos.tolist(), np.split(order, first[1:]), strict=True):
        if len(rows) == 1:  # the scalar path also checks the bounds, with a clear message
            out[rows[0]] = window_actions(
                episode_actions[v], int(start[rows[0]]), spec.horizon, spec.frameskip
            )
            continue
        a = episode_actions[v][start[rows, None] + steps]  # [n, H*k, d_a]
        out[rows] = a.reshape(len(rows), spec.horizon, d)
    return out
