"""Checkpoints: atomic writes, ``weights_only`` loads, the resolved config inside.

A checkpoint is one ``torch.save`` file holding plain containers only:
``{"format": 1, "kind": str, "config": dict, "state": {name: state_dict, ...},
"meta": {...}}``. ``kind`` names what it is ("pretrain", "dynamics"), so a Phase-1 file
handed to a Phase-2 loader fails loudly instead of half-loading.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt, of the wrong kind or for another model."""


def save_checkpoint(
    path: str | Path,
    *,
    kind: str,
    config: dict[str, Any],
    state: dict[str, Any],
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write atomically: a temp file in the same folder, fsync, then rename over ``path``.

    A crash mid-write leaves the previous checkpoint intact, never a truncated file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT_VERSION,
        "kind": kind,
        "config": config,
        "state": state,
        "meta": {"saved_at": time.time(), "torch": str(torch.__version__), **(meta or {})},
    }
    return _write_atomic(path, lambda f: torch.save(payload, f))


def copy_checkpoint(src: str | Path, dest: str | Path) -> Path:
    """``src`` copied to ``dest`` atomically (``final.pt`` from the last step's file): a
    reader of ``dest`` sees the old file or the whole new one."""
    src, dest = Path(src), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with src.open("rb") as f_in:
        return _write_atomic(dest, lambda f: shutil.copyfileobj(f_in, f))


def _write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(
    path: str | Path, *, kind: str | None = None, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load with ``weights_only=True`` (no arbitrary code from a file) and check its shape."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    # torch.save writes a zip archive; anything else (cut short, overwritten, empty) has no
    # readable central directory.
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated (not a readable archive)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise CheckpointError(f"checkpoint {path} is corrupt or truncated: {exc}") from exc
        raise CheckpointError(
            f"checkpoint {path} holds objects other than tensors and plain containers and was "
            "not loaded (weights_only=True refuses code from files)"
        ) from exc
    except Exception as exc:  # torch raises several types for truncated/garbled zips
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated and was not loaded "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} is not a vjepa2 checkpoint (format {FORMAT_VERSION} expected)"
        )
    for key in ("kind", "config", "state"):
        if key not in payload:
            raise CheckpointError(f"checkpoint {path} lacks {key!r}")
    if kind is not None and payload["kind"] != kind:
        raise CheckpointError(f"{path} is a {payload['kind']!r} checkpoint, expected {kind!r}")
    return payload


def load_state_strict(module: nn.Module, state: dict[str, Any], what: str = "model") -> None:
    """Load a state dict only if every key and shape matches, so nothing is half-loaded.

    ``nn.Module.load_state_dict`` copies the tensors that fit before it reports the ones that
    do not; checking first leaves the module untouched on a mismatch.
    """
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and hasattr(state[k], "shape") and state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if shapes:
            parts.append(f"shape mismatches {shapes[:5]}{' ...' if len(shapes) > 5 else ''}")
        raise CheckpointError(f"{what} does not match the checkpoint: " + "; ".join(parts))
    module.load_state_dict(state, strict=True)


def latest_checkpoint(folder: str | Path, pattern: str = "step_*.pt") -> Path | None:
    """The highest-step checkpoint in a folder (names ``step_<n>.pt``), or None."""
    folder = Path(folder)
    best: tuple[int, Path] | None = None
    for p in folder.glob(pattern):
        try:
            step = int(p.stem.split("_")[-1])
        except ValueError:
            continue
        if best is None or step > best[0]:
            best = (step, p)
    return best[1] if best else None
