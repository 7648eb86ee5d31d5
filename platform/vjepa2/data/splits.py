"""Splitting a dataset's episodes into train/val/test, whole episodes at a time."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

from vjepa2.data.dataset_schema import EpisodeRecord


def split_episodes(
    episodes: Sequence[EpisodeRecord],
    fractions: Mapping[str, float] | None = None,
    *,
    seed: int = 0,
    use_split_column: bool = True,
) -> dict[str, list[EpisodeRecord]]:
    """Split whole episodes (never frames of one episode) into named splits.

    Episodes whose ``split`` is set keep it when ``use_split_column``; the rest are divided by
    ``fractions`` (e.g. ``{"train": 0.9, "val": 0.1}``, summing to 1). The division ranks
    episodes by a seeded hash of their id, so it is deterministic, independent of input order,
    and mostly stable when episodes are added; counts follow the fractions exactly (largest
    remainder), with at least one episode per non-zero fraction when there are enough.
    Within a split, episodes keep their input order.
    """
    assigned: dict[int, str] = {}
    rest: list[int] = []
    for i, ep in enumerate(episodes):
        if use_split_column and ep.split is not None:
            assigned[i] = ep.split
        else:
            rest.append(i)
    names: list[str] = []
    if rest:
        if not fractions:
            raise ValueError(f"{len(rest)} episodes have no split column value; pass fractions")
        names = list(fractions)
        counts = _split_counts([float(fractions[n]) for n in names], len(rest))
        ranked = sorted(rest, key=lambda i: _rank_key(seed, episodes[i].episode_id))
        start = 0
        for name, n in zip(names, counts, strict=True):
            for i in ranked[start : start + n]:
                assigned[i] = name
            start += n
    out: dict[str, list[EpisodeRecord]] = {name: [] for name in names}
    for i, ep in enumerate(episodes):
        out.setdefault(assigned[i], []).append(ep)
    return out


def _split_counts(fractions: Sequence[float], n: int) -> list[int]:
    f = np.asarray(fractions, np.float64)
    if (f < 0).any() or not np.isclose(f.sum(), 1.0):
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {list(fractions)}")
    raw = f * n
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    # A tiny dataset still gets a non-empty val/test split when it can afford one.
    if n >= int((f > 0).sum()):
        for i in np.flatnonzero((f > 0) & (counts == 0)):
            counts[int(np.argmax(counts))] -= 1
            counts[i] = 1
    return counts.tolist()


def _rank_key(seed: int, episode_id: str) -> bytes:
    return hashlib.blake2b(f"{seed}:{episode_id}".encode(), digest_size=16).digest()
