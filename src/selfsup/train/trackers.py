"""Experiment trackers through Lightning's loggers, writing into the run directory.

``--logger csv|tensorboard|mlflow|wandb`` opens Lightning's own loggers at fixed places under
``RUN/logs/`` (``csv/metrics.csv``, ``tensorboard/``, the MLflow file store ``mlflow/``,
``wandb/`` offline), so a run's trackers are found again from its directory alone: a resumed
run continues the same TensorBoard directory and MLflow run, and the probe results written to
``eval.json`` after training (or by a later ``selfsup evaluate``) join them there.

The values are the ones ``metrics.jsonl`` holds: `MetricsLog` and `RankMeMonitor` hand each
row they write to `log_row` as well, rather than the trackers taking Lightning's ``self.log``
values, whose learning rate is read before the optimizer step and whose steps are counted
differently.
"""

from __future__ import annotations

import csv
import importlib.util
import logging
import os
import uuid
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from ..rundir import RunDir
from .config import LOGGERS, ConfigError

# the import names each tracker needs, and what to install when none is there
PACKAGES: dict[str, tuple[tuple[str, ...], str]] = {
    "csv": ((), ""),
    "tensorboard": (("tensorboard", "tensorboardX"), "tensorboard"),
    "mlflow": (("mlflow",), "mlflow-skinny"),
    "wandb": (("wandb",), "wandb"),
}

MLFLOW_EXPERIMENT = "selfsup"
EVAL_PREFIX = "eval/"  # probe results apart from the training rows' "rankme" at the same step

log = logging.getLogger("selfsup")


def check_trackers(names: Iterable[str]) -> None:
    """Raise `ConfigError` (one line) for an unknown tracker or one whose package is missing."""
    for name in names:
        if name not in LOGGERS:
            raise ConfigError(f"unknown logger {name!r}; valid: {', '.join(LOGGERS)}")
        modules, pip_name = PACKAGES[name]
        if modules and not any(importlib.util.find_spec(m) for m in modules):
            raise ConfigError(f"--logger {name} needs the {modules[0]} package: pip install "
                             f"{pip_name} (or pip install 'selfsup[trackers]')")


def logs_dir(run_dir: str | Path) -> Path:
    return RunDir(run_dir).path / "logs"


def mlflow_uri(run_dir: str | Path) -> str:
    """The run's MLflow file store, ``file:///.../RUN/logs/mlflow``.

    MLflow 3 keeps file stores in maintenance mode and refuses them unless
    ``MLFLOW_ALLOW_FILE_STORE`` is set; a store inside the run directory needs no server or
    database, so selfsup sets it for its own process (``setdefault``: a user's own choice wins).
    """
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return (logs_dir(run_dir) / "mlflow").resolve().as_uri()


def open_loggers(run_dir: str | Path, names: Iterable[str]) -> list[Logger]:
    """Lightning loggers for ``names``, reopened where the run already has logs: the same
    TensorBoard directory, the same MLflow run, the CSV rows kept, the same wandb run id."""
    names = list(dict.fromkeys(names))
    check_trackers(names)
    logs = logs_dir(run_dir)
    run_name = RunDir(run_dir).path.resolve().name
    out: list[Logger] = []
    for name in names:
        if name == "csv":
            out.append(_open_csv(logs))
        elif name == "tensorboard":
            from lightning.pytorch.loggers import TensorBoardLogger

            # no hp_metric placeholder: the run's scores arrive as eval/* metrics
            out.append(TensorBoardLogger(save_dir=logs, name="tensorboard", version="",
                                         default_hp_metric=False))
        elif name == "mlflow":
            from lightning.pytorch.loggers import MLFlowLogger

            uri = mlflow_uri(run_dir)
            out.append(MLFlowLogger(experiment_name=MLFLOW_EXPERIMENT, run_name=run_name,
                                    tracking_uri=uri, run_id=_existing_mlflow_run(uri)))
        elif name == "wandb":
            from lightning.pytorch.loggers import WandbLogger

            out.append(WandbLogger(save_dir=str(logs), offline=True, project="selfsup",
                                   name=run_name, id=_wandb_id(logs), resume="allow"))
    return out


