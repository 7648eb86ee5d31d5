"""MLflow glue for training jobs: one run per job, params, metrics, artifacts, registry.

Only rank 0 calls this. Everything goes through an :class:`mlflow.MlflowClient` bound to an
explicit URI and run id, never the fluent API's global tracking URI or active run, so a Ray
worker in another directory can :meth:`Tracker.attach` to the driver's run with ``uri`` and
``run_id`` alone.

Local stores are SQLite files (MLflow >= 3.7 refuses the plain file store unless
``MLFLOW_ALLOW_FILE_STORE=true``), addressed by absolute path, with each experiment's
artifacts next to the database rather than under the current directory.

Checkpoints are registered as pyfunc models (:class:`CheckpointModel`) that embed the ``.pt``
file and turn RGB frames into latents, so ``mlflow.pyfunc.load_model("models:/<name>/<v>")``
is all a consumer needs.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shlex
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import mlflow
import numpy as np
import torch
from mlflow import MlflowClient
from mlflow.entities import LoggedModelOutput, LoggedModelStatus, Metric, Param, ViewType
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.types.schema import ParamSchema, ParamSpec
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

from vjepa2.data.transforms import normalize_frames, normalize_video
from vjepa2.pyfunc_inputs import as_uint8_frames, flat_proprio

logger = logging.getLogger(__name__)

RUN_KEY_TAG = "vjepa2.run_key"
KIND_TAG = "vjepa2.kind"
CHECKPOINT_KINDS = ("dynamics", "pretrain")
# MLflow rejects (not truncates) longer param values.
MAX_PARAM_LENGTH = MAX_PARAM_VAL_LENGTH
_TERMINAL_STATUSES = ("FINISHED", "FAILED", "KILLED")
_UI_ADDRESS = "http://127.0.0.1:5000"
# Installed at load time; the pyfunc's python_model pickle refers to vjepa2.tracking by name.
_MODEL_PACKAGES = ("mlflow", "cloudpickle", "numpy", "torch", "vjepa2-platform")
# MLflow hands ``predict`` only the params its signature declares; a param is at most 1-D,
# so a dynamics model's proprioception travels flat: B x d_p readings, frame by frame.
_DYNAMICS_SIGNATURE = ModelSignature(
    inputs=None, outputs=None, params=ParamSchema([ParamSpec("proprio", "double", [], (-1,))])
)


# --------------------------------------------------------------------------- URIs and params


def resolve_tracking_uri(configured: str, run_root: str | Path) -> str:
    """``configured`` (non-empty) > env ``MLFLOW_TRACKING_URI`` > a SQLite file in ``run_root``.

    The default is ``sqlite:///<absolute run_root>/mlflow.db`` (``run_root`` is created).
    A relative SQLite path or bare local path, from either source, is made absolute against
    the current directory, since Ray workers run elsewhere.
    """
    for candidate in (configured, os.environ.get("MLFLOW_TRACKING_URI", "")):
        candidate = (candidate or "").strip()
        if candidate:
            return _absolute_uri(candidate)
    root = Path(run_root).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root}/mlflow.db"


def _absolute_uri(uri: str) -> str:
    if uri.startswith("sqlite:///"):
        path, sep, query = uri[len("sqlite:///") :].partition("?")
        if path and path != ":memory:" and not os.path.isabs(path):
            return f"sqlite:///{Path(path).resolve()}{sep}{query}"
        return uri
    has_scheme = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", uri) is not None
    if not has_scheme and ("/" in uri or uri.startswith(("~", "."))):
        return Path(uri).expanduser().resolve().as_uri()  # a bare path: the file store
    return uri


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].partition("?")[0]
    return Path(path) if path and path != ":memory:" else None


def _cut(value: Any) -> str:
    return str(value)[:MAX_PARAM_LENGTH]


def flatten_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dict -> ``{"encoder.embed_dim": "96", ...}``.

    Lists, tuples, ``None`` and empty dicts become their ``str``; every value is cut to
    MLflow's param length limit (6000 characters), which MLflow would otherwise reject.
    """
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten_params(value, name))
        else:
            out[name] = _cut(value)
    return out


def _as_metric_value(value: Any) -> float | None:
    """A finite float, or None for strings, non-scalars and NaN/inf."""
    if isinstance(value, str | bytes):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, RuntimeError):  # RuntimeError: multi-element tensors
        return None
    return number if math.isfinite(number) else None


