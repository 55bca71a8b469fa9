import json
import shutil

import pytest

from selfsup.cli import main
from selfsup.report import compare_rows, markdown_table


def test_compare_one_row_per_run(digits_run, tmp_path, capsys):
    # a second run: the same directory under another name, with other scores
    other = tmp_path / "barlow"
    shutil.copytree(digits_run.dir, other)
    ev = json.loads((other / "eval.json").read_text())
    ev.update(knn_top1=0.5, linear_top1=0.625, nb_top1=0.25, rankme=12.34, eval_seconds=30)
    ev["training"] |= {"compute_flops": 2.5e11, "train_seconds": 90}
    (other / "eval.json").write_text(json.dumps(ev))
    out = tmp_path / "runs.md"
    assert main(["compare", str(digits_run.dir), str(other), "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0].startswith("| run | method | backbone | budget | steps | epochs | compute "
                               "| train min | eval min | kNN %")
    assert len(lines) == 2 + 2  # header, separator, one row per run
    assert lines[3] == "| barlow | simclr | resnet10w32 | 3 epochs | 42 | 3 | 250 GFLOP | 1.5 | " \
                       "0.5 | 50.00 | 62.50 | 25.00 | 12.3 |"
    printed = capsys.readouterr().out
    assert "barlow" in printed and "62.50" in printed


def test_compare_rows_and_missing_values(digits_run, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.yaml").write_text("method: barlow_twins\nbackbone: default\n"
                                      "time_budget: 10m\n")
    rows = compare_rows([bare])
    assert rows == [{"run": "bare", "method": "barlow_twins", "backbone": "default",
                     "budget": "10m", "steps": None, "epochs": None, "compute": None,
                     "train_s": None, "eval_s": None, "knn": None, "linear": None, "nb": None,
                     "rankme": None, "mlp": None, "gbt": None}]
    assert markdown_table(rows).splitlines()[2].endswith("| – | – | – | – | – |")
    with pytest.raises(FileNotFoundError, match="selfsup run"):
        compare_rows([tmp_path / "nothing"])
