"""A training job's data as a Ray Data stream, and the batch source its workers read it by.

The driver builds one stream covering the steps still to run: the epochs of clips
(Phase 1) or windows (Phase 2) that hold ``train.steps`` global batches, minus the samples a
resumed run already consumed. Ray Train splits it across workers (``equal=True``, so DDP
ranks never run out at different steps); each worker normalises its uint8 batches on its
own device.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch

from pipelines.augment import AugmentSpec
from pipelines.clips import (
    ClipPipelineConfig,
    DecodeConfig,
    StreamPipeline,
    build_clip_pipeline,
    iter_clip_batches,
)
from pipelines.manifest import SourceSpec, load_source
from pipelines.windows import WindowPipelineConfig, build_window_pipeline
from vjepa2.config.jobs import DynamicsTrainConfig, PretrainConfig
from vjepa2.data.clips import ClipSpec, WindowSpec, clip_index, window_index
from vjepa2.data.transforms import normalize_frames, normalize_video

JobConfig = PretrainConfig | DynamicsTrainConfig


def build_train_stream(cfg: JobConfig, start_step: int = 0) -> StreamPipeline:
    """The samples of steps ``start_step`` .. ``train.steps``-1, in a seeded order."""
    d = cfg.data.dataset
    dynamics = isinstance(cfg, DynamicsTrainConfig)
    spec = SourceSpec(d.path, split=d.split, on_error=d.on_error, extra=d.extra_paths)
    source = load_source(spec, require_actions=dynamics)
    if not source.episodes:
        raise ValueError(f"{spec.name}: no episodes in split {d.split!r}")
    videos = [(p, int(e.num_frames)) for p, e in zip(source.paths, source.episodes, strict=True)]
    seed = cfg.train.seed
    decode = DecodeConfig(num_actors=d.decode_actors or None)
    size = cfg.encoder.img_size
    augment = AugmentSpec(size=None if source.frame_size() == (size, size) else size, seed=seed)
    if dynamics:
        got = (source.action_dim or 0) * d.frameskip
        if got != cfg.dynamics.action_dim:
            raise ValueError(
                f"{spec.name}: actions are {source.action_dim}-dimensional (x frameskip "
                f"{d.frameskip} = {got}) but dynamics.action_dim is {cfg.dynamics.action_dim}"
            )
        windows = WindowSpec(horizon=cfg.loss.horizon, frameskip=d.frameskip, seed=seed)
        first = window_index(videos, windows)
    else:
        clips = ClipSpec(
            num_frames=cfg.encoder.num_frames, stride=d.frame_stride, random_offset=True, seed=seed
        )
        first = clip_index(videos, clips)
    if not len(first):
        raise ValueError(f"{spec.name}: no episode is long enough for one training sample")
    batch = cfg.train.batch_size
    skip, limit = start_step * batch, (cfg.train.steps - start_step) * batch
    common: dict[str, Any] = {
        "source": spec,
        "augment": augment,
        "decode": decode,
        # As many epochs as the steps need, counted per epoch: random clip offsets make
        # epochs differ in size, and a stream short of a batch ends the run mid-way.
        "epochs": None,
        "skip": skip,
        "limit": limit,
    }
    if dynamics:
        return build_window_pipeline(
            WindowPipelineConfig(windows=windows, proprio_dims=cfg.state.proprio_dims, **common)
        )
    return build_clip_pipeline(ClipPipelineConfig(clips=clips, **common))


class StreamBatches:
    """One worker's batches from its dataset shard: uint8 in, normalised on its device.

    ``batch(step)`` is ``(frames,)`` for pretraining, ``(frames, actions)`` for dynamics and
    ``(frames, actions, proprio)`` when the stream carries proprio (``state.proprio_dims``).

    Every batch has exactly ``batch_size`` samples. Ray's local shuffle can hand out a short
    batch mid-stream when its buffer is under twice the batch (Ray 2.60, ray-project/ray#66085),
    which would train a step on fewer samples, desynchronise DDP ranks and end the stream a
    batch early; ``exact_batches`` carries such rows over into the next batch instead.
    """

    def __init__(self, shard: Any, kind: str, batch_size: int, shuffle_buffer: int, seed: int):
        self.kind = kind
        batches = iter_clip_batches(
            shard,
            batch_size,
            drop_last=False,  # a short batch may be rows carried over; exact_batches drops the end
            local_shuffle_buffer_size=shuffle_buffer or None,
            local_shuffle_seed=seed if shuffle_buffer else None,
        )
        self._it = exact_batches(batches, batch_size)
        self._served = 0

    def batch(self, step: int) -> tuple[Any, ...]:
        try:
            b = next(self._it)
        except StopIteration:
            # How many came says whether the shard was short or this worker read it twice.
            raise RuntimeError(
                f"the training data stream ended early, at step {step}, after {self._served} "
                "batches from this worker's shard"
            ) from None
        self._served += 1
        if self.kind == "pretrain":
            return (normalize_video(b["frames"]),)
        if "proprio" in b:
            return normalize_frames(b["frames"]), b["actions"].float(), b["proprio"].float()
        return normalize_frames(b["frames"]), b["actions"].float()


def exact_batches(
    batches: Iterable[dict[str, torch.Tensor]], size: int
) -> Iterator[dict[str, torch.Tensor]]:
    """The rows of ``batches``, in order, as batches of exactly ``size``; a last partial one
    is dropped. Full batches pass through uncopied: only rows carried over are concatenated."""
    carry: dict[str, torch.Tensor] | None = None
    for b in batches:
        if carry is not None:
            b = {k: torch.cat([carry[k], v]) for k, v in b.items()}
            carry = None
        n = len(next(iter(b.values())))
        lo = 0
        while n - lo >= size:
            yield b if (lo, n) == (0, size) else {k: v[lo : lo + size] for k, v in b.items()}
            lo += size
        if lo < n:
            carry = {k: v[lo:] for k, v in b.items()}