# --------------------------------------------------------------------------- the tracker


def _client(uri: str) -> MlflowClient:
    # The registry lives in the same store as the runs, whatever the process-global settings.
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _artifact_location(uri: str, experiment: str) -> str | None:
    """Next to the SQLite database; None (the server's choice) for every other store.

    Left to itself, a SQLite store puts artifacts under ``./mlruns`` of whatever directory the
    creating process happened to run in.
    """
    db = _sqlite_path(uri)
    if db is None:
        return None
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", experiment).strip("._") or "experiment"
    return (db.parent / "mlartifacts" / slug).as_uri()


def _ensure_experiment(client: MlflowClient, uri: str, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name, artifact_location=_artifact_location(uri, name))
        except MlflowException as exc:  # created meanwhile by another process
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.lifecycle_stage != "active":
        raise ValueError(
            f"MLflow experiment {name!r} at {uri} is deleted; restore it (mlflow experiments "
            f"restore --experiment-id {exp.experiment_id}) or use another experiment name"
        )
    return exp.experiment_id


def _filter_value(value: str) -> str:
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ValueError(f"run key {value!r} holds both quote characters; MLflow cannot search it")


def _pip_requirements() -> list[str]:
    reqs = []
    for package in _MODEL_PACKAGES:
        try:
            # Local labels (torch's "+cpu"/"+cu128") are not installable from PyPI.
            reqs.append(f"{package}=={version(package).split('+')[0]}")
        except PackageNotFoundError:
            reqs.append(package)
    return reqs


class _DropMessages(logging.Filter):
    def __init__(self, *fragments: str) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(fragment in message for fragment in self.fragments)


@contextmanager
def _quiet_save_notices() -> Iterator[None]:
    """Hide three notices ``mlflow.pyfunc.save_model`` gives for every CheckpointModel.

    * "Passing a Python object as `python_model` ... CloudPickle": our object holds one
      string and its class pickles by reference to this module; the "models from code"
      alternative needs a script that calls ``set_model`` at import time.
    * "Failed to infer model signature": deliberate. The frame layout depends on the kind, and
      a TensorSpec signature would make MLflow reject float input (its dtype check is exact).
    * "An input example was not provided": a dynamics model's signature declares only its
      ``proprio`` param, and an example would embed frames in every registered version.
    """
    target = logging.getLogger("mlflow.pyfunc")
    drop = _DropMessages(
        "Passing a Python object as `python_model`", "Failed to infer model signature"
    )
    target.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*An input example was not provided")
            yield
    finally:
        target.removeFilter(drop)


