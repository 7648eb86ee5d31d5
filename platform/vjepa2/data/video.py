"""Writing H.264 clips and reading frames back through a small, swappable decoder interface.

decord is fast but unmaintained (it leaks, and a handle inherited across ``fork`` can deadlock),
so everything outside this module talks to the ``VideoReader`` protocol and PyAV can stand in
(``open_video(path, backend="pyav")``). Both readers open their file lazily, reopen after a fork
and pickle as their path only, so they can be shipped to worker processes.

Frames are always ``uint8 [K, H, W, 3]`` RGB. Frame indices are display order, 0-based.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

Backend = Literal["decord", "pyav"]
BACKENDS: tuple[str, ...] = ("decord", "pyav")

# Decoder handles inherited through fork. They are never used or freed in the child: freeing a
# decord handle joins decoder threads that fork did not copy, which can hang forever.
_INHERITED: list[Any] = []


class VideoDecodeError(RuntimeError):
    """A video that cannot be opened or decoded: missing, unreadable, truncated, or a bad index."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@runtime_checkable
class VideoReader(Protocol):
    """Random access to the frames of one video."""

    path: str

    @property
    def num_frames(self) -> int: ...

    @property
    def fps(self) -> float: ...

    @property
    def height(self) -> int: ...

    @property
    def width(self) -> int: ...

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames at ``indices`` (any order, repeats allowed) as uint8 [K, H, W, 3]."""
        ...

    def close(self) -> None: ...


def write_video(
    path: str | os.PathLike[str], frames: np.ndarray, fps: int, *, crf: int = 18
) -> None:
    """Encode uint8 RGB ``frames`` [T, H, W, 3] as an H.264 (yuv420p) mp4 at ``fps``.

    H and W must be even: yuv420p stores colour at half resolution, and padding or cropping
    here would silently change the frame size readers see, so the caller decides. ``crf`` 18 is
    near-transparent, which keeps small synthetic frames (a few-pixel square) recognisable.
    The file is written under a temporary name and renamed, so a crash never leaves a partial
    ``path``; ``faststart`` puts the index first so remote readers can stream it.
    """
    import av

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"{path}: expected uint8 frames [T, H, W, 3], got {frames.dtype} {frames.shape}"
        )
    t, h, w, _ = frames.shape
    if t < 1:
        raise ValueError(f"{path}: cannot write a video with no frames")
    if h % 2 or w % 2:
        raise ValueError(f"{path}: H.264/yuv420p needs even height and width, got {h}x{w}")
    if fps < 1 or int(fps) != fps:
        raise ValueError(f"{path}: fps must be a positive integer, got {fps}")

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            stream = out.add_stream("libx264", rate=int(fps))
            stream.height, stream.width = h, w
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(crf), "preset": "medium"}
            for frame in frames:
                out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            out.mux(stream.encode())  # flush the encoder's delayed (B-)frames
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def encode_video(frames: np.ndarray, fps: int, *, crf: int = 18) -> bytes:
    """The mp4 bytes ``write_video`` would write: lets workers encode and ship small files."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "video.mp4"
        write_video(path, frames, fps, crf=crf)
        return path.read_bytes()


def open_video(
    path: str | os.PathLike[str],
    backend: Backend = "decord",
    *,
    filesystem: Any | None = None,
    num_threads: int = 1,
) -> VideoReader:
    """A lazily opened reader for ``path``; nothing is read until metadata or frames are asked.

    ``filesystem`` is a ``pyarrow.fs.FileSystem`` for non-local paths (the bytes are fetched
    on open); ``None`` means a local path.
    """
    if backend == "decord":
        return DecordReader(path, filesystem=filesystem, num_threads=num_threads)
    if backend == "pyav":
        return PyAVReader(path, filesystem=filesystem, num_threads=num_threads)
    raise ValueError(f"unknown video backend {backend!r}; expected one of {BACKENDS}")


