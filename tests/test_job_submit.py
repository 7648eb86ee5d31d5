"""`ray job submit` of a training job to a local head, exactly as a user would on a cluster.

The head runs on loopback with ports of its own (beside the test session's embedded Ray) and
is stopped by ending its own process group, not ``ray stop``, which would also stop the
session's cluster.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture
def local_head(tmp_path):
    gcs, dash, agent, grpc, metrics, client, runtime_env = free_ports(7)
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("RAY_ADDRESS", None)
    # Ray's socket paths must fit AF_UNIX's 107 bytes: pytest's tmp_path is too deep.
    temp_dir = tempfile.mkdtemp(prefix="rayhead-", dir="/tmp")
    cmd = [
        str(BIN / "ray"),
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--port={gcs}",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dash}",
        f"--dashboard-agent-listen-port={agent}",
        f"--dashboard-agent-grpc-port={grpc}",
        f"--metrics-export-port={metrics}",
        f"--ray-client-server-port={client}",
        f"--runtime-env-agent-port={runtime_env}",
        "--num-cpus=4",
        f"--object-store-memory={300 * 2**20}",
        f"--temp-dir={temp_dir}",
    ]
    log = open(tmp_path / "head.log", "w")  # noqa: SIM115 - closed after the head stops
    head = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    address = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.time() + 90
        while True:
            probe = subprocess.run(
                [str(BIN / "ray"), "job", "list", "--address", address],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            if probe.returncode == 0:
                break
            if head.poll() is not None or time.time() > deadline:
                raise RuntimeError(
                    "the head did not come up:\n" + (tmp_path / "head.log").read_text()
                )
            time.sleep(2)
        yield address, env
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_pretraining_submitted_as_a_ray_job(local_head, tmp_path):
    address, env = local_head
    out = tmp_path / "run"
    done = subprocess.run(
        [
            str(BIN / "ray"),
            "job",
            "submit",
            "--address",
            address,
            "--working-dir",
            str(ROOT),
            "--",
            "python",
            "-m",
            "jobs.pretrain",
            "--quiet",
            f"--set=train.out_dir={out}",
            "--set=train.steps=4",
            "--set=train.checkpoint_every=2",
            "--set=train.batch_size=4",
            "--set=data.synthetic.num_videos=8",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    logs = done.stdout + done.stderr
    assert done.returncode == 0, logs
    assert "succeeded" in logs and "pretrain: final loss" in logs, logs
    assert (out / "pretrain" / "final.pt").is_file()
    assert (out / "mlflow.db").is_file()
