"""`ray job submit` of a training job to a local head, exactly as a user would on a cluster.

The head runs on loopback with ports of its own (beside the test session's embedded Ray) and
is stopped by ending its own process group, not ``ray stop``, which would also stop the
session's cluster.
"""

from __future__ import annotations

import contextlib
import json
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


def ray_node(cmd: list[str], env: dict, log_path: Path) -> subprocess.Popen:
    """``ray start --block ...`` in a process group of its own, stopped by :func:`stop_node`."""
    log = open(log_path, "w")  # noqa: SIM115 - closed by stop_node
    proc = subprocess.Popen(
        [str(BIN / "ray"), "start", "--block", *cmd],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    proc.log = log  # type: ignore[attr-defined]
    return proc


def stop_node(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    proc.log.close()  # type: ignore[attr-defined]


def node_ports() -> list[str]:
    """Every port a node opens, chosen here so none meets the test session's own Ray."""
    metrics, agent, grpc, runtime_env, manager, objects = free_ports(6)
    return [
        f"--metrics-export-port={metrics}",
        f"--dashboard-agent-listen-port={agent}",
        f"--dashboard-agent-grpc-port={grpc}",
        f"--runtime-env-agent-port={runtime_env}",
        f"--node-manager-port={manager}",
        f"--object-manager-port={objects}",
    ]


def wait_for(check, what: str, procs: list[subprocess.Popen], logs: list[Path]) -> None:
    deadline = time.time() + 120
    while not check():
        if any(p.poll() is not None for p in procs) or time.time() > deadline:
            raise RuntimeError(f"{what}:\n" + "\n".join(log.read_text() for log in logs))
        time.sleep(2)


def start_head(tmp_path: Path, num_cpus: int):
    gcs, dash, client = free_ports(3)
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("RAY_ADDRESS", None)
    # Ray's socket paths must fit AF_UNIX's 107 bytes: pytest's tmp_path is too deep.
    temp_dir = tempfile.mkdtemp(prefix="rayhead-", dir="/tmp")
    head = ray_node(
        [
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={gcs}",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dash}",
            f"--ray-client-server-port={client}",
            *node_ports(),
            f"--num-cpus={num_cpus}",
            f"--object-store-memory={300 * 2**20}",
            f"--temp-dir={temp_dir}",
        ],
        env,
        tmp_path / "head.log",
    )
    address = f"http://127.0.0.1:{dash}"

    def up() -> bool:
        probe = subprocess.run(
            [str(BIN / "ray"), "job", "list", "--address", address],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return probe.returncode == 0

    try:
        wait_for(up, "the head did not come up", [head], [tmp_path / "head.log"])
    except BaseException:
        stop_node(head)
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    return head, address, f"127.0.0.1:{gcs}", env, temp_dir


@pytest.fixture
def local_head(tmp_path):
    head, address, _, env, temp_dir = start_head(tmp_path, num_cpus=4)
    try:
        yield address, env
    finally:
        stop_node(head)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def two_nodes(tmp_path):
    """A head and a second node on loopback, 2 CPUs each: the smallest real cluster."""
    head, address, gcs, env, temp_dir = start_head(tmp_path, num_cpus=2)
    # A temp dir of its own, as a second machine would have: sharing the head's, its runtime
    # env agent would unpack the job's working_dir over the one the driver is running in.
    second_temp = tempfile.mkdtemp(prefix="raynode-", dir="/tmp")
    second = ray_node(
        [
            f"--address={gcs}",
            "--node-ip-address=127.0.0.1",
            *node_ports(),
            "--num-cpus=2",
            f"--object-store-memory={200 * 2**20}",
            f"--temp-dir={second_temp}",
        ],
        env,
        tmp_path / "second.log",
    )
    try:

        def both_alive() -> bool:
            listed = subprocess.run(
                [str(BIN / "ray"), "list", "nodes", "--address", address, "--format=json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            try:  # before any node has registered it prints a message, not JSON
                nodes = json.loads(listed.stdout) if listed.returncode == 0 else []
            except json.JSONDecodeError:
                return False
            return sum(n["state"] == "ALIVE" for n in nodes) == 2

        logs = [tmp_path / "head.log", tmp_path / "second.log"]
        wait_for(both_alive, "the second node did not join", [head, second], logs)
        yield address, env
    finally:
        stop_node(second)
        stop_node(head)
        shutil.rmtree(temp_dir, ignore_errors=True)
        shutil.rmtree(second_temp, ignore_errors=True)


def submit(address: str, env: dict, *job: str) -> subprocess.CompletedProcess:
    """``ray job submit``, retried while the head's job agent has not registered yet: the
    dashboard answers ``ray job list`` first, and on a loaded machine the agent comes later."""
    deadline = time.time() + 120
    while True:
        done = subprocess.run(
            [str(BIN / "ray"), "job", "submit", "--address", address, "--working-dir", str(ROOT),
             "--", "python", "-m", *job],
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
        )  # fmt: skip
        if "No available agent to submit job" not in done.stdout + done.stderr or (
            time.time() > deadline
        ):
            return done
        time.sleep(5)


def tiny_pretraining(out: Path) -> list[str]:
    """The job's module and arguments: 4 steps on 8 synthetic videos."""
    return [
        "jobs.pretrain",
        "--quiet",
        f"--set=train.out_dir={out}",
        "--set=train.steps=4",
        "--set=train.checkpoint_every=2",
        "--set=train.batch_size=4",
        "--set=data.synthetic.num_videos=8",
    ]


def test_pretraining_submitted_as_a_ray_job(local_head, tmp_path):
    address, env = local_head
    out = tmp_path / "run"
    done = submit(
        address,
        env,
        *tiny_pretraining(out),
    )
    logs = done.stdout + done.stderr
    assert done.returncode == 0, logs
    assert "succeeded" in logs and "pretrain: final loss" in logs, logs
    assert (out / "pretrain" / "final.pt").is_file()
    assert (out / "mlflow.db").is_file()


def test_two_worker_pretraining_spans_both_nodes(two_nodes, tmp_path):
    address, env = two_nodes
    out = tmp_path / "run"
    # Each worker needs 2 CPUs and each node has 2: one rank per node, DDP across them.
    done = submit(
        address,
        env,
        *tiny_pretraining(out),
        "--set=cluster.num_workers=2",
        "--set=cluster.cpus_per_worker=2",
    )
    logs = done.stdout + done.stderr
    assert done.returncode == 0, logs
    assert "succeeded" in logs, logs
    ranks = [
        json.loads((out / "pretrain" / "workers" / f"rank{r}.json").read_text()) for r in (0, 1)
    ]
    assert ranks[0]["node_id"] != ranks[1]["node_id"]
    assert (out / "pretrain" / "final.pt").is_file()
    rows = [
        json.loads(line) for line in (out / "pretrain" / "metrics.jsonl").read_text().splitlines()
    ]
    assert rows[-1]["step"] == 3 and all(r["loss"] == r["loss"] for r in rows)
