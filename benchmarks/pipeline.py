"""Phase-1 clip throughput: the Ray Data pipeline vs a bare decord loop, same clips, same cores.

    .venv/bin/python benchmarks/pipeline.py --cores 2 --repeats 5 --out runs/bench_pipeline.json

Writes ``--videos`` synthetic 224x224 H.264 videos (moving shapes over a panning texture, so
the decoder has real motion to work through), builds one clip index of ``--passes`` epochs,
then alternates:

* bare: ``--cores`` processes, each running a plain ``decord.VideoReader`` / ``get_batch`` loop
  over a contiguous share of the clips (reopening only when the video changes);
* ray: the Phase-1 stream (``pipelines.clips.build_stream``) with ``--cores`` decode actors,
  consumed by the driver through ``iter_clip_batches`` as torch uint8 batches of
  ``--train-batch`` (what a trainer sees).

``--sampling sequential``: every clip of every video, a video's clips in order (decoding runs
through each file). ``random``: ``--clips-per-video`` clips at random starts per video and
epoch, in random order (every clip opens its file and seeks from a keyframe), as a V-JEPA
style sampler does.

Both visit the same clips. Reported, median over ``--repeats``: clips/s over the whole pass
(``e2e``, for Ray including the pipeline build and actor start-up) and ``steady`` (Ray: from
25% to 90% of the clips; the bare pool is started before its clock), plus CPU
milliseconds per clip of all processes involved (``/proc``; the machine may be shared, which
moves wall-clock rates but much less CPU time). The ratio is ray / bare.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.augment import AugmentSpec, augment_clip  # noqa: E402
from vjepa2.data.clips import ClipSpec, SampleIndex, clip_index, concat_indices  # noqa: E402
from vjepa2.data.synthetic import moving_shapes  # noqa: E402
from vjepa2.data.video import write_video  # noqa: E402


def textured_video(seed: int, num_frames: int, size: int) -> np.ndarray:
    """Moving shapes over a noisy texture that pans a couple of pixels per frame."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, (size // 4, size // 4, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(cells, 8, axis=0), 8, axis=1)  # 2x the frame, 8-px cells
    texture = texture + rng.integers(0, 24, texture.shape, dtype=np.uint8)  # grain
    vy, vx = rng.uniform(-1.5, 1.5, 2)
    fg = moving_shapes(1, num_frames, size, num_shapes=3, seed=seed).frames[0]
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    span = texture.shape[0] - size
    for t in range(num_frames):
        y = int(abs((span // 2 + vy * t) % (2 * span) - span))  # bounce within the texture
        x = int(abs((span // 2 + vx * t) % (2 * span) - span))
        frames[t] = texture[y : y + size, x : x + size]
    mask = (fg != 16).any(-1, keepdims=True)
    return np.where(mask, fg, frames)


def write_videos(folder: Path, n: int, num_frames: int, size: int, fps: int = 30) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"video_{i:04d}.mp4"
        if not path.exists():
            write_video(path, textured_video(i, num_frames, size), fps, crf=23)
        paths.append(str(path))
    return paths


# --- CPU accounting ---------------------------------------------------------------------------


def process_tree_cpu(root: int, exclude: set[int] = frozenset()) -> float:
    """CPU seconds used by ``root`` and all its descendants (Linux ``/proc``), finished ones too.

    The machine is shared, so wall-clock rates move with other people's load; CPU seconds per
    clip do not, and compare the two paths' total work (Ray's driver, raylet and actors
    included). A finished process's time is in its parent's ``cutime``/``cstime`` once reaped.
    """
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        stats[pid] = fields
        children.setdefault(int(fields[1]), []).append(pid)
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        if pid in stats and pid not in exclude:
            # utime, stime, cutime, cstime: fields 14-17 of stat, 12-15 after "pid (comm)".
            total += sum(int(x) for x in stats[pid][11:15])
    return total / os.sysconf("SC_CLK_TCK")


# --- bare loop -------------------------------------------------------------------------------


def _bare_worker(args: tuple[list[str], np.ndarray, np.ndarray, int, int, AugmentSpec | None]):
    import decord

    paths, videos, starts, num_frames, stride, augment = args
    if augment is not None:
        import torch

        torch.set_num_threads(1)
    offsets = stride * np.arange(num_frames)
    current, vr, n = -1, None, 0
    for sample, (v, s) in enumerate(zip(videos.tolist(), starts.tolist(), strict=True)):
        if v != current:
            vr, current = decord.VideoReader(paths[v], ctx=decord.cpu(0), num_threads=1), v
        clip = vr.get_batch((s + offsets).tolist()).asnumpy()
        if augment is not None:
            clip = augment_clip(clip, augment, sample)
        n += clip.shape[0] > 0
    return n


def run_bare(pool, index: SampleIndex, cores: int, augment: AugmentSpec | None) -> dict:
    shares = np.array_split(np.arange(len(index)), cores)
    jobs = [
        (index.paths, index.video[s], index.start[s], index.num_frames, index.stride, augment)
        for s in shares
    ]
    workers = {p.pid for p in pool._pool}
    cpu0 = sum(process_tree_cpu(pid) for pid in workers)
    t0 = time.perf_counter()
    n = sum(pool.map(_bare_worker, jobs))
    dt = time.perf_counter() - t0
    cpu = sum(process_tree_cpu(pid) for pid in workers) - cpu0
    return {"clips": n, "e2e": n / dt, "steady": n / dt, "cpu_ms_per_clip": 1e3 * cpu / n}


# --- ray pipeline ----------------------------------------------------------------------------


def run_ray(
    index: SampleIndex,
    source,
    augment: AugmentSpec,
    decode,
    train_batch: int | None,
    exclude: set[int],
) -> dict:
    """One pass of the Ray pipeline over ``index``, consumed as torch batches by the driver."""
    from pipelines.clips import build_stream

    cpu0 = process_tree_cpu(os.getpid(), exclude)
    t0 = time.perf_counter()
    pipe = build_stream(index, source, augment, decode, "raise", epoch=0)
    # The steady window runs from 25% to 90% of the clips: past start-up and the initial fill
    # of the prefetch buffer, and while every actor is still alive (a finished actor's CPU
    # time only reappears in its parent once reaped).
    marks: list[tuple[int, float, float]] = []  # (clips, time, cpu) at 25% and 90%
    n = 0
    for batch in pipe.iter_batches(train_batch):
        n += batch["frames"].shape[0]
        if len(marks) < 2 and n >= (0.25, 0.9)[len(marks)] * len(index):
            marks.append((n, time.perf_counter(), process_tree_cpu(os.getpid(), exclude)))
    t1 = time.perf_counter()
    cpu = process_tree_cpu(os.getpid(), exclude) - cpu0
    assert n == len(index), (n, len(index))
    (n_a, t_a, c_a), (n_b, t_b, c_b) = marks
    return {
        "clips": n,
        "e2e": n / (t1 - t0),
        "steady": (n_b - n_a) / (t_b - t_a),
        "cpu_ms_per_clip": 1e3 * cpu / n,
        "steady_cpu_ms_per_clip": 1e3 * (c_b - c_a) / (n_b - n_a),
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--videos", type=int, default=64)
    p.add_argument("--frames", type=int, default=600, help="frames per video")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--clip-frames", type=int, default=16)
    p.add_argument("--stride", type=int, default=2)
    p.add_argument("--sampling", choices=("sequential", "random"), default="sequential")
    p.add_argument("--clips-per-video", type=int, default=None, help="default: all / 4")
    p.add_argument("--passes", type=int, default=3, help="epochs over the clips per run")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32, help="most samples per decode call")
    p.add_argument(
        "--train-batch", type=int, default=32, help="consumer batch size; 0: decode blocks as-is"
    )
    p.add_argument("--max-open-readers", type=int, default=1)
    p.add_argument("--augment", action="store_true", help="random-resized-crop + flip")
    p.add_argument("--data-dir", default=None, help="reuse videos here (default: temp dir)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    if args.sampling == "random" and args.clips_per_video is None:
        args.clips_per_video = 4

    import ray

    from pipelines.clips import DecodeConfig
    from pipelines.manifest import SourceSpec, load_source

    tmp = None
    if args.data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_pipeline_")
        folder = Path(tmp.name)
    else:
        folder = Path(args.data_dir)
    t0 = time.perf_counter()
    paths = write_videos(folder, args.videos, args.frames, args.size)
    print(f"{len(paths)} videos in {folder} ({time.perf_counter() - t0:.1f}s to write)")

    sequential = args.sampling == "sequential"
    spec = ClipSpec(
        num_frames=args.clip_frames,
        stride=args.stride,
        step=None if sequential else 1,
        max_clips_per_video=args.clips_per_video,
        order="videos" if sequential else "samples",
    )
    augment = (
        AugmentSpec(size=args.size, random_resized_crop=True, hflip=True)
        if args.augment
        else AugmentSpec()
    )
    decode = DecodeConfig(
        num_actors=args.cores,
        batch_size=args.batch_size,
        max_open_readers=args.max_open_readers,
    )
    # Over-subscribed logical CPUs: the driver and Ray's own processes need room beside the
    # decode actors, whose number (``--cores``) is what bounds the decoding.
    ray.init(
        num_cpus=2 * args.cores + 1,
        object_store_memory=1024**3,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    source = load_source(SourceSpec(str(folder)))
    videos = [
        (pth, int(e.num_frames)) for pth, e in zip(source.paths, source.episodes, strict=True)
    ]
    # Several epochs (new random clips each for ``random``): long enough that start-up is
    # amortised as in a real epoch, without writing hours of video.
    epochs = [clip_index(videos, spec, epoch=0 if sequential else e) for e in range(args.passes)]
    one, index = epochs[0], concat_indices(epochs)
    print(
        f"{len(index)} clips ({args.passes} x {len(one)}, {args.sampling}) of "
        f"{spec.num_frames} frames (stride {spec.stride}), {args.cores} cores"
    )

    results: dict[str, list[dict]] = {"bare": [], "ray": []}
    bare_augment = augment if args.augment else None
    with mp.get_context("spawn").Pool(args.cores) as pool:
        pool_pids = {p.pid for p in pool._pool}
        run_bare(pool, one, args.cores, bare_augment)  # warm-up: page cache, imports
        for r in range(args.repeats):
            results["bare"].append(run_bare(pool, index, args.cores, bare_augment))
            results["ray"].append(
                run_ray(index, source, augment, decode, args.train_batch or None, pool_pids)
            )
            b, y = results["bare"][-1], results["ray"][-1]
            print(
                f"repeat {r}: bare {b['e2e']:.1f} clips/s {b['cpu_ms_per_clip']:.2f} cpu-ms/clip"
                f" | ray {y['e2e']:.1f} e2e, {y['steady']:.1f} steady clips/s,"
                f" {y['cpu_ms_per_clip']:.2f} / {y['steady_cpu_ms_per_clip']:.2f} cpu-ms/clip"
                f" (load {os.getloadavg()[0]:.1f})"
            )
    ray.shutdown()

    med = {
        name: {k: statistics.median(run[k] for run in runs) for k in runs[0] if k != "clips"}
        for name, runs in results.items()
    }
    ratio = {k: med["ray"][k] / med["bare"][k] for k in ("e2e", "steady")}
    print()
    print(f"median of {args.repeats} runs of {len(index)} clips, {args.cores} cores")
    print(f"{'':6}{'e2e clips/s':>13}{'steady clips/s':>16}{'cpu-ms/clip':>13}{'steady':>8}")
    for name in ("bare", "ray"):
        m = med[name]
        print(
            f"{name:6}{m['e2e']:>13.1f}{m['steady']:>16.1f}{m['cpu_ms_per_clip']:>13.2f}"
            f"{m.get('steady_cpu_ms_per_clip', m['cpu_ms_per_clip']):>8.2f}"
        )
    print(f"{'ratio':6}{ratio['e2e']:>13.2f}{ratio['steady']:>16.2f}")
    out = {
        "args": vars(args),
        "clips": len(index),
        "cpu_count": os.cpu_count(),
        "runs": results,
        "median": med,
        "ratio": ratio,
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2))
    if tmp is not None:
        tmp.cleanup()
    return out


if __name__ == "__main__":
    main()
