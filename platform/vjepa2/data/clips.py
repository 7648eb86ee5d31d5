"""Which frames to decode: Phase-1 clips and Phase-2 windows as a columnar sample index.

A sample is ``num_frames`` frames of one video, ``stride`` apart, from ``start``:
``start + stride * arange(num_frames)``. A Phase-1 clip has ``ClipSpec.num_frames`` frames at
``ClipSpec.stride``; a Phase-2 window of horizon H and frame skip k has H+1 frames k apart
(x_t, x_{t+k}, ..., x_{t+Hk}) and H actions, each the concatenation of the k raw actions it
spans (see ``window_actions``).

Everything is deterministic given (seed, epoch): each video draws its starts from a generator
keyed by its own path, so adding or reordering videos does not change the other videos' clips.
The index is plain numpy (no strings per sample), so it ships cheaply to decode workers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

# "videos": videos shuffled, a video's samples kept together in ascending start order, so a
# decoder reuses one open reader and seeks forward. "samples": a full shuffle (every sample
# may reopen its file). "none": input order.
SampleOrder = Literal["none", "videos", "samples"]
ORDERS: tuple[str, ...] = ("none", "videos", "samples")


@dataclass(frozen=True)
class ClipSpec:
    """How Phase-1 clips are cut from each video."""

    num_frames: int = 16
    stride: int = 1  # frames between consecutive clip frames
    step: int | None = None  # frames between consecutive clip starts; None: one clip span
    max_clips_per_video: int | None = None  # a seeded random subset of the starts when fewer
    random_offset: bool = False  # shift the grid of starts by a seeded offset in [0, step)
    order: SampleOrder = "videos"
    seed: int = 0

    def __post_init__(self) -> None:
        _check_positive(num_frames=self.num_frames, stride=self.stride)
        _check_common(self.step, self.max_clips_per_video, self.order)

    @property
    def span(self) -> int:
        """Frames of video one clip covers, first to last inclusive."""
        return (self.num_frames - 1) * self.stride + 1


@dataclass(frozen=True)
class WindowSpec:
    """How Phase-2 windows (frames x_t..x_{t+H}, actions a_t..a_{t+H-1}) are cut."""

    horizon: int = 1  # H: H+1 frames and H actions per window
    frameskip: int = 1  # k: frames t, t+k, ...; each action concatenates k raw actions
    step: int | None = 1  # frames between consecutive window starts (dense by default)
    max_windows_per_episode: int | None = None
    random_offset: bool = False
    order: SampleOrder = "videos"
    seed: int = 0

    def __post_init__(self) -> None:
        _check_positive(horizon=self.horizon, frameskip=self.frameskip)
        _check_common(self.step, self.max_windows_per_episode, self.order)

    @property
    def num_frames(self) -> int:
        return self.horizon + 1

    @property
    def span(self) -> int:
        return self.horizon * self.frameskip + 1


@dataclass
class SampleIndex:
    """Samples as columns: sample i is frames ``frame_indices(i)`` of ``paths[video[i]]``."""

    paths: list[str]  # one per video / episode, in the order given
    video_frames: np.ndarray  # int64 [V]: each video's frame count
    video: np.ndarray  # int32 [N]: index into ``paths``
    start: np.ndarray  # int64 [N]
    num_frames: int
    stride: int
    too_short: list[str] = field(default_factory=list)  # videos shorter than one sample

    def __len__(self) -> int:
        return len(self.start)

    def frame_indices(self, i: int) -> np.ndarray:
        return int(self.start[i]) + self.stride * np.arange(self.num_frames, dtype=np.int64)

    def take(self, lo: int, hi: int | None = None) -> SampleIndex:
        """Samples ``lo`` .. ``hi``-1 (a resumed run skips what it already consumed)."""
        sl = slice(lo, hi)
        return replace(self, video=self.video[sl], start=self.start[sl])

    def rows(self) -> list[dict[str, object]]:
        """(video_path, start, num_frames, stride) per sample, for inspection and tests."""
        return [
            {
                "video_path": self.paths[v],
                "start": int(s),
                "num_frames": self.num_frames,
                "stride": self.stride,
            }
            for v, s in zip(self.video.tolist(), self.start.tolist(), strict=True)
        ]


def clip_index(videos: Sequence[tuple[str, int]], spec: ClipSpec, *, epoch: int = 0) -> SampleIndex:
    """Phase-1 clips of ``videos`` given as (path, frame count)."""
    step = spec.span if spec.step is None else spec.step
    return _build(
        videos,
        span=spec.span,
        num_frames=spec.num_frames,
        stride=spec.stride,
        step=step,
        limit=spec.max_clips_per_video,
        random_offset=spec.random_offset,
        order=spec.order,
        seed=spec.seed,
        epoch=epoch,
    )


def window_index(
    episodes: Sequence[tuple[str, int]], spec: WindowSpec, *, epoch: int = 0
) -> SampleIndex:
    """Phase-2 windows of ``episodes`` given as (video path, frame count).

    A window at t needs frame t + H*k, so t <= T-1-H*k; its last action, a_{t+Hk-1}, exists
    because an episode of T frames has T-1 actions.
    """
    step = 1 if spec.step is None else spec.step
    return _build(
        episodes,
        span=spec.span,
        num_frames=spec.num_frames,
        stride=spec.frameskip,
        step=step,
        limit=spec.max_windows_per_episode,
        random_offset=spec.random_offset,
        order=spec.order,
        seed=spec.seed,
        epoch=epoch,
    )


def concat_indices(parts: Sequence[SampleIndex]) -> SampleIndex:
    """One index visiting ``parts`` in turn (e.g. several epochs); they must share videos."""
    first = parts[0]
    for p in parts[1:]:
        if p.paths != first.paths or (p.num_frames, p.stride) != (first.num_frames, first.stride):
            raise ValueError("only indices over the same videos and sample shape concatenate")
    return SampleIndex(
        paths=first.paths,
        video_frames=first.video_frames,
        video=np.concatenate([p.video for p in parts]),
        start=np.concatenate([p.start for p in parts]),
        num_frames=first.num_frames,
        stride=first.stride,
        too_short=first.too_short,
    )


def epochs_slice(
    one_epoch: Callable[[int], SampleIndex],
    *,
    first_epoch: int = 0,
    epochs: int | None = 1,
    skip: int = 0,
    limit: int | None = None,
) -> SampleIndex:
    """Samples ``skip`` .. ``skip + limit - 1`` of epochs ``first_epoch``, ``first_epoch + 1``, ...

    ``epochs=None`` takes as many epochs as the slice needs. With random offsets an epoch's
    size depends on its seed (a 17-frame video holds one or two 8-frame clips), so a count
    made from one epoch cannot say how many epochs a slice needs. A slice the epochs cannot
    fill raises instead of coming back short: a short training stream ends mid-run.
    """
    if epochs is None and limit is None:
        raise ValueError("epochs=None needs a limit: it takes the epochs that cover the slice")
    if skip < 0 or (limit is not None and limit < 0) or (epochs is not None and epochs < 1):
        raise ValueError(f"bad slice: skip={skip}, limit={limit}, epochs={epochs}")
    need = None if limit is None else skip + limit
    parts: list[SampleIndex] = []
    held = 0
    while (epochs is None and held < need) or (epochs is not None and len(parts) < epochs):
        part = one_epoch(first_epoch + len(parts))
        if not len(part):
            raise ValueError(
                f"epoch {first_epoch + len(parts)} has no samples: all {len(part.paths)} videos "
                "are shorter than one sample"
            )
        parts.append(part)
        held += len(part)
    if need is not None and held < need:
        raise ValueError(
            f"{len(parts)} epochs hold {held} samples, fewer than the {need} the slice "
            f"skip={skip}, limit={limit} needs"
        )
    return concat_indices(parts).take(skip, need)


def video_aligned_chunks(video: np.ndarray, max_rows: int) -> list[tuple[int, int]]:
    """[lo, hi) row ranges of at most ``max_rows`` that split runs of one video only if needed.

    Each chunk becomes one decode call, possibly on another worker. A video whose samples
    straddle two chunks is opened twice and the second reader must seek from a keyframe
    (up to a whole GOP of wasted decoding), so whole runs are packed greedily and a run is cut
    only when it alone exceeds ``max_rows``.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    n = len(video)
    cuts = np.flatnonzero(np.diff(video)) + 1
    runs = zip([0, *cuts.tolist()], [*cuts.tolist(), n], strict=True)
    chunks: list[tuple[int, int]] = []
    lo = 0  # start of the chunk being filled
    for a, b in runs if n else ():
        if b - lo <= max_rows:
            continue  # the whole run fits in the current chunk
        if a > lo:
            chunks.append((lo, a))  # close before the run rather than cut it
            lo = a
        while b - lo > max_rows:  # a run longer than a chunk: full chunks, the rest goes on
            chunks.append((lo, lo + max_rows))
            lo += max_rows
    if lo < n:
        chunks.append((lo, n))
    return chunks


