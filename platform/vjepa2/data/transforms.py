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


def gaussian_blur(images: Tensor, sigma_px: float) -> Tensor:
    """Separable Gaussian blur of float images [B, C, H, W], edges replicated.

    Blurring commutes with the per-channel normalisation, so normalised frames can be
    blurred directly. ``sigma_px`` <= 0 returns the images unchanged.
    """
    if sigma_px <= 0:
        return images
    if images.dim() != 4:
        raise ValueError(f"expected images [B, C, H, W], got {tuple(images.shape)}")
    c, r = images.shape[1], max(1, int(3 * sigma_px))
    k = torch.arange(-r, r + 1, dtype=images.dtype, device=images.device)
    k = torch.exp(-(k**2) / (2 * sigma_px**2))
    k = (k / k.sum()).view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    pad = torch.nn.functional.pad
    x = torch.nn.functional.conv2d(pad(images, (r, r, 0, 0), mode="replicate"), k, groups=c)
    return torch.nn.functional.conv2d(pad(x, (0, 0, r, r), mode="replicate"), k.mT, groups=c)


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
