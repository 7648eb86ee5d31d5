"""Phase-1 clips as a Ray Data stream: manifest -> decode actors -> uint8 ``frames`` batches.

``ray.data.read_videos`` yields one row per frame, so clips are decoded here instead: the
manifest (video index, start, sample id) is cut into blocks of at most
``DecodeConfig.batch_size`` rows along video boundaries, and a fixed pool of
``SampleDecoder`` actors (``pipelines.decode``) turns each block into ``frames`` uint8
[B, T, H, W, 3] plus ``sample_id`` int64 (no strings: ``iter_torch_batches`` rejects them)
and any per-sample arrays the manifest carries (Phase 2: ``actions``, ``proprio``).

Bad videos found while decoding raise a ``SampleDecodeError`` naming the file, or with
``on_error="skip"`` drop the sample and are logged to a small actor that
``StreamPipeline.report()`` reads after iteration, wherever the iteration ran.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import ray

from pipelines.augment import AugmentSpec
from pipelines.decode import SampleDecodeError, SampleDecoder, SkipLog
from pipelines.manifest import LoadedSource, SourceSpec, load_source, manifest_blocks
from vjepa2.data.clips import ClipSpec, SampleIndex, clip_index, epochs_slice
from vjepa2.data.dataset import OnError, SkipReport
from vjepa2.data.video import Backend

if TYPE_CHECKING:  # torch is only needed where batches are consumed
    import torch

__all__ = [
    "ClipPipelineConfig",
    "DecodeConfig",
    "PipelineReport",
    "SampleDecodeError",
    "StreamPipeline",
    "build_clip_pipeline",
    "build_stream",
    "iter_clip_batches",
]


@dataclass(frozen=True)
class DecodeConfig:
    """How decoding is spread over Ray actors."""

    num_actors: int | None = None  # None: the machine's cores (bounded by the cluster's CPUs)
    cpus_per_actor: float = 1.0
    batch_size: int = 16  # most samples per actor call; blocks are cut along videos
    max_open_readers: int = 1  # per actor, LRU; more only if videos interleave (decode.py)
    backend: Backend = "decord"
    num_threads: int = 1  # decoder threads per reader; >1 only with spare cores


@dataclass(frozen=True)
class ClipPipelineConfig:
    source: SourceSpec
    clips: ClipSpec = field(default_factory=ClipSpec)
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    epoch: int = 0  # mixed into every seed: a new epoch gets new clip offsets/order/crops
    # Epochs epoch .. epoch+epochs-1 in one stream: the actor pool starts (seconds) only once.
    # None: as many as fill skip+limit (an epoch's size varies with random clip offsets).
    epochs: int | None = 1
    # A slice of the whole multi-epoch index: a resumed trainer skips what it consumed.
    skip: int = 0
    limit: int | None = None


@dataclass
class PipelineReport:
    """Everything dropped: at open (dataset), while decoding, and videos too short to sample."""

    dataset: SkipReport
    decode: SkipReport
    too_short: list[str]
    num_samples: int  # in the manifest, before decode-time skips

    @property
    def total_skipped(self) -> int:
        return self.dataset.total + self.decode.total

    def summary(self) -> str:
        return (
            f"{self.num_samples} samples; dataset: {self.dataset.summary()}; "
            f"decode: {self.decode.total} samples dropped {self.decode.counts}; "
            f"{len(self.too_short)} videos too short"
        )


@dataclass
class StreamPipeline:
    """A Ray dataset of decoded samples plus what is needed to report on it."""

    dataset: ray.data.Dataset
    index: SampleIndex
    source: LoadedSource
    log: Any  # SkipLog handle (None when raising); keeps the log alive with the pipeline

    def report(self) -> PipelineReport:
        """Call after iterating: decode-time skips are only known once samples were decoded."""
        return PipelineReport(
            dataset=self.source.skipped,
            decode=SkipReport() if self.log is None else ray.get(self.log.get.remote()),
            too_short=list(self.index.too_short),
            num_samples=len(self.index),
        )

    def iter_batches(
        self, batch_size: int | None, **kwargs: Any
    ) -> Iterator[dict[str, torch.Tensor]]:
        return iter_clip_batches(self.dataset, batch_size, **kwargs)


def build_clip_pipeline(cfg: ClipPipelineConfig) -> StreamPipeline:
    """Phase-1 stream of ``frames`` uint8 [B, T, H, W, 3] and ``sample_id`` int64."""
    source = load_source(cfg.source)
    videos = [(p, int(e.num_frames)) for p, e in zip(source.paths, source.episodes, strict=True)]
    index = epochs_slice(
        lambda e: clip_index(videos, cfg.clips, epoch=e),
        first_epoch=cfg.epoch,
        epochs=cfg.epochs,
        skip=cfg.skip,
        limit=cfg.limit,
    )
    return build_stream(index, source, cfg.augment, cfg.decode, cfg.source.on_error, cfg.epoch)


def build_stream(
    index: SampleIndex,
    source: LoadedSource,
    augment: AugmentSpec,
    decode: DecodeConfig,
    on_error: OnError,
    epoch: int,
    *,
    per_sample: Mapping[str, np.ndarray] | None = None,
) -> StreamPipeline:
    """Decode ``index`` with an actor pool; each ``per_sample`` array (one row per sample,
    e.g. ``actions``) rides along into the batches as a column of its name."""
    if not len(index):
        raise ValueError(
            f"no samples: {len(source.episodes)} videos, {len(index.too_short)} shorter than one "
            f"sample of {index.num_frames} frames at stride {index.stride}"
        )
    out_hw = augment.out_size or source.frame_size()
    if out_hw is None:
        raise ValueError("the videos have different sizes; set AugmentSpec.size to batch them")
    # Only a skipping stream needs the log (an idle actor still costs a worker's start-up).
    log = SkipLog.remote() if on_error == "skip" else None
    blocks = manifest_blocks(index, decode.batch_size, per_sample=per_sample)
    ds = ray.data.from_arrow(blocks).map_batches(
        SampleDecoder,
        batch_size=None,  # one call per manifest block: blocks are already cut along videos
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=_num_actors(decode)),
        num_cpus=decode.cpus_per_actor,
        fn_constructor_kwargs={
            "paths": index.paths,
            "video_frames": index.video_frames,
            "filesystem": source.filesystem,
            "num_frames": index.num_frames,
            "stride": index.stride,
            "out_hw": tuple(out_hw),
            "augment": _seeded(augment, epoch),
            "on_error": on_error,
            "log": log,
            "max_open_readers": decode.max_open_readers,
            "backend": decode.backend,
            "num_threads": decode.num_threads,
        },
    )
    return StreamPipeline(dataset=ds, index=index, source=source, log=log)


def iter_clip_batches(
    ds_or_shard: Any,
    batch_size: int | None,
    *,
    device: str | torch.device = "auto",
    prefetch_batches: int = 2,
    local_shuffle_buffer_size: int | None = None,
    local_shuffle_seed: int | None = None,
    drop_last: bool = False,
    pin_memory: bool = False,
) -> Iterator[dict[str, torch.Tensor]]:
    """Torch batches from a pipeline's dataset or a Train worker's ``get_dataset_shard``.

    Frames stay uint8 (4x less to move); normalise them on ``device`` with
    ``vjepa2.data.transforms.normalize_video``. ``device="auto"`` is the Train worker's device
    (CPU outside Train). ``batch_size=None`` passes the decode blocks through as they are (at
    most ``DecodeConfig.batch_size`` samples, cut along videos): no re-batching copy. A sample
    error raised in a decode actor comes back as a ``SampleDecodeError`` naming the file, not
    Ray's wrapped traceback text.
    """
    batches = ds_or_shard.iter_torch_batches(
        batch_size=batch_size,
        device=device,
        prefetch_batches=prefetch_batches,
        local_shuffle_buffer_size=local_shuffle_buffer_size,
        local_shuffle_seed=local_shuffle_seed,
        drop_last=drop_last,
        pin_memory=pin_memory,
    )
    try:
        yield from batches
    except ray.exceptions.RayError as e:
        original = SampleDecodeError.from_ray_error(e)
        if original is None:
            raise
        raise original from e


def _num_actors(decode: DecodeConfig) -> int:
    if decode.num_actors is not None:
        return decode.num_actors
    cluster = int(ray.cluster_resources().get("CPU", 1) // decode.cpus_per_actor)
    # Decoding is CPU-bound: more actors than cores only adds context switches.
    return max(1, min(os.cpu_count() or 1, cluster - 1))


def _seeded(augment: AugmentSpec, epoch: int) -> AugmentSpec:
    return replace(augment, seed=augment.seed + 1_000_003 * epoch)
