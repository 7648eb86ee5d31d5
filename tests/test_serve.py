"""The planning service on loopback: plans, merges concurrent requests, refuses bad input."""

from __future__ import annotations

import base64
import io
import socket
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from vjepa2.envs import make_env
from vjepa2.planning import make_episode
from vjepa2.tracking import Tracker

pytestmark = pytest.mark.slow


def png(frame: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def service(ray_cluster, tiny_world_model, tmp_path_factory):
    from ray import serve

    from serve.app import build_app

    out = tmp_path_factory.mktemp("serve")
    # Served from the registry, as a user would after training: the model URI resolves
    # through the given tracking store only.
    uri = f"sqlite:///{out / 'mlflow.db'}"
    tracker = Tracker.start_or_resume(uri, "serve-test", run_key="dyn")
    version = tracker.register_checkpoint_model(tiny_world_model, "serve-dynamics", "dynamics")
    tracker.finish()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    app = build_app(
        {"checkpoint": f"models:/serve-dynamics/{version}", "tracking_uri": uri,
         "num_candidates": 32, "iterations": 2, "batch_wait_timeout_s": 0.2,
         "max_request_bytes": 200_000}
    )  # fmt: skip
    serve.run(app, name="planner", route_prefix="/")
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()


def episode_frames() -> tuple[np.ndarray, np.ndarray]:
    env = make_env("tworoom")
    ep = make_episode(env, 5, goal_offset=10)
    frame, _ = env.reset(options={"state": ep.start_state})
    return frame, ep.goal_frame


def test_plan_health_and_version(service):
    assert requests.get(f"{service}/healthz", timeout=30).json() == {"status": "ok"}
    info = requests.get(f"{service}/v1/version", timeout=30).json()
    assert info["img_size"] == 64 and info["action_dim"] == 2
    assert info["checkpoint"] == "models:/serve-dynamics/1"
    frame, goal = episode_frames()
    r = requests.post(
        f"{service}/v1/plan", json={"frame": png(frame), "goal": png(goal), "horizon": 4},
        timeout=60,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert np.array(body["actions"]).shape == (4, 2)
    assert np.abs(body["actions"]).max() <= 1.0 and body["cost"] >= 0
    # uint8 arrays are accepted too, and the same request plans the same actions
    r2 = requests.post(
        f"{service}/v1/plan",
        json={"frame": frame.tolist(), "goal": goal.tolist(), "horizon": 4},
        timeout=60,
    )
    assert r2.status_code == 200 and r2.json()["actions"] == body["actions"]


def test_concurrent_requests_share_a_batched_plan(service):
    frame, goal = episode_frames()
    payload = {"frame": png(frame), "goal": png(goal)}

    def call(seed: int) -> dict:
        r = requests.post(f"{service}/v1/plan", json={**payload, "seed": seed}, timeout=120)
        assert r.status_code == 200, r.text
        return r.json()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(8)))
    assert max(r["batch_size"] for r in results) > 1


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"frame": "bm90IGFuIGltYWdl"}, 400, "not a base64 PNG/JPEG"),
        ({"frame": np.zeros((32, 32, 3), np.uint8).tolist()}, 422, "expected 64x64"),
        ({"goal": np.zeros((64, 64), np.uint8).tolist()}, 422, "RGB"),
        ({"goal": [[[float("nan")] * 3] * 64] * 64}, 400, "NaN"),
        ({"num_candidates": 10**6}, 422, "outside"),
        ({"frame": "A" * 300_000}, 413, "exceeds"),
    ],
)
def test_bad_input_gets_a_clear_4xx_and_the_service_stays_up(service, change, status, message):
    frame, goal = episode_frames()
    payload = {"frame": png(frame), "goal": png(goal), **change}
    data = requests.models.complexjson.dumps(payload, allow_nan=True)
    r = requests.post(
        f"{service}/v1/plan", data=data, headers={"content-type": "application/json"}, timeout=60
    )
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]
    assert requests.get(f"{service}/healthz", timeout=30).status_code == 200


def test_rollout_scores_an_action_sequence_against_targets(service):
    env = make_env("tworoom")
    ep = make_episode(env, 7, goal_offset=4)
    frame, _ = env.reset(options={"state": ep.start_state})
    frames = [frame]
    for a in ep.oracle_actions[:4]:
        frames.append(env.step(a)[0])
    payload = {"frame": png(frame), "actions": np.asarray(ep.oracle_actions[:4]).tolist()}
    per_step = requests.post(
        f"{service}/v1/rollout", json={**payload, "targets": [png(f) for f in frames[1:]]},
        timeout=60,
    )  # fmt: skip
    assert per_step.status_code == 200, per_step.text
    body = per_step.json()
    assert len(body["cosine"]) == len(body["energy"]) == len(body["copy_cosine"]) == 4
    assert all(-1.0 <= c <= 1.0 + 1e-6 for c in body["cosine"] + body["copy_cosine"])
    assert all(e >= 0 for e in body["energy"])
    # One target is compared with every step; the last step matches the per-step answer.
    single = requests.post(
        f"{service}/v1/rollout", json={**payload, "targets": [png(frames[-1])]}, timeout=60
    ).json()
    assert single["cosine"][-1] == pytest.approx(body["cosine"][-1], abs=1e-5)
    # The start frame as its own target: the no-change baseline is exactly 1.
    itself = requests.post(
        f"{service}/v1/rollout", json={**payload, "targets": [png(frame)]}, timeout=60
    ).json()
    assert itself["copy_cosine"] == pytest.approx([1.0] * 4, abs=1e-5)


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"actions": [[0.1, 0.2, 0.3]]}, 422, "expected [T, 2]"),
        ({"actions": [[0.1, 0.2]] * 51}, 422, "1 <= T <= 50"),
        ({"actions": [[float("inf"), 0.0]]}, 400, "NaN or inf"),
        ({"targets": []}, 422, "expected 1 or 1 frames"),
        ({"targets": ["bm90IGFuIGltYWdl"]}, 400, "targets[0]"),
    ],
)
def test_bad_rollout_input_gets_a_4xx(service, change, status, message):
    frame, goal = episode_frames()
    payload = {"frame": png(frame), "actions": [[0.1, 0.2]], "targets": [png(goal)], **change}
    data = requests.models.complexjson.dumps(payload, allow_nan=True)
    r = requests.post(
        f"{service}/v1/rollout", data=data, headers={"content-type": "application/json"},
        timeout=60,
    )  # fmt: skip
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]


