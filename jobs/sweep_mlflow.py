"""A sweep in MLflow: one parent run, a child run per Tune trial, logged from the driver.

Tune calls its callbacks in the driver process, so trials need no MLflow access of their
own (a trial on a cluster node may not reach the store). Child runs carry MLflow's
``mlflow.parentRunId`` tag, which is what nests them under the parent in the UI.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ray import tune

from vjepa2.tracking import Tracker, flatten_params, resolve_tracking_uri

EXPERIMENT = "vjepa2-sweeps"
PARENT_TAG = "mlflow.parentRunId"
_SKIP = {"trial_id", "date", "hostname", "node_ip", "pid", "experiment_tag", "done"}


def start_sweep_run(args: argparse.Namespace, out: Path, setup: dict[str, Any]) -> Tracker:
    uri = resolve_tracking_uri(args.tracking_uri, out.parent)
    parent = Tracker.start_or_resume(
        uri,
        EXPERIMENT,
        run_key=f"{out}@{time.time_ns()}",
        run_name=f"sweep-{args.kind}",
        tags={"vjepa2.sweep": args.kind},
    )
    settings = {k: v for k, v in vars(args).items() if k not in ("overrides", "probe_overrides")}
    parent.log_params(flatten_params({"sweep": settings, "setup": setup}))
    return parent


class MlflowTrials(tune.Callback):
    """Child run per trial: its parameters, every reported row, and how it ended."""

    def __init__(self, parent: Tracker, metric: str) -> None:
        self.parent, self.metric = parent, metric
        self.runs: dict[str, Tracker] = {}

    def _run(self, trial) -> Tracker:
        if trial.trial_id not in self.runs:
            run = Tracker.start_or_resume(
                self.parent.uri,
                EXPERIMENT,
                run_key=f"{self.parent.run_id}/{trial.trial_id}",
                run_name=f"trial-{trial.trial_id}",
                tags={PARENT_TAG: self.parent.run_id},
            )
            run.log_params(flatten_params(dict(trial.config)))
            self.runs[trial.trial_id] = run
        return self.runs[trial.trial_id]

    def on_trial_start(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self._run(trial)

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        metrics = {
            k: float(v)
            for k, v in result.items()
            if k not in _SKIP and isinstance(v, int | float) and not isinstance(v, bool)
        }
        self._run(trial).log_metrics(metrics, int(result.get("training_iteration", 0)))

    def on_trial_complete(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self._run(trial).finish("FINISHED")

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self._run(trial).finish("FAILED")