def window_actions(actions: np.ndarray, start: int, horizon: int, frameskip: int) -> np.ndarray:
    """float32 [H, d_a*k]: row j is a_{t+jk}, ..., a_{t+jk+k-1} concatenated (k=1: a_{t+j}).

    Concatenation, not a sum: a sum forgets the order of the k sub-steps and is meaningless for
    non-additive actions (gripper toggles, absolute targets); the model can still learn a sum.
    """
    k = frameskip
    end = start + horizon * k
    if start < 0 or end > len(actions):
        raise IndexError(
            f"window t={start}, H={horizon}, k={k} needs actions up to {end - 1}, "
            f"the episode has {len(actions)}"
        )
    a = np.asarray(actions[start:end], np.float32)
    return a.reshape(horizon, k * a.shape[1])


def episode_proprio(episodes: Sequence, dims: Sequence[int], dataset: str) -> list[np.ndarray]:
    """float32 [T, d_p] per dataset episode: its ``states[:, dims]`` (``state.proprio_dims``);
    a ValueError names the dataset and the episode that lacks them."""
    cols = np.asarray(dims, np.int64)
    out = []
    for ep in episodes:
        if ep.states is None:
            raise ValueError(
                f"{dataset}: episode {ep.episode_id!r} has no states; proprio_dims "
                f"{tuple(dims)} are read from the dataset's per-frame states column"
            )
        width = ep.states.shape[1]
        if cols.size and (cols.min() < 0 or cols.max() >= width):
            raise ValueError(
                f"{dataset}: episode {ep.episode_id!r} has {width}-dimensional states; "
                f"proprio_dims {tuple(dims)} must lie in [0, {width})"
            )
        out.append(np.ascontiguousarray(ep.states[:, cols], np.float32))
    return out


