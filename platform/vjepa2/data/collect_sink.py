"""The driver side of collection: one writer that resumes, stores arriving episodes, sums up.

Workers (local loop or Ray tasks) produce ``EncodedEpisode``s with ``vjepa2.data.collect``;
exactly one ``EpisodeSink`` writes them, so the dataset folder has a single writer.
"""

from __future__ import annotations

import json
import posixpath
import time
from dataclasses import asdict, dataclass
from typing import Any

from vjepa2.config.base import ConfigError
from vjepa2.data.collect import (
    CONFIG_FILE,
    CONTENT_FIELDS,
    CollectConfig,
    EncodedEpisode,
    check_env,
    encode_episode,
    episode_id,
)
from vjepa2.data.dataset_schema import INDEX_FILE
from vjepa2.data.dataset_writer import DatasetWriter


@dataclass
class CollectSummary:
    episodes: int  # in the dataset now
    new_episodes: int  # written by this run
    resumed_from: int  # already there when this run started
    new_frames: int
    bytes_on_disk: int  # videos + index of the whole dataset
    seconds: float

    @property
    def episodes_per_s(self) -> float:
        return self.new_episodes / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (
            f"{self.episodes} episodes ({self.new_episodes} new, {self.resumed_from} resumed), "
            f"{self.new_frames} new frames, {self.bytes_on_disk / 1e6:.2f} MB on disk, "
            f"{self.seconds:.1f} s, {self.episodes_per_s:.2f} episodes/s"
        )


class EpisodeSink:
    """Opens (or resumes) the dataset, lists the missing episodes, stores arriving ones.

    Use as a context manager: on exit, even after an error or Ctrl-C, every stored episode is
    flushed to ``episodes.parquet``; after a clean run the index is sorted by episode id, so it
    does not depend on the order episodes arrived in.
    """

    def __init__(self, cfg: CollectConfig, *, progress: bool = True) -> None:
        from tqdm import tqdm

        check_env(cfg)
        self.cfg = cfg
        self.writer = DatasetWriter(cfg.out, crf=cfg.crf, flush_every=cfg.flush_every)
        self._check_or_record_config()
        self.missing = [
            i for i in range(cfg.episodes) if not self.writer.has_episode(episode_id(i))
        ]
        self.resumed_from = cfg.episodes - len(self.missing)
        self.new_frames = 0
        self.summary: CollectSummary | None = None
        self._start = time.perf_counter()
        self._bar = tqdm(
            total=cfg.episodes,
            initial=self.resumed_from,
            desc=f"collect {cfg.env}",
            unit="ep",
            disable=not progress,
        )

    def put(self, ep: EncodedEpisode) -> None:
        self.writer.add_encoded_episode(
            ep.episode_id,
            ep.video,
            (ep.num_frames, ep.height, ep.width),
            self.cfg.fps,
            actions=ep.actions,
            states=ep.states,
            split=ep.split,
        )
        self.new_frames += ep.num_frames
        self._bar.update(1)

    def __enter__(self) -> EpisodeSink:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._bar.close()
        if exc_type is None:
            # Id order, so the index does not depend on the order episodes arrived in.
            self.writer.sort_episodes()
        self.writer.flush()
        if exc_type is None:
            self.summary = self._summarize()

    def _summarize(self) -> CollectSummary:
        fs, base = self.writer.fs, self.writer.base
        paths = [posixpath.join(base, INDEX_FILE)]
        paths += [posixpath.join(base, e.video_path) for e in self.writer.episodes]
        size = sum(max(info.size or 0, 0) for info in fs.get_file_info(paths))
        return CollectSummary(
            episodes=len(self.writer.episodes),
            new_episodes=len(self.writer.episodes) - self.resumed_from,
            resumed_from=self.resumed_from,
            new_frames=self.new_frames,
            bytes_on_disk=size,
            seconds=time.perf_counter() - self._start,
        )

    def _check_or_record_config(self) -> None:
        fs, path = self.writer.fs, posixpath.join(self.writer.base, CONFIG_FILE)
        content = {k: v for k, v in asdict(self.cfg).items() if k in CONTENT_FIELDS}
        if fs.get_file_info(path).is_file:
            with fs.open_input_stream(path) as f:
                stored = json.loads(f.read().decode())
            diff = sorted(k for k in CONTENT_FIELDS if stored.get(k) != _jsonable(content[k]))
            if diff:
                pairs = ", ".join(f"{k}: {stored.get(k)!r} -> {content[k]!r}" for k in diff)
                raise ConfigError(
                    f"collect: {self.cfg.out} was collected with other settings ({pairs}); "
                    "resume with the same ones or use another --out"
                )
            return
        if self.writer.episodes:
            raise ConfigError(
                f"collect: {self.cfg.out} holds episodes but no {CONFIG_FILE}: not made by "
                "collect, so resuming into it could mix settings; use another --out"
            )
        with fs.open_output_stream(path) as f:
            f.write(json.dumps(content, indent=2, sort_keys=True).encode())


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def collect_local(cfg: CollectConfig, progress: bool = True) -> CollectSummary:
    """Collect the missing episodes one after another in this process (no Ray)."""
    with EpisodeSink(cfg, progress=progress) as sink:
        for index in sink.missing:
            sink.put(encode_episode(cfg, index))
    assert sink.summary is not None
    return sink.summary
