"""cluster.yaml: valid for Ray's launcher schema, and pinned to what this project runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]


def load() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def test_cluster_yaml_matches_the_launcher_schema():
    # What `ray up` does: fill the provider's defaults, then check against ray-schema.json.
    validate_config(prepare_config(load()))
    broken = load()
    broken["available_node_types"]["a100"]["gpus_per_node"] = 8  # not a launcher field
    with pytest.raises(Exception, match="gpus_per_node"):
        validate_config(prepare_config(broken))


def test_cluster_yaml_pins_our_ray_and_python_and_keeps_the_dashboard_private():
    cfg = load()
    ray_minor = ".".join(ray.__version__.split(".")[:2])
    py = f"py{sys.version_info.major}{sys.version_info.minor}"
    image = cfg["docker"]["image"]
    assert image.startswith(f"rayproject/ray:{ray_minor}.") and f"-{py}-gpu" in image
    workers = cfg["available_node_types"]["a100"]
    assert workers["node_config"]["InstanceType"] == "p4d.24xlarge"
    assert workers["resources"]["GPU"] == 8 and workers["max_workers"] >= 1
    head = " ".join(cfg["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "RAY_AUTH_MODE=token" in head
    assert any("pip install" in c and "/home/ray/vjepa2" in c for c in cfg["setup_commands"])