def _open_csv(logs: Path) -> Logger:
    """Lightning's CSVLogger deletes an existing ``metrics.csv`` when it opens its directory;
    a resumed run or a later evaluation must append instead, so the old rows are read first
    and written back at once."""
    from lightning.pytorch.loggers import CSVLogger

    # every row straight to the file (Lightning's default holds 100 steps in memory)
    logger = CSVLogger(save_dir=logs, name="csv", version="", flush_logs_every_n_steps=1)
    if rank_zero_only.rank != 0:
        return logger
    path = Path(logger.log_dir) / "metrics.csv"
    rows = []
    if path.is_file():
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
        writer = logger.experiment
    if rows:
        writer.metrics = rows + writer.metrics
        writer.save()
    return logger


@rank_zero_only
def _existing_mlflow_run(uri: str) -> str | None:
    """The run already in this run directory's store (one per run directory), if any."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(MLFLOW_EXPERIMENT)
    if experiment is None:
        return None
    runs = client.search_runs([experiment.experiment_id], max_results=1,
                              order_by=["attributes.start_time ASC"])
    return runs[0].info.run_id if runs else None


def _wandb_id(logs: Path) -> str:
    """One wandb run id per run directory, kept beside its offline runs."""
    path = logs / "wandb" / "selfsup-run-id"
    if path.is_file():
        return path.read_text().strip()
    run_id = uuid.uuid4().hex[:12]
    if rank_zero_only.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(run_id)
    return run_id


def numeric(row: Mapping[str, Any], skip: Iterable[str] = ("step",)) -> dict[str, float]:
    """The numbers of a metrics row (booleans as 0/1), without ``skip`` and without Nones."""
    skip = set(skip)
    return {k: float(v) for k, v in row.items() if k not in skip and isinstance(v, (int, float))}


def log_row(loggers: Iterable[Logger], row: Mapping[str, Any], step: int) -> None:
    """Log the numbers of one ``metrics.jsonl`` row at ``step`` to every logger."""
    values = numeric(row)
    if not values:
        return
    for logger in loggers:
        logger.log_metrics(values, step=step)


def log_config(loggers: Iterable[Logger], config: Mapping[str, Any]) -> None:
    """The resolved config as the trackers' hyperparameters (MLflow params, TensorBoard
    hparams): what tells runs apart when comparing them in the tracker."""
    for logger in loggers:
        logger.log_hyperparams(dict(config))


def flatten_results(results: Mapping[str, Any], prefix: str = EVAL_PREFIX) -> dict[str, float]:
    """The scalar results of ``eval.json`` as ``eval/<key>`` metrics; nested tables (layers,
    fine-tuning) as ``eval/<table>/<key>``, lists and strings left out."""
    out: dict[str, float] = {}
    for key, value in results.items():
        if isinstance(value, Mapping):
            out |= flatten_results(value, f"{prefix}{key}/")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out


def log_results(run_dir: str | Path, results: Mapping[str, Any], prefix: str = EVAL_PREFIX
                ) -> None:
    """Log probe results to the trackers the run's config names, at the run's last step.

    It is called where ``eval.json`` is written (`selfsup.api.record_results`), so the results
    of ``selfsup pretrain`` and of a later ``selfsup evaluate``/``finetune`` reach the same
    trackers. A tracker that fails costs a warning, never the results: eval.json is written.
    """
    import json

    import yaml

    run = RunDir(run_dir)
    try:
        names = (yaml.safe_load(run.config.read_text()) or {}).get("loggers") or []
        step = int(json.loads(run.meta.read_text()).get("steps", 0)) if run.meta.is_file() else 0
    except (OSError, ValueError, yaml.YAMLError, AttributeError):
        return
    metrics = flatten_results(results, prefix)
    if not names or not metrics:
        return
    try:
        with warnings.catch_warnings():
            # in the process that trained, wandb's run is still open and is the one to reuse
            warnings.filterwarnings("ignore", message=".*wandb run already in progress.*")
            loggers = open_loggers(run_dir, names)
        for logger in loggers:
            logger.log_metrics(metrics, step=step)
            logger.finalize("success")
    except Exception as e:  # eval.json holds the results; a tracker must not lose them
        log.warning("selfsup: probe results not logged to %s (%s: %s); they are in %s",
                    ", ".join(names), type(e).__name__, e, run.eval)
