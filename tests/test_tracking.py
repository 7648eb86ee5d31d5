"""MLflow glue on a real SQLite store under tmp_path: runs, params, metrics, artifacts, registry."""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus
from mlflow.pyfunc import PythonModelContext
from mlflow.tracking._model_registry import utils as registry_utils
from mlflow.tracking._tracking_service import utils as tracking_utils

from vjepa2.config import apply_overrides, get_preset
from vjepa2.config.base import to_dict
from vjepa2.data.transforms import normalize_frames, normalize_video
from vjepa2.tracking import (
    MAX_PARAM_LENGTH,
    RUN_KEY_TAG,
    CheckpointModel,
    Tracker,
    flatten_params,
    resolve_tracking_uri,
)
from vjepa2.train.builders import load_pretrained, load_world_model
from vjepa2.train.local import run_dynamics_training, run_pretraining

# MLflow 3.17's SQLAlchemy store calls configure_mappers() on a `noload` relationship, which
# SQLAlchemy 2.1 deprecates: a dependency-pair warning, nothing this code can act on.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"
)


@pytest.fixture(autouse=True)
def _isolated_mlflow(tmp_path, monkeypatch):
    """No MLflow state leaks in or out: env vars, global URIs, cwd, active runs."""
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    monkeypatch.setattr(registry_utils, "_registry_uri", None)
    # Anything that fell back on MLflow's defaults (./mlflow.db, ./mlruns) would land here.
    monkeypatch.chdir(tmp_path)
    assert mlflow.active_run() is None
    yield
    assert mlflow.active_run() is None


@pytest.fixture(scope="module")
def uri(tmp_path_factory):
    """One SQLite store for the module (creating its tables takes ~2 s); tests keep apart by
    using their own experiment (``exp``)."""
    return f"sqlite:///{tmp_path_factory.mktemp('store').resolve()}/mlflow.db"


