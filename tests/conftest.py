from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Two cores: one intra-op thread per test process keeps timings stable and avoids
# oversubscription when Ray workers or subprocesses run beside the test.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny_pretrain(tmp_path):
    from vjepa2.config import apply_overrides, get_preset

    return apply_overrides(
        get_preset("pretrain", "tiny"),
        [f"train.out_dir={tmp_path}", "train.steps=20", "train.checkpoint_every=10"],
    )


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    """(Phase-1, Phase-2) RunResults of the tiny preset, 2 steps each: trained once, read by
    every test that needs a real checkpoint pair (and written to by none)."""
    from vjepa2.train.local import train_tiny_world_model

    return train_tiny_world_model(tmp_path_factory.mktemp("tiny_world_model"))


@pytest.fixture(scope="session")
def tiny_world_model(tiny_checkpoints):
    """The tiny dynamics checkpoint (final.pt, encoder inside)."""
    return tiny_checkpoints[1].checkpoint


@pytest.fixture(scope="session")
def tworoom_val_dataset(tmp_path_factory):
    """A TwoRoom dataset of 4 episodes x 20 steps, 2 of them held out (val); read-only."""
    from vjepa2.data.collect import CollectConfig
    from vjepa2.data.collect_sink import collect_local

    data = tmp_path_factory.mktemp("tworoom_val") / "data"
    collect_local(
        CollectConfig(
            out=str(data), env="tworoom", episodes=4, steps_per_episode=20, seed=1,
            val_fraction=0.5,
        ),
        progress=False,
    )  # fmt: skip
    return data


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    """The Ray Data pipeline tests' video-action dataset (``tests.pipeline_data``); read-only."""
    from tests.pipeline_data import write_dataset

    root = tmp_path_factory.mktemp("pipelines") / "ds"
    write_dataset(root)
    return root


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray instance for the whole test session, shut down at the end.

    Four logical CPUs on two cores: Ray Data needs CPUs of its own beside Train workers
    (with num_cpus=2 a 2-worker trainer plus a dataset hangs). Object store kept small.
    """
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        address="local",
        num_cpus=4,
        object_store_memory=300 * 1024 * 1024,
        include_dashboard=True,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
    )
    yield ray
    ray.shutdown()
