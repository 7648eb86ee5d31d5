"""What the registered pyfunc models (``vjepa2.tracking.CheckpointModel``) accept, checked:
frames on the 0-255 scale and a dynamics model's flat proprioception param."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch


def as_uint8_frames(frames: np.ndarray) -> np.ndarray:
    """uint8 as is; integer or float pixel values on the 0-255 scale rounded to uint8."""
    if frames.dtype == np.uint8:
        return frames
    if frames.dtype.kind not in "iuf":
        raise TypeError(f"expected uint8 or float frames, got dtype {frames.dtype}")
    if frames.size and (not np.isfinite(frames).all() or frames.min() < 0 or frames.max() > 255):
        raise ValueError("expected pixel values in [0, 255] (the uint8 scale)")
    if frames.dtype.kind == "f" and frames.size and 0 < frames.max() <= 1.0:
        warnings.warn(
            "float frames all lie in [0, 1]; CheckpointModel expects the 0-255 pixel scale",
            stacklevel=3,
        )
    return np.rint(frames).astype(np.uint8)


def flat_proprio(values: Any, count: int, dims: tuple[int, ...]) -> torch.Tensor | None:
    """The flat ``proprio`` param (B x d_p readings, frame by frame) -> [count, d_p] float32,
    or None where none was given (the world model then says whether it needs one). ``dims``:
    the model's ``proprio_dims``, empty for a model without proprioception."""
    flat = np.asarray([] if values is None else values, dtype=np.float64).ravel()
    if flat.size == 0:
        return None
    if not dims:
        raise ValueError("this model takes no proprioception: pass frames alone")
    if flat.size != count * len(dims) or not np.isfinite(flat).all():
        raise ValueError(
            f"proprio must be {count} frames x {len(dims)} finite readings (true-state "
            f"entries {list(dims)}), flat; got {flat.size} values"
        )
    return torch.from_numpy(flat.reshape(count, len(dims))).float()
