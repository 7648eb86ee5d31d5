"""Small datasets the Ray Data pipeline tests write and read, and a stream collector."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.clips import DecodeConfig, iter_clip_batches
from vjepa2.data.dataset import DatasetWriter
from vjepa2.data.synthetic import moving_shapes

T, SIZE, D_A, D_S, FPS = 12, 32, 2, 3, 5
ONE_ACTOR = DecodeConfig(num_actors=1, batch_size=4)


def write_dataset(
    root: Path, n: int = 4, seed: int = 0, *, with_states: bool = False, split: str | None = None
) -> None:
    data = moving_shapes(n, T, SIZE, seed=seed)
    with DatasetWriter(root) as writer:
        for i in range(n):
            states = known_states(i) if with_states else None
            writer.add_episode(
                f"ep{i}", data.frames[i], FPS, actions=data.actions[i], states=states, split=split
            )


def known_states(episode: int) -> np.ndarray:
    """float32 [T, D_S]: entry j of frame t of episode i is 100 i + t + j / 10, so a value
    names its episode, frame and entry."""
    t, j = np.meshgrid(np.arange(T), np.arange(D_S), indexing="ij")
    return (100 * episode + t + j / 10).astype(np.float32)


def collect(pipe, batch_size: int = 3) -> dict[str, dict[int, np.ndarray]]:
    got: dict[str, dict[int, np.ndarray]] = {}
    for batch in iter_clip_batches(pipe.dataset, batch_size):
        ids = batch["sample_id"].tolist()
        for name, value in batch.items():
            assert value.device.type == "cpu"
            got.setdefault(name, {}).update(zip(ids, value.numpy(), strict=True))
    return got