@pytest.fixture
def exp(request):
    return request.node.name


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Real tiny checkpoints from the local trainers, made once for the module."""
    out = tmp_path_factory.mktemp("ckpt")
    common = [
        f"train.out_dir={out}",
        "train.steps=2",
        "train.checkpoint_every=2",
        "train.batch_size=2",
        "data.synthetic.num_videos=4",
    ]
    pre = run_pretraining(apply_overrides(get_preset("pretrain", "tiny"), common), progress=False)
    dyn = run_dynamics_training(
        apply_overrides(
            get_preset("dynamics", "tiny"), [*common, f"encoder_checkpoint={pre.checkpoint}"]
        ),
        progress=False,
    )
    return {"pretrain": Path(pre.checkpoint), "dynamics": Path(dyn.checkpoint)}


def _frames(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(*shape, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------ URIs, params


def test_uri_resolution_order(tmp_path, monkeypatch):
    run_root = tmp_path / "runs" / "exp"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert resolve_tracking_uri("sqlite:////data/m.db", run_root) == "sqlite:////data/m.db"
    assert resolve_tracking_uri("", run_root) == "http://tracking.example:5000"
    assert not run_root.exists()  # nothing created while another source wins

    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir(tmp_path)
    got = resolve_tracking_uri("", "runs/exp")  # relative root: made absolute
    assert got == f"sqlite:///{run_root.resolve()}/mlflow.db"
    assert got.startswith("sqlite:////")  # sqlite:/// + an absolute path
    assert run_root.is_dir()
    # A relative SQLite path would be relative to each Ray worker's cwd: made absolute too.
    assert resolve_tracking_uri("sqlite:///rel/m.db", run_root) == (
        f"sqlite:///{(tmp_path / 'rel' / 'm.db').resolve()}"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "  ")  # blank counts as unset
    assert resolve_tracking_uri("", run_root) == got


def test_flatten_params():
    flat = flatten_params(
        {
            "encoder": {"embed_dim": 96, "sizes": [1, 2], "attn": {"heads": 4, "rope": True}},
            "grid": (4, 4),
            "note": None,
            "empty": {},
            "long": "x" * (MAX_PARAM_LENGTH + 50),
        }
    )
    assert flat == {
        "encoder.embed_dim": "96",
        "encoder.sizes": "[1, 2]",
        "encoder.attn.heads": "4",
        "encoder.attn.rope": "True",
        "grid": "(4, 4)",
        "note": "None",
        "empty": "{}",
        "long": "x" * MAX_PARAM_LENGTH,
    }
    assert flatten_params({"a": 1}, prefix="cfg") == {"cfg.a": "1"}
    real = flatten_params(to_dict(get_preset("pretrain", "tiny")))
    assert real["encoder.embed_dim"] == "96" and real["train.steps"] == "300"
    assert all(isinstance(v, str) for v in real.values())


# ------------------------------------------------------------------------------ runs


def test_start_or_resume_reuses_the_run_for_a_key(uri, exp):
    client = MlflowClient(uri)
    first = Tracker.start_or_resume(uri, exp, "job-a", run_name="a", tags={"team": "w"})
    first.finish()
    assert client.get_run(first.run_id).info.status == "FINISHED"

    again = Tracker.start_or_resume(uri, exp, "job-a")
    assert (again.run_id, again.experiment_id) == (first.run_id, first.experiment_id)
    run = client.get_run(again.run_id)
    assert run.info.status == "RUNNING"  # reopened
    assert run.info.run_name == "a"
    assert run.data.tags[RUN_KEY_TAG] == "job-a" and run.data.tags["team"] == "w"

    other = Tracker.start_or_resume(uri, exp, "job-b")
    assert other.run_id != first.run_id and other.experiment_id == first.experiment_id
    quoted = Tracker.start_or_resume(uri, exp, "it's")
    assert Tracker.start_or_resume(uri, exp, "it's").run_id == quoted.run_id
    elsewhere = Tracker.start_or_resume(uri, f"{exp}-2", "job-a")  # keys are per experiment
    assert elsewhere.experiment_id != first.experiment_id and elsewhere.run_id != first.run_id
    client.delete_experiment(elsewhere.experiment_id)
    with pytest.raises(ValueError, match="is deleted"):
        Tracker.start_or_resume(uri, f"{exp}-2", "job-a")

    # Artifacts sit next to the database, not under the cwd.
    store = Path(uri.removeprefix("sqlite:///")).parent
    assert run.info.artifact_uri.startswith((store / "mlartifacts").as_uri())


def test_attach_and_run_url(uri, exp):
    tracker = Tracker.start_or_resume(uri, exp, "k")
    worker = Tracker.attach(uri, tracker.run_id)
    assert (worker.run_id, worker.experiment_id) == (tracker.run_id, tracker.experiment_id)
    worker.log_metrics({"w": 1.0}, step=0)
    assert MlflowClient(uri).get_run(tracker.run_id).data.metrics == {"w": 1.0}
    with pytest.raises(ValueError, match="no MLflow run"):
        Tracker.attach(uri, "0" * 32)

    url = tracker.run_url()
    assert f"mlflow ui --backend-store-uri {uri}" in url
    frag = f"#/experiments/{tracker.experiment_id}/runs/{tracker.run_id}"
    assert url.endswith(f"http://127.0.0.1:5000/{frag}")
    remote = Tracker("https://mlflow.example.com/", tracker.run_id, tracker.experiment_id)
    assert remote.run_url() == f"https://mlflow.example.com/{frag}"


def test_log_params_is_idempotent_and_refuses_changes(uri, exp):
    tracker = Tracker.start_or_resume(uri, exp, "k")
    params = {f"p{i}": str(i) for i in range(150)}  # over one log_batch's 100-param limit
    tracker.log_params(params)
    tracker.log_params(params)  # a resume logs the same config again: fine
    tracker.log_params({"p0": "0", "new": "x"})
    assert MlflowClient(uri).get_run(tracker.run_id).data.params == {**params, "new": "x"}
    with pytest.raises(ValueError, match="'p3'"):
        tracker.log_params({"p3": "changed", "other": "y"})
    # Nothing of the refused call was logged.
    assert "other" not in MlflowClient(uri).get_run(tracker.run_id).data.params


def test_log_metrics_with_steps_drops_non_finite(uri, exp):
    tracker = Tracker.start_or_resume(uri, exp, "k")
    for step in range(3):
        tracker.log_metrics(
            {"loss": 1.0 / (step + 1), "lr": np.float32(0.5), "t": torch.tensor(2.0)}, step=step
        )
    tracker.log_metrics({"loss": math.nan, "bad": math.inf, "name": "x", "vec": [1.0]}, step=3)
    client = MlflowClient(uri)
    history = client.get_metric_history(tracker.run_id, "loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
        (0, 1.0),
        (1, 0.5),
        (2, pytest.approx(1 / 3)),
    ]
    assert [m.value for m in client.get_metric_history(tracker.run_id, "t")] == [2.0] * 3
    assert set(client.get_run(tracker.run_id).data.metrics) == {"loss", "lr", "t"}


def test_log_artifact_file_and_directory(uri, exp, tmp_path):
    tracker = Tracker.start_or_resume(uri, exp, "k")
    cfg = tmp_path / "config.yaml"
    cfg.write_text("a: 1\n")
    folder = tmp_path / "plots"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "curve.txt").write_text("x")
    tracker.log_artifact(cfg)
    tracker.log_artifact(cfg, artifact_path="configs")
    tracker.log_artifact(folder, artifact_path="extra")
    client = MlflowClient(uri)
    assert {f.path for f in client.list_artifacts(tracker.run_id)} >= {"config.yaml", "configs"}
    assert [f.path for f in client.list_artifacts(tracker.run_id, "configs")] == [
        "configs/config.yaml"
    ]
    local = client.download_artifacts(tracker.run_id, "extra/plots/sub/curve.txt", str(tmp_path))
    assert Path(local).read_text() == "x"
    with pytest.raises(FileNotFoundError):
        tracker.log_artifact(tmp_path / "missing.txt")


def test_finish_statuses(uri, exp):
    client = MlflowClient(uri)
    tracker = Tracker.start_or_resume(uri, exp, "k")
    assert client.get_run(tracker.run_id).info.status == "RUNNING"
    tracker.finish()
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.info.end_time is not None
    Tracker.start_or_resume(uri, exp, "k").finish("FAILED")
    assert client.get_run(tracker.run_id).info.status == "FAILED"
    with pytest.raises(ValueError, match="finish status"):
        tracker.finish("RUNNING")


# ------------------------------------------------------------------------------ registry


@pytest.mark.slow
def test_register_dynamics_checkpoint_and_load_from_registry(
    uri, exp, checkpoints, tmp_path, monkeypatch
):
    ckpt = checkpoints["dynamics"]
    tracker = Tracker.start_or_resume(uri, exp, "dyn")
    assert tracker.register_checkpoint_model(ckpt, "tiny-dynamics", "dynamics") == "1"
    assert tracker.register_checkpoint_model(ckpt, "tiny-dynamics", "dynamics") == "2"

    client = MlflowClient(uri)
    version = client.get_model_version("tiny-dynamics", "1")
    assert version.run_id == tracker.run_id and version.status == "READY"
    assert version.tags["vjepa2.kind"] == "dynamics"
    run = client.get_run(tracker.run_id)
    assert len(run.outputs.model_outputs) == 2  # both logged models are the run's outputs
    logged = client.get_logged_model(run.outputs.model_outputs[0].model_id)
    assert logged.status == LoggedModelStatus.READY and logged.source_run_id == tracker.run_id
    # Registration went through the given URI only: nothing at MLflow's cwd defaults.
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()

    # Fluent loading reads the process-global URI; monkeypatch sets and restores it.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    served = mlflow.pyfunc.load_model("models:/tiny-dynamics/1")
    frames = _frames(3, 64, 64)
    latents = served.predict(frames)

    model, cfg = load_world_model(ckpt)
    with torch.no_grad():
        expected = model.eval().encode(normalize_frames(torch.from_numpy(frames))).numpy()
    assert latents.dtype == np.float32
    assert latents.shape == (3, cfg.encoder.embed_dim) == expected.shape
    np.testing.assert_allclose(latents, expected, rtol=1e-5, atol=1e-5)
    # Float input on the same 0-255 scale (what JSON serving sends) gives the same latents.
    np.testing.assert_allclose(served.predict(frames.astype(np.float64)), latents, atol=1e-6)
    with pytest.raises(ValueError, match=r"\[B, H, W, 3\]"):
        served.predict(_frames(2, 4, 64, 64))
    with pytest.raises(ValueError, match="takes no proprioception"):
        served.predict(frames, params={"proprio": [0.0] * 6})


def test_pretrain_checkpoint_model_pools_target_tokens(checkpoints):
    model = CheckpointModel("pretrain")
    context = PythonModelContext(
        artifacts={"checkpoint": str(checkpoints["pretrain"])}, model_config={}
    )
    model.load_context(context)
    clips = _frames(2, 8, 64, 64, seed=1)
    latents = model.predict(context, clips)

    vjepa, cfg = load_pretrained(checkpoints["pretrain"])
    with torch.no_grad():
        expected = vjepa.target.eval()(normalize_video(torch.from_numpy(clips))).mean(1).numpy()
    assert latents.dtype == np.float32 and latents.shape == (2, cfg.encoder.embed_dim)
    np.testing.assert_allclose(latents, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="kind"):
        CheckpointModel("other")


def test_fetch_checkpoint_resolves_paths_and_refuses_what_it_cannot(uri, tmp_path, monkeypatch):
    from vjepa2.model_uri import fetch_checkpoint, is_model_uri

    assert is_model_uri("models:/m/1") and is_model_uri("runs:/abc/model")
    assert not is_model_uri("runs/demo/dynamics/final.pt")
    local = tmp_path / "final.pt"
    local.write_bytes(b"x")
    assert fetch_checkpoint(local, tmp_path / "dl") == local  # a path is used as it is
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        fetch_checkpoint(tmp_path / "missing.pt", tmp_path / "dl")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(ValueError, match="tracking URI"):
        fetch_checkpoint("models:/m/1", tmp_path / "dl")
    with pytest.raises(FileNotFoundError, match="not found in"):
        fetch_checkpoint("models:/no-such-model/1", tmp_path / "dl", uri)
