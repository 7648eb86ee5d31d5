"""The decode actor behind every stream: manifest rows -> uint8 frames, bad videos handled.

One ``SampleDecoder`` per Ray actor. decord handles cannot be pickled, so each actor opens its
own readers and keeps the last ``max_open_readers`` open (``SampleOrder`` "videos" makes
consecutive samples share a video, and the chunking of the manifest keeps a video's run in
one call, so one is usually enough). More is rarely worth it with decord: an open reader keeps
decoding ahead on its own thread, which measured here doubled the CPU time of random clips
with 4 readers open (83 vs 41 ms per clip) for no gain.

Copies are the cost beside decoding (a 16-frame 224x224 clip is 2.4 MB; one memcpy of it is
~6% of its decode time here), so a clip is copied once, from decord's buffer into the batch,
and the batch once more into Ray's object store.

A bad video raises ``SampleDecodeError`` naming the file (Ray keeps only the text of an
actor's exception; ``SampleDecodeError.from_ray_error`` recovers it on the driver), or with
``on_error="skip"`` drops the sample and records it in a ``SkipLog`` actor.
"""

from __future__ import annotations

import io
import os
import re
from collections import OrderedDict
from typing import Any, Protocol

import numpy as np
import pyarrow.fs as pafs
import ray

from pipelines.augment import AugmentSpec, augment_clip
from vjepa2.data.dataset import DatasetError, OnError, SkipReport
from vjepa2.data.video import Backend, VideoDecodeError, open_video

# The manifest columns a decoder consumes; every other column is carried into the batch.
_DECODE_INPUTS = ("video", "start")


class SampleDecodeError(VideoDecodeError):
    """A sample's video failed while streaming; ``str()`` is ``"<path>: <problem>"``."""

    _LINE = re.compile(r"SampleDecodeError: (.+)")

    @classmethod
    def from_ray_error(cls, error: BaseException) -> SampleDecodeError | None:
        """The error an actor raised, recovered from Ray's wrapper (which keeps only text)."""
        found = cls._LINE.findall(str(error))
        if not found:
            return None
        path, _, reason = found[-1].strip().partition(": ")
        return cls(path, reason)


@ray.remote(num_cpus=0)
class SkipLog:
    """Collects decode-time skips from every actor, so the driver can report them later."""

    def __init__(self) -> None:
        self.report = SkipReport()

    def add(self, path: str, reason: str, message: str) -> None:
        self.report.add(DatasetError(path, reason, message))

    def get(self) -> SkipReport:
        return self.report


