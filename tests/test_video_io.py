"""Writing H.264 clips and decoding them back with both backends."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pytest

from vjepa2.data.video import (
    DecordReader,
    PyAVReader,
    VideoDecodeError,
    VideoReader,
    open_video,
    write_video,
)

BACKENDS = ["decord", "pyav"]
T, H, W, FPS, SIDE = 12, 48, 64, 8, 10


def square_clip(t: int = T, h: int = H, w: int = W) -> np.ndarray:
    """A red square moving diagonally over a dark background, 3 px per frame."""
    frames = np.full((t, h, w, 3), 16, np.uint8)
    for i in range(t):
        y, x = 2 + 2 * i, 3 + 3 * i
        frames[i, y : y + SIDE, x : x + SIDE] = (230, 60, 60)
    return frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[str, np.ndarray]:
    frames = square_clip()
    path = str(tmp_path_factory.mktemp("video") / "square.mp4")
    write_video(path, frames, FPS)
    return path, frames


@pytest.mark.parametrize("backend", BACKENDS)
def test_metadata(clip, backend):
    path, _ = clip
    reader = open_video(path, backend)
    assert isinstance(reader, VideoReader)
    assert (reader.num_frames, reader.height, reader.width) == (T, H, W)
    assert reader.fps == pytest.approx(FPS)


@pytest.mark.parametrize("backend", BACKENDS)
def test_decoded_frames_match_written(clip, backend):
    path, frames = clip
    got = open_video(path, backend).get_frames(range(T))
    assert got.dtype == np.uint8 and got.shape == frames.shape
    err = np.abs(got.astype(np.int16) - frames).mean(axis=(1, 2, 3))
    assert err.max() < 3.0, err  # H.264 is lossy, but crf 18 is close to transparent
    # Each decoded frame is closest to the frame written at the same index (no off-by-one).
    for i in range(T):
        dists = np.abs(got[i].astype(np.int16)[None] - frames).mean(axis=(1, 2, 3))
        assert int(dists.argmin()) == i
    # Decoded frames change where the square moved, and (nearly) only there.
    for i in range(T - 1):
        moved = (frames[i + 1] != frames[i]).any(-1)
        diff = np.abs(got[i + 1].astype(np.int16) - got[i]).mean(-1)
        assert diff[moved].mean() > 60 and diff[~moved].mean() < 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_random_access_equals_sequential(clip, backend):
    path, _ = clip
    reader = open_video(path, backend)
    every = reader.get_frames(np.arange(T))
    order = [9, 2, 2, 11, 0, 5]
    np.testing.assert_array_equal(reader.get_frames(order), every[order])
    assert reader.get_frames([]).shape == (0, H, W, 3)


def test_backends_agree(clip):
    path, _ = clip
    a = open_video(path, "decord").get_frames(range(T)).astype(np.int16)
    b = open_video(path, "pyav").get_frames(range(T)).astype(np.int16)
    assert np.abs(a - b).mean() < 1.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_reader_pickles_as_path_and_reopens(clip, backend):
    path, _ = clip
    reader = open_video(path, backend)
    want = reader.get_frames([4])  # opens the handle
    clone = pickle.loads(pickle.dumps(reader))
    assert clone._handle is None  # never shipped open
    np.testing.assert_array_equal(clone.get_frames([4]), want)


# Runs in a fresh interpreter so that only the reader's state crosses the fork: the pytest
# process carries Ray, gRPC and torch threads from earlier tests. With PyAV 18.1.1 the child
# hung here on a colour converter whose thread pool the fork did not copy.
FORK_CHECK = """
import os, select, sys
from vjepa2.data.video import open_video
reader = open_video(sys.argv[1], sys.argv[2])
want = reader.get_frames([7]).tobytes()
rd, wr = os.pipe()
pid = os.fork()
if pid == 0:  # child: use the inherited reader, report, exit without cleanup
    try:
        os.write(wr, b"1" if reader.get_frames([7]).tobytes() == want else b"0")
    finally:
        os._exit(0)
os.close(wr)
ready, _, _ = select.select([rd], [], [], 20.0)
print(os.read(rd, 1).decode() if ready else "hung")
if not ready:
    os.kill(pid, 9)
os.waitpid(pid, 0)
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_reader_reopens_after_fork(clip, backend):
    path, _ = clip
    out = subprocess.run(
        [sys.executable, "-c", FORK_CHECK, path, backend],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1", f"child with an inherited reader: {out.stdout!r}"


def test_reader_reads_through_a_pyarrow_filesystem(clip):
    path, frames = clip
    fs = pafs.SubTreeFileSystem(os.path.dirname(path), pafs.LocalFileSystem())
    for backend in BACKENDS:
        got = open_video("square.mp4", backend, filesystem=fs).get_frames([0, T - 1])
        assert np.abs(got.astype(np.int16) - frames[[0, T - 1]]).mean() < 3.0


@pytest.fixture(scope="module")
def broken(tmp_path_factory, clip) -> dict[str, str]:
    root = tmp_path_factory.mktemp("broken")
    data = Path(clip[0]).read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (root / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    return {
        "missing": str(root / "missing.mp4"),
        "truncated": str(root / "truncated.mp4"),
        "garbage": str(root / "garbage.mp4"),
    }


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["missing", "truncated", "garbage"])
def test_bad_files_raise_naming_the_file(broken, backend, kind):
    path = broken[kind]
    reader = open_video(path, backend)  # lazy: nothing read yet
    with pytest.raises(VideoDecodeError) as info:
        reader.get_frames([reader.num_frames - 1])
    assert info.value.path == path and os.path.basename(path) in str(info.value)
    if kind == "missing":
        assert "not found" in str(info.value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_indices_raise(clip, backend):
    path, _ = clip
    reader = open_video(path, backend)
    for bad in ([T], [-1], [0.5]):
        with pytest.raises(VideoDecodeError, match="square.mp4"):
            reader.get_frames(bad)


def test_open_video_rejects_unknown_backend(clip):
    with pytest.raises(ValueError, match="backend"):
        open_video(clip[0], "opencv")  # type: ignore[arg-type]
    assert isinstance(open_video(clip[0], "decord"), DecordReader)
    assert isinstance(open_video(clip[0], "pyav"), PyAVReader)


def test_write_video_validates_and_is_atomic(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd.mp4", square_clip(h=47), FPS)
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "f.mp4", square_clip().astype(np.float32), FPS)
    assert list(tmp_path.iterdir()) == []
    path = tmp_path / "sub" / "clip.mp4"
    write_video(path, square_clip(), FPS)
    write_video(path, square_clip(t=5), FPS)  # overwrite in place
    assert open_video(path, "pyav").num_frames == 5
    assert [p.name for p in path.parent.iterdir()] == ["clip.mp4"]  # no temp files left
