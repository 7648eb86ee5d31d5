"""A checkpoint file from a local path or an MLflow model URI (what ``serve.app`` loads).

``models:/name/1``, ``models:/name/latest``, ``models:/name@alias`` and ``runs:/id/path``
resolve through a client bound to the given store, never MLflow's process-global one.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import Model

from vjepa2.tracking import _absolute_uri, _client, _filter_value

MODEL_URI_SCHEMES = ("models", "runs")


def is_model_uri(value: str | Path) -> bool:
    """``models:/name/1``, ``models:/name@alias``, ``models:/name/latest`` or ``runs:/id/path``."""
    return urlparse(str(value)).scheme in MODEL_URI_SCHEMES


def _download_model(client: MlflowClient, source: str, dst: str) -> Path:
    """Download a model URI through ``client`` alone.

    MLflow's own ``models:/`` resolution looks the version up in the process-global registry
    whatever registry URI it is handed, so the lookup is done here with the bound client.
    """
    parsed = urlparse(source)
    rest = parsed.path.lstrip("/")
    if parsed.scheme == "runs":
        run_id, _, path = rest.partition("/")
        return Path(client.download_artifacts(run_id, path, dst))
    if "@" in rest:
        name, alias = rest.split("@", 1)
        version = client.get_model_version_by_alias(name, alias).version
    else:
        name, _, version = rest.rpartition("/")
        if version == "latest":
            found = client.search_model_versions(f"name = {_filter_value(name)}")
            if not found:
                raise MlflowException(f"Registered Model with name={name} has no versions")
            version = str(max(int(v.version) for v in found))
    if not name or not str(version).isdigit():
        raise MlflowException(f"expected models:/<name>/<version|latest> or @<alias>: {source}")
    location = client.get_model_version_download_uri(name, version)
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=dst))


def fetch_checkpoint(source: str | Path, dst: str | Path, tracking_uri: str = "") -> Path:
    """The ``.pt`` file behind ``source``: a local path as is, an MLflow model URI downloaded.

    A registered :class:`CheckpointModel` carries its checkpoint among the pyfunc artifacts;
    ``tracking_uri`` ("" = ``$MLFLOW_TRACKING_URI``) names the store that resolves the URI.
    Nothing in the download is unpickled: the checkpoint loads with ``weights_only=True``.
    """
    if not is_model_uri(source):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        return path
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        raise ValueError(f"{source} is an MLflow URI: give a tracking URI or MLFLOW_TRACKING_URI")
    try:
        local = _download_model(_client(_absolute_uri(uri)), str(source), str(dst))
    except MlflowException as exc:
        raise FileNotFoundError(f"{source} not found in {uri}: {exc.message}") from None
    meta = Model.load(str(local / "MLmodel")) if (local / "MLmodel").is_file() else None
    flavor = meta.flavors.get("python_function", {}) if meta else {}
    found = flavor.get("artifacts", {}).get("checkpoint", {}).get("path")
    if found is None:
        raise ValueError(f"{source} is not a vjepa2 checkpoint model (no checkpoint artifact)")
    return local / found
