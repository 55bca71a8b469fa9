"""Table encoders through the evaluation suite, the products' attachments and the CLI: the
table probes beside the usual ones, a regression target's ridge probe and skipped class
probes, and the collapse check that no longer misfires on flattened tokens."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import selfsup
from selfsup.backbones import Preprocessing, TablePreprocessing, build_table_backbone
from selfsup.cli import main
from selfsup.console import print_table_probes
from selfsup.data import load_source
from selfsup.evaluate.products import get_product
from selfsup.evaluate.suite import evaluate_encoder

TABLE = ("mlp", "raw_mlp", "gbt")


def table_encoder(source) -> nn.Module:
    torch.manual_seed(0)
    pre = TablePreprocessing.fit(source.train.images, source.table)
    return build_table_backbone("ft_transformer", pre, dim=16, depth=1, heads=2)


@pytest.fixture
def regression_csv(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    y = 10 + 3 * x[:, 0] - 2 * x[:, 1] * x[:, 2] + 0.1 * rng.normal(size=300)
    colour = np.array(["red", "green", "blue"])[rng.integers(0, 3, 300)]
    path = tmp_path / "reg.csv"
    lines = ["a,b,c,d,colour,y"] + [",".join([*(f"{v:.4f}" for v in row), col, f"{t:.4f}"])
                                    for row, col, t in zip(x, colour, y, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_class_table_gets_the_table_probes_and_is_not_called_collapsed():
    source = load_source("wine")
    encoder = table_encoder(source)  # untrained: flattened tokens, (1 + 13) x 16 = 224 dims
    ev = evaluate_encoder(encoder, source, ["knn", "linear", "rankme", "raw_knn", *TABLE])
    assert ev["task"] == "classification" and ev["feature_dim"] == 224
    assert not ev["collapse"]["collapsed"], ev["collapse"]["reasons"]
    t = ev["table_probes"]
    assert list(t["rows"]) == list(TABLE) and t["metric"] == "top1"
    assert [r["fraction"] for r in t["rows"]["gbt"]] == [1.0, 0.1]
    assert [len(r["runs"]) for r in t["rows"]["mlp"]] == [1, 3]
    assert t["rows"]["raw_mlp"][0]["mean"] > 0.85 and t["rows"]["gbt"][0]["mean"] > 0.85
    assert "table_probes" in ev["seconds"] and "skipped" not in ev


def test_a_regression_table_skips_the_class_probes(regression_csv):
    source = load_source(str(regression_csv), target="y")
    encoder = table_encoder(source)
    ev = evaluate_encoder(encoder, source, ["knn", "linear", "nb", "fewshot", "layers",
                                            "rankme", "raw_knn", *TABLE])
    assert ev["task"] == "regression" and ev["split"] == "random 20% holdout"
    assert set(ev["skipped"]) == {"knn", "nb", "fewshot", "layers", "raw_knn"}
    assert "regression target" in ev["skipped"]["knn"]
    assert not any(k.endswith("_top1") for k in ev)
    assert ev["linear_rmse"] > 0 and ev["linear"]["alpha"] in (0.1, 1.0, 10.0, 100.0, 1000.0)
    t = ev["table_probes"]
    assert t["task"] == "regression" and t["metric"] == "rmse"
    gbt_full = t["rows"]["gbt"][0]
    # y's std is about 3.6: the trees on raw features must do far better than the mean
    assert gbt_full["mean"] < 2.0 and gbt_full["r2_mean"] > 0.7 and "r2_runs" in gbt_full


def test_an_image_encoder_skips_the_table_probes():
    class Flat(nn.Module):
        preprocessing = Preprocessing(8, 1, (0.5,), (0.25,))

        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 8)

        def forward(self, x):
            return self.fc(x.flatten(1))

    ev = evaluate_encoder(Flat(), load_source("digits"), ["knn", "gbt"])
    assert ev["skipped"] == {"gbt": "a table encoder's probe"} and "knn_top1" in ev


def test_the_encoder_product_attaches_the_table_probes_to_tables_only():
    product = get_product("encoder")
    assert product.attached_for("table") == ("rankme", "raw_knn", *TABLE)
    assert product.attached_for("image") == ("rankme", "raw_knn")
    assert set(TABLE) <= set(product.protocols)


def test_printed_as_one_table(capsys):
    rows = [{"fraction": 1.0, "n_labels": 4435, "mean": 0.9, "std": 0.0, "runs": [0.9]},
            {"fraction": 0.1, "n_labels": 444, "mean": 0.85, "std": 0.01,
             "runs": [0.84, 0.85, 0.86]}]
    print_table_probes({"data": "satimage", "table_probes": {
        "task": "classification", "seeds": [0, 1, 2], "rows": {"mlp": rows, "gbt": rows}}})
    out = capsys.readouterr().out
    assert "table probes on satimage" in out and "100% (4435 labels)" in out
    assert "10% (444 labels)" in out and "MLP on embeddings" in out
    assert "GBDT on raw features" in out and "85.00% ± 1.00" in out and "90.00%" in out


def test_cli_pretrains_and_evaluates_a_regression_table(regression_csv, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["pretrain", "--data", str(regression_csv), "--target", "y", "--method",
                 "tjepa", "--epochs", "2", "--batch-size", "64", "--run-dir", str(run_dir),
                 "--backbone-arg", "dim=16", "--backbone-arg", "depth=1", "--no-progress",
                 "--no-report"]) == 0
    out = capsys.readouterr().out
    assert "table probes on" in out and "RMSE (R²)" in out and "linear (ridge) RMSE" in out
    assert "no labels in" not in out
    ev = json.loads((run_dir / "eval.json").read_text())
    assert ev["task"] == "regression" and set(ev["table_probes"]["rows"]) == set(TABLE)
    assert ev["preprocessing"]["task"] == "regression" and ev["skipped"]["raw_knn"]
    assert main(["evaluate", str(run_dir), "--protocol", "linear,gbt"]) == 0
    out = capsys.readouterr().out
    assert "linear_rmse" in out and "GBDT on raw features" in out
    with pytest.raises(ValueError, match="fine-tuning trains a class head and its target is "
                                         "a regression target"):
        selfsup.finetune(run_dir)
    written = selfsup.embed(run_dir, tmp_path / "emb.npy")
    labels = np.load(written[1])  # the target's values, not truncated to integers
    assert labels.dtype == np.float64 and len(labels) == 300 and (labels % 1 != 0).any()
