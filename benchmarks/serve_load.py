"""Load on the planning service over loopback: batched vs unbatched, and Serve's overhead.

    .venv/bin/python benchmarks/serve_load.py --out runs/bench/serve_load.json
    .venv/bin/python benchmarks/serve_load.py --checkpoint runs/demo/dynamics/final.pt \\
        --clients 16 --duration 60

``--clients`` threads each post ``/v1/plan`` requests back to back for ``--duration``
seconds, first against a deployment that merges concurrent requests (``@serve.batch`` up to
``--clients``), then against the same deployment with batches of one. Reported per mode:
requests/s, client-side p50/p99 latency and errors. Serve's overhead is measured on its own,
one client against batches of one: each response reports the seconds its replica spent on the
request's work (decode both images, encode, plan), so client latency minus that is what Serve
adds (HTTP proxy, routing, JSON); medians over ``--overhead-requests``. The same work timed in
this process, single-threaded like a one-CPU replica, is printed beside it as a check.

Without ``--checkpoint`` a tiny-preset world model is trained for 2 steps: throughput and
overhead depend on the model's size, not on how well it was trained.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # serve/ and jobs/ import from the repository root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_checkpoint(out: Path) -> Path:
    from vjepa2.train.local import train_tiny_world_model

    return Path(train_tiny_world_model(out)[1].checkpoint)


def request_body() -> dict:
    """A real TwoRoom start frame and the goal 25 steps later, as base64 PNG."""
    from serve.client import png
    from vjepa2.envs import make_env
    from vjepa2.planning import make_episode

    env = make_env("tworoom")
    episode = make_episode(env, 1_000_000, goal_offset=25)
    frame, _ = env.reset(options={"state": episode.start_state})
    return {"frame": png(frame), "goal": png(episode.goal_frame)}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def load(url: str, body: dict, clients: int, duration: float) -> dict:
    """``clients`` threads posting back to back until ``duration`` seconds have passed."""
    latencies: list[float] = []
    batch_sizes: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = time.perf_counter()
    stop = start + duration

    def client(n: int) -> None:
        session = requests.Session()
        seed = n * 100_000
        while time.perf_counter() < stop:
            seed += 1
            t0 = time.perf_counter()
            try:
                r = session.post(f"{url}/v1/plan", json={**body, "seed": seed}, timeout=120)
                ok = r.status_code == 200
                detail = "" if ok else f"{r.status_code} {r.text[:200]}"
            except requests.RequestException as exc:
                ok, detail = False, repr(exc)
            dt = time.perf_counter() - t0
            with lock:
                if ok:
                    latencies.append(dt)
                    batch_sizes.append(r.json()["batch_size"])
                else:
                    errors.append(detail)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": len(errors),
        "first_errors": errors[:3],
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
        "mean_batch": statistics.fmean(batch_sizes) if batch_sizes else 0.0,
    }


def deploy(args, checkpoint: Path, max_batch: int) -> None:
    from ray import serve

    from serve.app import build_app

    app = build_app(
        {
            "checkpoint": str(checkpoint),
            "num_candidates": args.num_candidates,
            "horizon": args.horizon,
            "iterations": args.iterations,
            "max_batch_size": max_batch,
            "batch_wait_timeout_s": args.batch_wait_ms / 1e3,
        }
    )
    # Access logs off: a log line per request is not what is being measured.
    serve.run(app, name="planner", route_prefix="/", logging_config={"enable_access_log": False})


def in_process_ms(args, checkpoint: Path, body: dict) -> float:
    """The request's work without Serve: decode both images, encode, plan (median, ms)."""
    import torch

    from serve.app import decode_image
    from vjepa2.data.transforms import normalize_frames
    from vjepa2.planning import CEMConfig, CEMPlanner
    from vjepa2.train.builders import load_world_model

    torch.set_num_threads(1)  # as in a one-CPU replica (Ray sets OMP_NUM_THREADS=1)
    model, cfg = load_world_model(checkpoint)
    model.eval()
    size = cfg.encoder.img_size
    times = []
    for n in range(args.overhead_requests + 1):
        t0 = time.perf_counter()
        with torch.no_grad():
            frame = torch.from_numpy(decode_image(body["frame"], size, "frame").copy())[None]
            goal = torch.from_numpy(decode_image(body["goal"], size, "goal").copy())[None]
            state = model.encode(normalize_frames(frame))
            target = model.encode(normalize_frames(goal))
            plan_cfg = CEMConfig(
                num_candidates=args.num_candidates,
                horizon=args.horizon,
                iterations=args.iterations,
                seed=n,
            )
            gen = torch.Generator().manual_seed(n)
            CEMPlanner(model.step, cfg.dynamics.action_dim, plan_cfg).plan(
                state, target, generator=gen
            )
        if n:  # the first call warms up
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def healthz_ms(url: str, n: int) -> float:
    """Median round trip of a request with no body and no work: Serve's floor."""
    session = requests.Session()
    times = []
    for _ in range(n + 1):
        t0 = time.perf_counter()
        session.get(f"{url}/healthz", timeout=30).raise_for_status()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]) * 1e3