class Tracker:
    """One MLflow run, addressed by id through MlflowClient (no fluent global active run)."""

    uri: str
    run_id: str
    experiment_id: str

    def __init__(self, uri: str, run_id: str, experiment_id: str) -> None:
        self.uri, self.run_id, self.experiment_id = uri, run_id, experiment_id
        self._client = _client(uri)
        self._warned_dropped: set[str] = set()

    def __repr__(self) -> str:
        return f"Tracker(uri={self.uri!r}, run_id={self.run_id!r})"

    @classmethod
    def start_or_resume(
        cls,
        uri: str,
        experiment: str,
        run_key: str,
        run_name: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> Tracker:
        """The experiment's run tagged ``vjepa2.run_key == run_key``, set back to RUNNING, or
        a new run with that tag. The experiment is created if missing. ``tags`` are set on
        either; ``run_name`` renames a resumed run."""
        if not run_key:
            raise ValueError("run_key must be a non-empty string")
        client = _client(uri)
        experiment_id = _ensure_experiment(client, uri, experiment)
        found = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{RUN_KEY_TAG}` = {_filter_value(run_key)}",
            run_view_type=ViewType.ACTIVE_ONLY,
            order_by=["attributes.start_time ASC"],
        )
        found = [r for r in found if r.data.tags.get(RUN_KEY_TAG) == run_key]
        extra = {str(k): str(v) for k, v in (tags or {}).items()}
        if found:
            run_id = found[0].info.run_id
            if len(found) > 1:
                logger.warning(
                    "%d MLflow runs carry %s=%r; resuming the oldest, %s",
                    len(found),
                    RUN_KEY_TAG,
                    run_key,
                    run_id,
                )
            client.update_run(run_id, status="RUNNING", name=run_name)
            for key, value in extra.items():
                client.set_tag(run_id, key, value)
        else:
            run = client.create_run(
                experiment_id, tags={**extra, RUN_KEY_TAG: run_key}, run_name=run_name
            )
            run_id = run.info.run_id
        return cls(uri, run_id, experiment_id)

    @classmethod
    def attach(cls, uri: str, run_id: str) -> Tracker:
        """The existing run ``run_id`` at ``uri`` (e.g. from a worker given only these two)."""
        try:
            run = _client(uri).get_run(run_id)
        except MlflowException as exc:
            raise ValueError(f"no MLflow run {run_id!r} at {uri}: {exc.message}") from exc
        return cls(uri, run_id, run.info.experiment_id)

    def log_params(self, params: dict[str, str]) -> None:
        """Log params once: keys already logged with the same value are skipped (resume); a
        different value for a logged key raises ValueError (MLflow params are immutable)."""
        wanted = {str(k): _cut(v) for k, v in params.items()}
        if not wanted:
            return
        logged = self._client.get_run(self.run_id).data.params
        changed = sorted(k for k, v in wanted.items() if k in logged and logged[k] != v)
        if changed:
            details = "; ".join(f"{k!r}: logged {logged[k]!r}, now {wanted[k]!r}" for k in changed)
            raise ValueError(
                f"MLflow run {self.run_id} already has param(s) with other values ({details}); "
                "params cannot change within a run, so start a new run (another run key) "
                "for a changed config"
            )
        new = [Param(k, v) for k, v in wanted.items() if k not in logged]
        if new:
            self._client.log_batch(self.run_id, params=new)  # the client chunks by 100

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """One batch call at ``step``; non-numeric and non-finite values are dropped."""
        timestamp = int(time.time() * 1000)
        kept, dropped = [], []
        for key, value in metrics.items():
            number = _as_metric_value(value)
            if number is None:
                dropped.append(str(key))
            else:
                kept.append(Metric(str(key), number, timestamp, int(step)))
        fresh = sorted(set(dropped) - self._warned_dropped)
        if fresh:
            self._warned_dropped.update(fresh)
            logger.warning(
                "dropping non-numeric or non-finite metric(s) %s at step %d (warned once per key)",
                fresh,
                step,
            )
        if kept:
            self._client.log_batch(self.run_id, metrics=kept)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """A file lands at ``<artifact_path>/<name>``; so does a directory, with its tree."""
        path = Path(path)
        if path.is_dir():
            dest = f"{artifact_path.rstrip('/')}/{path.name}" if artifact_path else path.name
            self._client.log_artifacts(self.run_id, str(path), dest)
        elif path.is_file():
            self._client.log_artifact(self.run_id, str(path), artifact_path)
        else:
            raise FileNotFoundError(f"no file or directory to log at {path}")

    def register_checkpoint_model(self, checkpoint: str | Path, name: str, kind: str) -> str:
        """Log ``checkpoint`` as a pyfunc :class:`CheckpointModel` in this run and register it
        as a new version of ``name``; returns the version ("1", "2", ...)."""
        if kind not in CHECKPOINT_KINDS:
            raise ValueError(f"unknown checkpoint kind {kind!r}; valid: {list(CHECKPOINT_KINDS)}")
        checkpoint = Path(checkpoint).resolve()
        if not checkpoint.is_file():
            raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
        client = self._client
        tags = {KIND_TAG: kind, "vjepa2.checkpoint": str(checkpoint)}
        logged = client.create_logged_model(
            self.experiment_id,
            name=name,
            source_run_id=self.run_id,
            tags=tags,
            model_type=f"vjepa2-{kind}",
        )
        try:
            client.log_outputs(self.run_id, [LoggedModelOutput(logged.model_id, step=0)])
            # What mlflow.pyfunc.log_model does, minus its global tracking URI and active run.
            meta = Model(
                artifact_path=logged.artifact_location,
                model_uuid=logged.model_id,
                run_id=self.run_id,
                model_id=logged.model_id,
            )
            with tempfile.TemporaryDirectory(prefix="vjepa2-model-") as tmp:
                local = os.path.join(tmp, "model")
                with _quiet_save_notices():
                    mlflow.pyfunc.save_model(
                        local,
                        python_model=CheckpointModel(kind),
                        artifacts={"checkpoint": str(checkpoint)},
                        pip_requirements=_pip_requirements(),
                        # Declared here, or load_model(model_config=...) ignores the override.
                        model_config={"device": "cpu"},
                        signature=_DYNAMICS_SIGNATURE if kind == "dynamics" else None,
                        mlflow_model=meta,
                    )
                client.log_model_artifacts(logged.model_id, local)
        except BaseException:
            client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
            raise
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)

        try:
            client.create_registered_model(name)
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
        # The source is the artifact location itself: a "models:/<model_id>" source makes the
        # SQLAlchemy registry look the model up through MlflowClient() with the *global*
        # tracking URI, which fails (and leaves a stray ./mlflow.db) for any other store.
        version_ = client.create_model_version(
            name,
            source=logged.artifact_location,
            run_id=self.run_id,
            tags={KIND_TAG: kind},
            model_id=logged.model_id,
        )
        return str(version_.version)

    def finish(self, status: str = "FINISHED") -> None:
        """End the run as FINISHED, FAILED or KILLED (a later start_or_resume reopens it)."""
        if status not in _TERMINAL_STATUSES:
            raise ValueError(f"finish status must be one of {_TERMINAL_STATUSES}, got {status!r}")
        self._client.set_terminated(self.run_id, status=status)

    def run_url(self) -> str:
        """The run's page: the real URL on a tracking server, else how to open it locally."""
        fragment = f"#/experiments/{self.experiment_id}/runs/{self.run_id}"
        if urlparse(self.uri).scheme in ("http", "https"):
            return f"{self.uri.rstrip('/')}/{fragment}"
        return (
            f"mlflow ui --backend-store-uri {shlex.quote(self.uri)}  "
            f"then open {_UI_ADDRESS}/{fragment}"
        )


# --------------------------------------------------------------------------- the pyfunc model


class CheckpointModel(mlflow.pyfunc.PythonModel):
    """A vjepa2 checkpoint as a pyfunc: RGB frames in, float32 latents out.

    ``kind="dynamics"``: frames [B, H, W, 3] -> the world model's states (``encode``),
    [B, D] when pooled. ``kind="pretrain"``: clips [B, T, H, W, 3] -> the target encoder's
    mean token [B, D]. Frames are uint8, or float/int on the same 0-255 scale (what JSON
    serving delivers). ``model_config={"device": "cuda"}`` at load time picks the device.

    A world model whose state carries proprioception (``state.proprio_dims``) takes the
    agent's readings beside the frames as ``params={"proprio": [...]}``: B x d_p values,
    frame by frame, the true-state entries ``proprio_dims`` in that order.
    """

    def __init__(self, kind: str) -> None:
        if kind not in CHECKPOINT_KINDS:
            raise ValueError(f"unknown checkpoint kind {kind!r}; valid: {list(CHECKPOINT_KINDS)}")
        self.kind = kind

    def load_context(self, context: Any) -> None:
        from vjepa2.train.builders import load_pretrained, load_world_model

        path = context.artifacts["checkpoint"]
        self.device = torch.device((context.model_config or {}).get("device", "cpu"))
        if self.kind == "dynamics":
            model, _ = load_world_model(path, map_location=self.device)
            self.net: torch.nn.Module = model.to(self.device).eval()
        else:
            vjepa, _ = load_pretrained(path, map_location=self.device)
            self.net = vjepa.target.to(self.device).eval()

    def predict(
        self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        frames = as_uint8_frames(np.asarray(model_input))
        want = 4 if self.kind == "dynamics" else 5
        layout = "[B, H, W, 3]" if self.kind == "dynamics" else "[B, T, H, W, 3]"
        if frames.ndim != want or frames.shape[-1] != 3:
            raise ValueError(
                f"a {self.kind} model takes frames {layout}, got shape {tuple(frames.shape)}"
            )
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        dims = getattr(self.net, "proprio_dims", ()) if self.kind == "dynamics" else ()
        proprio = flat_proprio((params or {}).get("proprio"), len(frames), tuple(dims))
        proprio = None if proprio is None else proprio.to(self.device)
        with torch.no_grad():
            if self.kind == "dynamics":
                z = self.net.encode(normalize_frames(x), proprio)
            else:
                z = self.net(normalize_video(x)).mean(dim=1)
        return z.float().cpu().numpy()
