"""Where a dataset lives: local paths or pyarrow filesystem URIs, and reading files there."""

from __future__ import annotations

import os
import posixpath
import uuid
from collections.abc import Sequence

import pyarrow.fs as pafs

from vjepa2.data.video import Backend, VideoReader, open_video


def resolve_root(
    root: str | os.PathLike[str], filesystem: pafs.FileSystem | None = None
) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or a pyarrow filesystem URI.

    With an explicit ``filesystem``, ``root`` is taken as a path inside it.
    """
    text = os.fspath(root)
    if filesystem is not None:
        return filesystem, text.rstrip("/") or "/"
    if "://" in text:
        fs, path = pafs.FileSystem.from_uri(text)
        return fs, path.rstrip("/") or "/"
    return pafs.LocalFileSystem(), os.path.abspath(text)


def join_path(base: str, rel: str) -> str:
    """``rel`` inside ``base``, unless ``rel`` is already absolute."""
    return rel if rel.startswith("/") else posixpath.join(base, rel)


def is_local(fs: pafs.FileSystem) -> bool:
    return isinstance(fs, pafs.LocalFileSystem)


def open_video_on(fs: pafs.FileSystem, path: str, backend: Backend) -> VideoReader:
    """Open the video at ``path`` inside ``fs``."""
    # Local files go to the decoder by path (no copy into memory).
    return open_video(path, backend, filesystem=None if is_local(fs) else fs)


def files_exist(fs: pafs.FileSystem, paths: Sequence[str]) -> dict[str, bool]:
    """path -> whether it is a file, with one listing call for all of them."""
    infos = fs.get_file_info(list(paths)) if paths else []
    return {p: info.is_file for p, info in zip(paths, infos, strict=True)}


def write_bytes_atomic(fs: pafs.FileSystem, dest: str, data: bytes) -> None:
    """Write ``data`` to ``dest``; locally via a temp name + rename, so never half a file."""
    if is_local(fs):
        os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
        tmp = f"{dest}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return
    # Object stores publish a key only when its upload completes.
    with fs.open_output_stream(dest) as out:
        out.write(data)
