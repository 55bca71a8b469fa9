"""Experiment trackers (``--logger``): the same step metrics as metrics.jsonl and the probe
results of eval.json, read back from the TensorBoard event files, the MLflow file store and the
CSV file."""

from __future__ import annotations

import csv
import importlib.util
import json

import pytest

import selfsup
from selfsup.cli import _config_from_args, _parser
from selfsup.train import ConfigError, PretrainConfig, trackers
from selfsup.train.trackers import flatten_results, log_results, mlflow_uri


def test_unknown_logger_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="valid: csv, tensorboard, mlflow, wandb"):
        PretrainConfig(loggers=["neptune"]).validate()
    with pytest.raises(ConfigError, match="loggers must be list"):
        PretrainConfig(loggers="tensorboard").validate()


def test_missing_tracker_package_is_one_line_naming_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(trackers.importlib.util, "find_spec",
                        lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError, match=r"--logger wandb needs the wandb package: "
                       r"pip install wandb") as e:
        PretrainConfig(loggers=["wandb"]).validate()
    assert "\n" not in str(e.value)


def test_cli_logger_flag_is_repeatable():
    args = _parser().parse_args(["pretrain", "--logger", "csv", "--logger", "tensorboard"])
    assert _config_from_args(args)["loggers"] == ["csv", "tensorboard"]
    assert "loggers" not in _config_from_args(_parser().parse_args(["pretrain"]))


def test_flatten_results_keeps_scalars_only():
    flat = flatten_results({"knn_top1": 0.9, "data": "digits", "preprocessing_overridden": False,
                            "layers": {"layer4": {"knn_top1": 0.8, "dim": 256}},
                            "fewshot": {"linear": [{"fraction": 0.1}]}})
    assert flat == {"eval/knn_top1": 0.9, "eval/layers/layer4/knn_top1": 0.8,
                    "eval/layers/layer4/dim": 256.0}


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    """SimCLR on digits, one epoch, logged to csv, TensorBoard and MLflow (~15 s)."""
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    run_dir = tmp_path_factory.mktemp("runs") / "tracked"
    run = selfsup.pretrain("simclr", "digits", epochs=1, batch_size=64, precision="32",
                           backbone="resnet10w32", seed=0, run_dir=str(run_dir), log_every=5,
                           rankme_samples=128, eval_protocols=["knn"],
                           loggers=["csv", "tensorboard", "mlflow"])
    rows = [json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    return run, rows


def _by_step(rows: list[dict], key: str) -> dict[int, float]:
    return {r["step"]: r[key] for r in rows if r.get(key) is not None}


def test_tensorboard_holds_the_metrics_jsonl_values_and_the_probe_results(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, rows = tracked_run
    events = EventAccumulator(str(run.dir / "logs" / "tensorboard"))
    events.Reload()

    def scalars(tag: str) -> dict[int, float]:
        return {e.step: e.value for e in events.Scalars(tag)}

    loss = _by_step(rows, "loss")
    assert len(loss) >= 3
    assert scalars("loss") == loss  # float32 losses, stored exactly
    for key in ("lr", "images_per_s", "rankme"):
        expected = _by_step(rows, key)
        assert expected and scalars(key) == pytest.approx(expected, rel=1e-6)  # float32 in TB
    knn = json.loads((run.dir / "eval.json").read_text())["knn_top1"]
    [(step, value)] = scalars("eval/knn_top1").items()
    assert value == pytest.approx(knn, rel=1e-6) and step == run.steps


def test_mlflow_file_store_holds_the_metrics_jsonl_values_and_the_probe_results(tracked_run):
    from mlflow.tracking import MlflowClient

    run, rows = tracked_run
    client = MlflowClient(tracking_uri=mlflow_uri(run.dir))
    experiment = client.get_experiment_by_name("selfsup")
    [mlrun] = client.search_runs([experiment.experiment_id])
    assert mlrun.info.run_name == "tracked" and mlrun.info.status == "FINISHED"

    def history(key: str) -> dict[int, float]:
        return {m.step: m.value for m in client.get_metric_history(mlrun.info.run_id, key)}

    for key in ("loss", "lr", "images_per_s", "rankme", "embedding_std"):
        assert history(key) == _by_step(rows, key), key  # doubles: exactly the same
    knn = json.loads((run.dir / "eval.json").read_text())["knn_top1"]
    assert history("eval/knn_top1") == {run.steps: knn}
    params = mlrun.data.params
    assert params["method"] == "simclr" and params["resolved/backbone"] == "resnet10w32"


def test_csv_and_a_later_evaluation_reach_the_same_trackers(tracked_run):
    from mlflow.tracking import MlflowClient

    run, rows = tracked_run
    path = run.dir / "logs" / "csv" / "metrics.csv"
    with path.open() as f:
        before = list(csv.DictReader(f))
    loss = {int(r["step"]): float(r["loss"]) for r in before if r.get("loss")}
    assert loss == _by_step(rows, "loss")
    assert any(r.get("eval/knn_top1") for r in before)
    # a later `selfsup evaluate` reopens them by run directory: the rows kept, one MLflow run
    log_results(run.dir, {"knn_top1": 0.5})
    with path.open() as f:
        after = list(csv.DictReader(f))
    assert len(after) == len(before) + 1 and after[-1]["eval/knn_top1"] == "0.5"
    client = MlflowClient(tracking_uri=mlflow_uri(run.dir))
    [mlrun] = client.search_runs([client.get_experiment_by_name("selfsup").experiment_id])
    assert [m.value for m in client.get_metric_history(mlrun.info.run_id, "eval/knn_top1")][-1] \
        == 0.5
