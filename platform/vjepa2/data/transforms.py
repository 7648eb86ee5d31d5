"""Turning uint8 clips into model inputs, on whatever device the trainer uses."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_video(frames: Tensor) -> Tensor:
    """uint8 [..., T, H, W, C] clips -> float [..., C, T, H, W], ImageNet-normalised.

    Runs on the frames' device: ship uint8 over the wire (4x smaller), normalise on the GPU.
    """
    if frames.dtype != torch.uint8:
        raise TypeError(f"expected uint8 frames, got {frames.dtype}")
    if frames.dim() < 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected [..., T, H, W, 3] frames, got {tuple(frames.shape)}")
    mean = torch.tensor(IMAGENET_MEAN, device=frames.device).view(3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=frames.device).view(3, 1, 1, 1)
    x = frames.movedim(-1, -4).float().div_(255.0)
    return (x - mean) / std


def normalize_frames(frames: Tensor) -> Tensor:
    """uint8 [..., H, W, C] images -> float [..., C, H, W], ImageNet-normalised."""
    return normalize_video(frames.unsqueeze(-4)).squeeze(-3)


def resize_square(frame: np.ndarray, size: int) -> np.ndarray:
    """An env's frame at its own size -> uint8 [size, size, 3] (bilinear; unchanged if it fits).

    The result is always writable, so ``torch.from_numpy`` can wrap it (PIL's buffers and
    some envs' renders are read-only).
    """
    frame = np.asarray(frame, np.uint8)
    if frame.shape[:2] == (size, size):
        return frame if frame.flags.writeable else frame.copy()
    from PIL import Image

    return np.array(Image.fromarray(frame).resize((size, size), Image.Resampling.BILINEAR))
