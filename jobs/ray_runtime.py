"""Connect to Ray the same way from a laptop, a test and ``ray job submit``.

Inside a submitted job (or with ``RAY_ADDRESS`` set) ``ray.init()`` joins that cluster. With
no cluster around, an embedded one starts with logical CPUs over-subscribed: on two cores a
Train worker per core would leave Ray Data's decoders no CPU to run on, and the job hangs.
"""

from __future__ import annotations

import os
from pathlib import Path

import ray

ROOT = Path(__file__).resolve().parents[1]


def ensure_ray(*, object_store_mb: int = 512) -> None:
    """Join the cluster in ``RAY_ADDRESS`` (or the job's), else start an embedded one."""
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=True)
        return
    ray.init(
        address="local",
        num_cpus=max(4, 2 * (os.cpu_count() or 1)),
        object_store_memory=object_store_mb * 2**20,
        include_dashboard=True,  # Train V2 needs it to release finished trials' resources
        log_to_driver=True,
        # Workers import jobs/ and pipelines/ from the repository root.
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
    )


def compute_cpus() -> int:
    """How many CPU-bound tasks to keep running at once: the cluster's CPUs, or this
    machine's cores in the embedded instance, whose logical CPUs are over-subscribed (twice
    as many tasks as cores would halve each one's speed and double its timings)."""
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    if os.environ.get("RAY_ADDRESS"):
        return cpus
    return min(cpus, os.cpu_count() or 1)