class _Frames(Protocol):
    num_frames: int

    def get_frames(self, indices: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


class SampleDecoder:
    """Ray Data actor: manifest rows -> decoded, augmented uint8 frames (and carried columns)."""

    def __init__(
        self,
        *,
        paths: list[str],
        video_frames: np.ndarray,
        filesystem: pafs.FileSystem | None,
        num_frames: int,
        stride: int,
        out_hw: tuple[int, int],
        augment: AugmentSpec,
        on_error: OnError,
        log: Any,
        max_open_readers: int,
        backend: Backend,
        num_threads: int,
    ) -> None:
        self.paths = paths
        self.video_frames = video_frames
        self.fs = filesystem
        self.offsets = stride * np.arange(num_frames, dtype=np.int64)
        self.out_shape = (num_frames, *out_hw, 3)
        self.augment = augment
        self.on_error = on_error
        self.log = log
        self.max_open = max(1, max_open_readers)
        self.backend = backend
        self.num_threads = num_threads
        self.readers: OrderedDict[int, _Frames] = OrderedDict()
        self.bad: dict[int, tuple[str, str]] = {}  # video -> (reason, message), never retried

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["sample_id"])
        frames = np.empty((n, *self.out_shape), np.uint8)
        keep = np.zeros(n, bool)
        rows = zip(batch["sample_id"], batch["video"], batch["start"], strict=True)
        for i, (sid, video, start) in enumerate(rows):
            keep[i] = self._decode_into(frames[i], int(video), int(start), int(sid))
        out = {"frames": frames}
        # ``sample_id`` and the per-sample columns (actions, proprio) pass through as they are.
        out.update((k, v) for k, v in batch.items() if k not in _DECODE_INPUTS)
        return out if keep.all() else {k: v[keep] for k, v in out.items()}

    def _decode_into(self, out: np.ndarray, video: int, start: int, sample_id: int) -> bool:
        problem = self.bad.get(video)
        if problem is None:
            try:
                clip = self._reader(video).get_frames(start + self.offsets)
                if not self.augment.is_identity:
                    augment_clip(clip, self.augment, sample_id, out=out)
                elif clip.shape == out.shape:
                    out[...] = clip
                else:
                    raise _Problem(
                        "size_mismatch",
                        f"frames are {clip.shape[1]}x{clip.shape[2]}, the batch needs "
                        f"{out.shape[1]}x{out.shape[2]} (set AugmentSpec.size)",
                    )
                return True
            except VideoDecodeError as e:
                problem = ("unreadable_video", e.reason)
            except _Problem as e:
                problem = (e.reason, e.message)
            self.bad[video] = problem
            self._close(video)
        path = self.paths[video]
        reason, message = problem
        if self.on_error == "raise":
            raise SampleDecodeError(path, f"{message} [{reason}] (sample at frame {start})")
        # Synchronous, so the log is complete by the time the batch is consumed.
        ray.get(self.log.add.remote(path, reason, f"{message} (sample at frame {start})"))
        return False

    def _reader(self, video: int) -> _Frames:
        reader = self.readers.get(video)
        if reader is not None:
            self.readers.move_to_end(video)
            return reader
        # Evict first: an open decord reader keeps decoding ahead on its own thread.
        while len(self.readers) >= self.max_open:
            self._close(next(iter(self.readers)))
        path = self.paths[video]
        if self.backend == "decord":
            reader = DecordClips(path, self.fs, self.num_threads)
        else:
            reader = open_video(
                path, self.backend, filesystem=self.fs, num_threads=self.num_threads
            )
        self.readers[video] = reader
        n, want = reader.num_frames, int(self.video_frames[video])
        if n != want:
            raise _Problem(
                "frame_count_mismatch", f"the index says {want} frames, the video has {n}"
            )
        return reader

    def _close(self, video: int) -> None:
        reader = self.readers.pop(video, None)
        if reader is not None:
            reader.close()


class DecordClips:
    """decord without the copy: frames come back as a read-only view of decord's buffer.

    ``vjepa2.data.video.DecordReader`` returns ``asnumpy()`` (a copy, which the caller then
    copies again into its batch); the errors raised are the same ``VideoDecodeError``s. Opened
    eagerly: an actor opens a reader to use it at once.
    """

    def __init__(self, path: str, filesystem: pafs.FileSystem | None, num_threads: int) -> None:
        import decord

        self.path = path
        if filesystem is None:
            if not os.path.isfile(path):
                raise VideoDecodeError(path, "file not found")
            source: str | io.BytesIO = path
        else:
            try:
                with filesystem.open_input_file(path) as f:
                    source = io.BytesIO(f.read())
            except OSError as e:
                raise VideoDecodeError(path, f"cannot read file: {e}") from e
        try:
            self._vr = decord.VideoReader(source, ctx=decord.cpu(0), num_threads=num_threads)
        except (RuntimeError, decord.DECORDError, AssertionError) as e:
            raise VideoDecodeError(path, f"cannot open video (decord: {_short(e)})") from e
        self.num_frames = len(self._vr)

    def get_frames(self, indices: np.ndarray) -> np.ndarray:
        import decord

        bad = indices[(indices < 0) | (indices >= self.num_frames)]
        if bad.size:
            raise VideoDecodeError(
                self.path,
                f"frame index {int(bad[0])} out of range for a {self.num_frames}-frame video",
            )
        try:
            batch = self._vr.get_batch(indices.tolist())
        except (RuntimeError, decord.DECORDError, IndexError) as e:
            raise VideoDecodeError(
                self.path, f"cannot decode frames (truncated or corrupt? decord: {_short(e)})"
            ) from e
        return np.from_dlpack(_DLPack(batch))

    def close(self) -> None:
        self._vr = None


class _DLPack:
    """Adapts decord's NDArray (a legacy DLPack capsule) to ``np.from_dlpack``."""

    def __init__(self, array: Any) -> None:
        self.array = array

    def __dlpack__(self, **_: Any) -> Any:
        return self.array.to_dlpack()  # the capsule's deleter keeps decord's buffer alive

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)  # kDLCPU


class _Problem(Exception):
    def __init__(self, reason: str, message: str) -> None:
        self.reason, self.message = reason, message
        super().__init__(message)


def _short(e: BaseException, limit: int = 200) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