def _build(
    videos: Sequence[tuple[str, int]],
    *,
    span: int,
    num_frames: int,
    stride: int,
    step: int,
    limit: int | None,
    random_offset: bool,
    order: SampleOrder,
    seed: int,
    epoch: int,
) -> SampleIndex:
    paths = [p for p, _ in videos]
    counts = np.array([n for _, n in videos], np.int64)
    per_video: list[np.ndarray] = []
    too_short: list[str] = []
    for path, n in zip(paths, counts.tolist(), strict=True):
        rng = np.random.default_rng([seed, epoch, _path_key(path)])
        starts = _starts(n - span + 1, step, limit, random_offset, rng)
        if not len(starts):
            too_short.append(path)
        per_video.append(starts)
    video = np.concatenate(
        [np.full(len(s), i, np.int32) for i, s in enumerate(per_video)] + [np.zeros(0, np.int32)]
    )
    start = np.concatenate(per_video + [np.zeros(0, np.int64)])
    perm = _order(order, per_video, np.random.default_rng([seed, epoch, 2**32]))
    return SampleIndex(
        paths=paths,
        video_frames=counts,
        video=video[perm],
        start=start[perm],
        num_frames=num_frames,
        stride=stride,
        too_short=too_short,
    )


def _starts(
    num_valid: int, step: int, limit: int | None, random_offset: bool, rng: np.random.Generator
) -> np.ndarray:
    """Starts in [0, num_valid) on a grid ``step`` apart, optionally offset and subsampled."""
    if num_valid <= 0:
        return np.zeros(0, np.int64)
    offset = int(rng.integers(min(step, num_valid))) if random_offset else 0
    starts = np.arange(offset, num_valid, step, dtype=np.int64)
    if limit is not None and len(starts) > limit:
        starts = np.sort(rng.choice(starts, size=limit, replace=False))
    return starts


def _order(order: SampleOrder, per_video: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    n = sum(len(s) for s in per_video)
    if order == "none":
        return np.arange(n)
    if order == "samples":
        return rng.permutation(n)
    offsets = np.cumsum([0] + [len(s) for s in per_video])
    return np.concatenate(
        [np.arange(offsets[v], offsets[v + 1]) for v in rng.permutation(len(per_video))]
        + [np.zeros(0, np.int64)]
    ).astype(np.int64)


def _path_key(path: str) -> int:
    return int.from_bytes(hashlib.blake2b(path.encode(), digest_size=8).digest(), "little")


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_common(step: int | None, limit: int | None, order: str) -> None:
    if step is not None:
        _check_positive(step=step)
    if limit is not None:
        _check_positive(max_per_video=limit)
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
