"""benchmarks/methods_table.py builds its table from finished runs without training any."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # for its results_md
_spec = importlib.util.spec_from_file_location("methods_table", BENCHMARKS / "methods_table.py")
methods_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(methods_table)


def finished_run(run_dir: Path, knn: float) -> None:
    run_dir.mkdir(parents=True)
    (run_dir / "eval.json").write_text(json.dumps(
        {"knn_top1": knn, "linear_top1": 0.9, "raw_pixels_knn_top1": 0.5, "rankme": 10.0}))
    (run_dir / "metrics.jsonl").write_text('{"step": 10}\n{"step": 20}\n')


def test_trained_only_reports_finished_runs_and_trains_nothing(tmp_path, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("--trained-only must not train")

    monkeypatch.setattr(methods_table.selfsup, "pretrain", no_training)
    finished_run(tmp_path / "simclr-s0", 0.8)
    finished_run(tmp_path / "simclr-s1", 0.7)
    finished_run(tmp_path / "simclr-views.min_crop_ratio=0.5-s0", 0.6)
    records = methods_table.main([
        "--methods", "simclr", "simclr[views.min_crop_ratio=0.5]", "barlow_twins",
        "--seeds", "0", "1", "2", "--root", str(tmp_path), "--no-append", "--trained-only"])
    assert [(r["method"], r["seed"]) for r in records] == [
        ("simclr", 0), ("simclr[views.min_crop_ratio=0.5]", 0), ("simclr", 1)]
    rows = methods_table.table(records, ["simclr", "simclr[views.min_crop_ratio=0.5]",
                                         "barlow_twins"])
    # by hand: (80 + 70) / 2 = 75, std of (80, 70) = 7.07; one seed has no std
    assert [row[:3] for row in rows] == [["simclr", 2, "75.00 ± 7.07"],
                                         ["simclr[views.min_crop_ratio=0.5]", 1, "60.00"]]
    assert rows[0][-1] == "20"  # steps: the last logged step


def test_ema_runs_get_a_row_for_their_online_weights(tmp_path):
    finished_run(tmp_path / "simclr-ema=0.99-s0", 0.8)
    ev = json.loads((tmp_path / "simclr-ema=0.99-s0" / "eval.json").read_text())
    ev["online_encoder"] = {"knn_top1": 0.75, "linear_top1": 0.85}
    (tmp_path / "simclr-ema=0.99-s0" / "eval.json").write_text(json.dumps(ev))
    records = methods_table.main(["--methods", "simclr[ema=0.99]", "--seeds", "0", "--root",
                                  str(tmp_path), "--no-append", "--trained-only"])
    rows = methods_table.table(records, ["simclr[ema=0.99]"])
    assert [row[:4] for row in rows] == [
        ["simclr[ema=0.99]", 1, "80.00", "90.00"],
        ["simclr[ema=0.99] (online weights)", 1, "75.00", "85.00"]]


def test_spec_values_may_be_lists():
    assert methods_table.parse_spec("simclr[views.crop_scale=[0.2,1.0]]") == (
        "simclr", {"views": {"crop_scale": [0.2, 1.0]}})
    assert methods_table.parse_spec("simclr[views.crop_scale=[0.3,1.0];ema=0.999]") == (
        "simclr", {"views": {"crop_scale": [0.3, 1.0]}, "ema": 0.999})
    assert methods_table.parse_spec("barlow_twins") == ("barlow_twins", {})


def test_epochs_train_equal_steps_instead_of_a_time_budget(tmp_path, monkeypatch):
    calls = []

    def fake_pretrain(method, data, **kwargs):
        calls.append((method, kwargs))
        finished_run(Path(kwargs["run_dir"]), 0.8)

    monkeypatch.setattr(methods_table.selfsup, "pretrain", fake_pretrain)
    monkeypatch.chdir(tmp_path)
    methods_table.main(["--methods", "simclr[views.solarize_p=0.0]", "--epochs", "8",
                        "--seeds", "0", "--data", "digits", "--no-append"])
    (method, kwargs), = calls
    assert method == "simclr" and kwargs["epochs"] == 8 and "time_budget" not in kwargs
    assert kwargs["views"] == {"solarize_p": 0.0}
    assert kwargs["run_dir"] == str(Path("runs/methods/digits-8ep/simclr-views.solarize_p=0.0-s0"))