def test_closed_loop_client_drives_tworoom_through_the_service(service, capsys):
    from serve import client

    results = client.main([f"--url={service}", "--episodes=2", "--budget=3"])
    assert len(results) == 2
    assert all(1 <= r["steps"] <= 3 and len(r["latencies"]) == r["steps"] for r in results)
    assert "success" in capsys.readouterr().out


@pytest.fixture(scope="module")
def proprio_service(service, tiny_checkpoints, tmp_path_factory):
    """A second application on the same Serve instance: a model whose state carries the
    agent's position (``state.proprio_dims``), served from its final.pt."""
    from ray import serve

    from serve.app import build_app
    from vjepa2.config import apply_overrides, get_preset
    from vjepa2.train.local import run_local

    out = tmp_path_factory.mktemp("serve_proprio")
    cfg = apply_overrides(
        get_preset("dynamics", "tiny"),
        [f"train.out_dir={out}", "train.steps=2", "train.checkpoint_every=2",
         f"encoder_checkpoint={tiny_checkpoints[0].checkpoint}", "state.pooled=false",
         "state.standardize=true", "state.standardize_batches=1", "state.proprio_dims=[0,1]"],
    )  # fmt: skip
    checkpoint = run_local(cfg, progress=False).checkpoint
    app = build_app({"checkpoint": str(checkpoint), "num_candidates": 16, "iterations": 1})
    serve.run(app, name="planner_proprio", route_prefix="/proprio")
    yield f"{service}/proprio"
    serve.delete("planner_proprio")


def test_a_proprio_model_takes_the_agents_readings_beside_each_frame(proprio_service):
    url = proprio_service
    assert requests.get(f"{url}/v1/version", timeout=30).json()["proprio_dims"] == [0, 1]
    env = make_env("tworoom")
    ep = make_episode(env, 5, goal_offset=10)
    frame, _ = env.reset(options={"state": ep.start_state})
    here, there = ep.start_state[:2].tolist(), ep.goal_state[:2].tolist()
    plan = {"frame": png(frame), "goal": png(ep.goal_frame), "horizon": 3}
    r = requests.post(
        f"{url}/v1/plan", json={**plan, "proprio": here, "goal_proprio": there}, timeout=60
    )
    assert r.status_code == 200, r.text
    assert np.array(r.json()["actions"]).shape == (3, 2)
    for change, status, message in [
        ({}, 422, "needs the agent's proprioception"),
        ({"proprio": here, "goal_proprio": [1.0]}, 422, "expected 1 x 2"),
        ({"proprio": [float("nan"), 0.0], "goal_proprio": there}, 400, "NaN"),
    ]:
        data = requests.models.complexjson.dumps({**plan, **change}, allow_nan=True)
        bad = requests.post(
            f"{url}/v1/plan", data=data, headers={"content-type": "application/json"}, timeout=60
        )
        assert bad.status_code == status and message in bad.json()["detail"], bad.text
    rollout = {"frame": png(frame), "actions": [[1.0, 0.0]] * 2, "proprio": here}
    targets = {"targets": [png(frame)] * 2, "target_proprio": [here, there]}
    r = requests.post(f"{url}/v1/rollout", json={**rollout, **targets}, timeout=60)
    assert r.status_code == 200 and len(r.json()["cosine"]) == 2, r.text
    bad = requests.post(f"{url}/v1/rollout", json={**rollout, "targets": [png(frame)]}, timeout=60)
    assert bad.status_code == 422 and "target_proprio" in bad.json()["detail"]


def test_serve_config_yaml_is_a_valid_deploy_schema():
    from pathlib import Path

    import yaml
    from ray.serve.schema import ServeDeploySchema

    from serve.app import AppArgs

    root = Path(__file__).resolve().parents[1]
    schema = ServeDeploySchema(**yaml.safe_load((root / "serve" / "config.yaml").read_text()))
    (app,) = schema.applications
    assert app.import_path == "serve.app:build_app"
    AppArgs(**app.args)  # the arguments build_app will get are valid
    assert schema.http_options.host == "127.0.0.1"