class _LazyReader:
    """Shared plumbing: lazy open, reopen after fork, pickle as a path, index validation."""

    def __init__(self, path: str | os.PathLike[str], filesystem: Any | None, num_threads: int):
        self.path = str(path)
        self.filesystem = filesystem
        self.num_threads = num_threads
        self._handle: Any = None
        self._pid = -1

    def _open(self) -> Any:
        raise NotImplementedError

    def _get(self) -> Any:
        if self._handle is not None and self._pid != os.getpid():
            self.close()  # inherited through fork: set aside, then open our own
        if self._handle is None:
            self._handle = self._open()
            self._pid = os.getpid()
        return self._handle

    def _release(self, handle: Any) -> None:
        """Free a handle opened by this process."""

    def _local_or_fetch(self) -> str | io.BytesIO:
        if self.filesystem is None:
            if not os.path.isfile(self.path):
                raise VideoDecodeError(self.path, "file not found")
            return self.path
        try:
            with self.filesystem.open_input_file(self.path) as f:
                return io.BytesIO(f.read())
        except (FileNotFoundError, OSError) as e:
            raise VideoDecodeError(self.path, f"cannot read file: {e}") from e

    def _check_indices(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise VideoDecodeError(self.path, "frame indices must be a 1-D integer sequence")
        idx = idx.astype(np.int64)
        n = self.num_frames
        bad = idx[(idx < 0) | (idx >= n)]
        if bad.size:
            raise VideoDecodeError(
                self.path, f"frame index {int(bad[0])} out of range for a {n}-frame video"
            )
        return idx

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None:
            return
        if self._pid == os.getpid():
            self._release(handle)
        else:
            _INHERITED.append(handle)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handle": None, "_pid": -1}

    def __enter__(self) -> _LazyReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"


class DecordReader(_LazyReader):
    """decord backend: seeks to keyframes in C++, fastest for scattered clip sampling."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        filesystem: Any | None = None,
        num_threads: int = 1,
    ) -> None:
        super().__init__(path, filesystem, num_threads)
        self._shape: tuple[int, int] | None = None

    def _open(self) -> Any:
        import decord

        source = self._local_or_fetch()
        try:
            return decord.VideoReader(source, ctx=decord.cpu(0), num_threads=self.num_threads)
        except (RuntimeError, decord.DECORDError, AssertionError) as e:
            raise VideoDecodeError(self.path, f"cannot open video (decord: {_short(e)})") from e

    @property
    def num_frames(self) -> int:
        return len(self._get())

    @property
    def fps(self) -> float:
        return float(self._get().get_avg_fps())

    @property
    def height(self) -> int:
        return self._frame_shape()[0]

    @property
    def width(self) -> int:
        return self._frame_shape()[1]

    def _frame_shape(self) -> tuple[int, int]:
        # decord exposes no frame size, so decode frame 0 once.
        if self._shape is None:
            self._shape = tuple(self.get_frames([0]).shape[1:3])  # type: ignore[assignment]
        return self._shape  # type: ignore[return-value]

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        import decord

        vr = self._get()
        idx = self._check_indices(indices)
        if idx.size == 0:
            return np.empty((0, *self._frame_shape(), 3), np.uint8)
        try:
            frames = vr.get_batch(idx.tolist()).asnumpy()
        except (RuntimeError, decord.DECORDError, IndexError) as e:
            raise VideoDecodeError(
                self.path, f"cannot decode frames (truncated or corrupt? decord: {_short(e)})"
            ) from e
        self._shape = tuple(frames.shape[1:3])  # type: ignore[assignment]
        return frames


class _PyAVHandle:
    """An open container plus the display-order frame index built by demuxing (no decoding)."""

    def __init__(self, container: Any, stream: Any, pts: np.ndarray, keyframes: np.ndarray):
        from av.video.reformatter import VideoReformatter

        self.container = container
        self.stream = stream
        self.pts = pts  # sorted presentation timestamps: pts[i] is frame i
        self.keyframes = keyframes  # sorted frame indices of keyframes
        self.index_of = {int(p): i for i, p in enumerate(pts)}
        # Our own colour converter, not PyAV's per-thread shared one: that one outlives a fork,
        # and since PyAV 18.1.1 it scales on a thread pool (one thread per core by default)
        # whose threads the child does not have, so a child's first conversion waits forever.
        self.reformatter = VideoReformatter()


class PyAVReader(_LazyReader):
    """PyAV (FFmpeg) backend: maintained, slower per frame; seeks to the nearest keyframe."""

    def _open(self) -> _PyAVHandle:
        import av

        source = self._local_or_fetch()
        try:
            container = av.open(source, "r")
        except (av.error.FFmpegError, OSError) as e:
            raise VideoDecodeError(self.path, f"cannot open video (pyav: {_short(e)})") from e
        try:
            if not container.streams.video:
                raise VideoDecodeError(self.path, "no video stream")
            stream = container.streams.video[0]
            stream.codec_context.thread_count = self.num_threads
            pts, keys = [], []
            for packet in container.demux(stream):
                if packet.pts is None or packet.size == 0:
                    continue  # the demuxer's end-of-stream flush packet
                pts.append(packet.pts)
                keys.append(packet.is_keyframe)
            order = np.argsort(pts, kind="stable")
            pts_arr = np.asarray(pts, np.int64)[order]
            key_idx = np.flatnonzero(np.asarray(keys, bool)[order])
            declared = stream.frames
            # A cut-off mp4 keeps its header, so the demuxer just stops early: the header's
            # frame count is the only sign of the missing tail.
            if declared and declared != len(pts_arr):
                raise VideoDecodeError(
                    self.path,
                    f"container declares {declared} frames but only {len(pts_arr)} are present "
                    "(truncated file?)",
                )
            if len(pts_arr) == 0 or len(key_idx) == 0:
                raise VideoDecodeError(self.path, "no decodable frames")
            container.seek(int(pts_arr[0]), stream=stream, backward=True, any_frame=False)
            return _PyAVHandle(container, stream, pts_arr, key_idx)
        except av.error.FFmpegError as e:
            container.close()
            raise VideoDecodeError(self.path, f"cannot read video (pyav: {_short(e)})") from e
        except BaseException:
            container.close()
            raise

    @property
    def num_frames(self) -> int:
        return len(self._get().pts)

    @property
    def fps(self) -> float:
        rate = self._get().stream.average_rate
        return float(rate) if rate else 0.0

    @property
    def height(self) -> int:
        return int(self._get().stream.codec_context.height)

    @property
    def width(self) -> int:
        return int(self._get().stream.codec_context.width)

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        import av

        h = self._get()
        idx = self._check_indices(indices)
        if idx.size == 0:
            return np.empty((0, self.height, self.width, 3), np.uint8)
        decoded: dict[int, np.ndarray] = {}
        frames_iter = None
        pos = -1  # display index of the last frame decoded by frames_iter
        try:
            for target in np.unique(idx).tolist():
                key = int(h.keyframes[np.searchsorted(h.keyframes, target, side="right") - 1])
                # Decoding forward is cheaper than seeking unless a keyframe lies in between.
                if frames_iter is None or target <= pos or key > pos:
                    h.container.seek(
                        int(h.pts[key]), stream=h.stream, backward=True, any_frame=False
                    )
                    frames_iter = h.container.decode(h.stream)
                for frame in frames_iter:
                    pos = h.index_of.get(frame.pts, -1) if frame.pts is not None else -1
                    if pos == target:
                        rgb = h.reformatter.reformat(
                            frame, format="rgb24", threads=self.num_threads
                        )
                        decoded[target] = rgb.to_ndarray()
                        break
                    if pos > target:
                        break
                if target not in decoded:
                    raise VideoDecodeError(
                        self.path, f"frame {target} could not be decoded (truncated or corrupt?)"
                    )
        except av.error.FFmpegError as e:
            raise VideoDecodeError(
                self.path, f"cannot decode frames (truncated or corrupt? pyav: {_short(e)})"
            ) from e
        return np.stack([decoded[i] for i in idx.tolist()])

    def _release(self, handle: _PyAVHandle) -> None:
        handle.container.close()


def _short(e: BaseException, limit: int = 200) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