def serve_one_client_ms(url: str, body: dict, n: int) -> tuple[float, float]:
    """(median client latency, median of client latency minus the replica's own seconds)."""
    session = requests.Session()
    latency, overhead = [], []
    for seed in range(n + 1):
        t0 = time.perf_counter()
        r = session.post(f"{url}/v1/plan", json={**body, "seed": seed}, timeout=120)
        r.raise_for_status()
        dt = time.perf_counter() - t0
        if seed:  # the first request warms the connection
            latency.append(dt)
            overhead.append(dt - r.json()["seconds"])
    return statistics.median(latency) * 1e3, statistics.median(overhead) * 1e3


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="a dynamics final.pt (default: a tiny one, 2 steps)")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--duration", type=float, default=60.0, help="seconds per mode")
    p.add_argument("--num-candidates", type=int, default=300)
    p.add_argument("--horizon", type=int, default=5)
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--batch-wait-ms", type=float, default=10.0)
    p.add_argument("--overhead-requests", type=int, default=30)
    p.add_argument("--num-cpus", type=int, default=4, help="logical CPUs of the embedded Ray")
    p.add_argument("--out", default="runs/bench/serve_load.json")
    args = p.parse_args(argv)
    if args.clients < 1 or args.duration <= 0:
        raise SystemExit("--clients must be >= 1 and --duration > 0")

    import ray
    from ray import serve

    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        checkpoint = Path(args.checkpoint) if args.checkpoint else tiny_checkpoint(Path(tmp))
        if not checkpoint.is_file():
            raise SystemExit(f"checkpoint not found: {checkpoint}")
        body = request_body()
        ray.init(
            address="local",
            num_cpus=args.num_cpus,
            object_store_memory=256 * 2**20,
            include_dashboard=False,
            runtime_env={"env_vars": {"PYTHONPATH": f"{ROOT}:{ROOT / 'platform'}"}},
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        try:
            serve.start(http_options={"host": "127.0.0.1", "port": port})
            modes = {}
            for mode, max_batch in (("batched", args.clients), ("unbatched", 1)):
                deploy(args, checkpoint, max_batch)
                print(f"{mode}: {args.clients} clients x {args.duration:.0f} s ...", flush=True)
                modes[mode] = load(url, body, args.clients, args.duration)
            # Still the unbatched deployment: no batch wait in the way of one client.
            serve_ms, overhead_ms = serve_one_client_ms(url, body, args.overhead_requests)
            floor_ms = healthz_ms(url, args.overhead_requests)
        finally:
            serve.shutdown()
            ray.shutdown()
        local_ms = in_process_ms(args, checkpoint, body)

    result = {
        "config": vars(args),
        "modes": modes,
        "batching_speedup": modes["batched"]["rps"] / max(modes["unbatched"]["rps"], 1e-9),
        "one_client_serve_ms": serve_ms,
        "overhead_ms": overhead_ms,
        "healthz_ms": floor_ms,
        "in_process_ms": local_ms,
    }
    print_table(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return result


def print_table(result: dict) -> None:
    c = result["config"]
    print(
        f"\nplan K={c['num_candidates']} H={c['horizon']} I={c['iterations']}, "
        f"{c['clients']} clients x {c['duration']:.0f} s per mode"
    )
    print("| mode | requests/s | p50 ms | p99 ms | mean batch | requests | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for mode, m in result["modes"].items():
        print(
            f"| {mode} | {m['rps']:.2f} | {m['p50_ms']:.0f} | {m['p99_ms']:.0f} | "
            f"{m['mean_batch']:.1f} | {m['requests']} | {m['errors']} |"
        )
    print(
        f"batching speedup {result['batching_speedup']:.2f}x; one client through Serve "
        f"{result['one_client_serve_ms']:.1f} ms, of which Serve's overhead "
        f"{result['overhead_ms']:.1f} ms (GET /healthz {result['healthz_ms']:.1f} ms; in-process, "
        f"1 thread: {result['in_process_ms']:.1f} ms)"
    )


if __name__ == "__main__":
    main()
