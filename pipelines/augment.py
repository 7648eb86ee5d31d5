"""Clip augmentations on uint8 numpy frames, seeded per sample so every epoch is reproducible.

One draw per clip, applied to all of its frames: a crop or flip that changed from frame to
frame would add motion the video does not have. Output stays uint8 [T, H, W, 3]; normalising
to float is the trainer's job, on its device (``vjepa2.data.transforms``).

Phase-2 windows must not be flipped: a mirrored frame with an unmirrored action (move right)
teaches the wrong dynamics, so ``AugmentSpec.check_for_actions`` refuses ``hflip``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AugmentSpec:
    """Resize / random-resized-crop / horizontal flip. All off means frames pass unchanged."""

    size: int | tuple[int, int] | None = None  # output (H, W); None keeps the decoded size
    random_resized_crop: bool = False  # needs ``size``
    scale: tuple[float, float] = (0.3, 1.0)  # crop area as a fraction of the frame
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # crop width / height
    hflip: bool = False  # mirror with probability 1/2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.random_resized_crop and self.size is None:
            raise ValueError("random_resized_crop needs an output size")
        if not (0 < self.scale[0] <= self.scale[1] <= 1):
            raise ValueError(f"scale must satisfy 0 < lo <= hi <= 1, got {self.scale}")
        if not (0 < self.ratio[0] <= self.ratio[1]):
            raise ValueError(f"ratio must satisfy 0 < lo <= hi, got {self.ratio}")
        if self.out_size is not None and min(self.out_size) < 1:
            raise ValueError(f"size must be positive, got {self.size}")

    @property
    def out_size(self) -> tuple[int, int] | None:
        if self.size is None:
            return None
        return (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)

    @property
    def is_identity(self) -> bool:
        return self.size is None and not self.hflip

    def check_for_actions(self) -> None:
        """Raise if this augmentation would break the frame <-> action correspondence."""
        if self.hflip:
            raise ValueError(
                "hflip is not allowed for action-conditioned windows: a mirrored frame keeps "
                "its unmirrored action, which teaches the wrong dynamics"
            )


def augment_clip(
    frames: np.ndarray, spec: AugmentSpec, sample_id: int, out: np.ndarray | None = None
) -> np.ndarray:
    """Augment uint8 ``frames`` [T, H, W, 3]; the draw depends only on (spec.seed, sample_id).

    ``out``, if given, is filled in place (saves a copy when writing into a batch).
    """
    rng = np.random.default_rng([spec.seed, sample_id])
    _, h, w, _ = frames.shape
    y0, x0, ch, cw = 0, 0, h, w
    if spec.random_resized_crop:
        y0, x0, ch, cw = crop_box(h, w, spec.scale, spec.ratio, rng)
    flip = spec.hflip and bool(rng.random() < 0.5)
    clip = frames[:, y0 : y0 + ch, x0 : x0 + cw]
    size = spec.out_size
    if size is not None and (ch, cw) != size:
        clip = _resize(clip, size)
    if flip:
        clip = clip[:, :, ::-1]
    if out is None:
        return np.ascontiguousarray(clip)
    out[...] = clip
    return out


def crop_box(
    h: int,
    w: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[int, int, int, int]:
    """(y, x, height, width) of a random crop, as torchvision's RandomResizedCrop draws it."""
    area = h * w
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        cw = int(round(math.sqrt(target * aspect)))
        ch = int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            return int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1)), ch, cw
    # Fallback: the largest centred crop whose aspect lies within ``ratio``.
    aspect = w / h
    if aspect < ratio[0]:
        cw, ch = w, int(round(w / ratio[0]))
    elif aspect > ratio[1]:
        ch, cw = h, int(round(h * ratio[1]))
    else:
        ch, cw = h, w
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def _resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    # torch's uint8 bilinear kernel (channels-last, antialiased when shrinking) is close to
    # cv2's speed and needs no extra dependency. Imported here: a decode actor that never
    # resizes should not pay torch's import time and memory.
    import torch
    import torch.nn.functional as F

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)  # one core per actor: more threads only fight other actors
    frames = np.ascontiguousarray(frames)
    with warnings.catch_warnings():  # a read-only view of decord's buffer: torch only reads it
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        x = torch.from_numpy(frames).permute(0, 3, 1, 2)
    y = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return y.permute(0, 2, 3, 1).numpy()
