"""benchmarks/masked_table.py fine-tunes one (fraction, arm, seed) per cached call, so a study
cut short resumes where it stopped, and pools the calls into the table's rows."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # for its results_md
_spec = importlib.util.spec_from_file_location("masked_table", BENCHMARKS / "masked_table.py")
masked_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(masked_table)


def fake_finetune(calls: list[tuple]):
    """Stands in for selfsup.finetune: top-1 = fraction + seed / 100 (+ 0.5 pretrained)."""
    def finetune(run_dir, *, labels, seeds, steps, layer_decay, baseline, pretrained, progress):
        (seed,) = seeds
        fraction = float(labels.strip("%")) / 100
        calls.append((labels, seed, "pretrained" if pretrained else "scratch", layer_decay))
        arm = {"mean": 0.0, "std": 0.0, "runs": [fraction + seed / 100 + 0.5 * pretrained]}
        row = {"fraction": fraction, "n_labels": int(1000 * fraction),
               "pretrained": arm if pretrained else None, "scratch": arm if baseline else None}
        return {"budget": {"steps": steps}, "rows": [row]}
    return finetune


def test_finetuned_calls_once_per_fraction_arm_and_seed_and_reuses_them(tmp_path, monkeypatch):
    calls: list[tuple] = []
    monkeypatch.setattr(masked_table.selfsup, "finetune", fake_finetune(calls))
    masked_table.RunDir(tmp_path).weights.touch()  # the run's encoder, to fine-tune
    out = masked_table.finetuned(tmp_path, "10%,100%", 7, [2], [0, 1], 0.75)
    assert calls == [("10%", 2, "pretrained", 0.75), ("10%", 0, "scratch", None),
                     ("10%", 1, "scratch", None), ("100%", 2, "pretrained", 0.75),
                     ("100%", 0, "scratch", None), ("100%", 1, "scratch", None)]
    ten, full = out["rows"]
    assert (ten["fraction"], ten["n_labels"], full["n_labels"]) == (0.1, 100, 1000)
    # pretrained at seed 2: 0.1 + 0.02 + 0.5; scratch at seeds 0, 1: 0.10 and 0.11
    assert ten["pretrained"]["runs"] == [pytest.approx(0.62)]
    assert ten["scratch"]["mean"] == pytest.approx(0.105)
    assert ten["scratch"]["std"] == pytest.approx(0.005)  # population std, as selfsup's
    assert out["budget"] == {"steps": 7}
    # a second sitting trains nothing; another layer decay is another pretrained arm
    calls.clear()
    assert masked_table.finetuned(tmp_path, "10%,100%", 7, [2], [0, 1], 0.75) == out
    assert calls == []
    masked_table.finetuned(tmp_path, "10%", 7, [2], [], None)
    assert calls == [("10%", 2, "pretrained", None)]


def test_a_run_lost_with_its_checkout_is_read_from_the_ledger_not_rerun(tmp_path, monkeypatch):
    calls: list[tuple] = []
    monkeypatch.setattr(masked_table.selfsup, "finetune", fake_finetune(calls))
    monkeypatch.setattr(masked_table.selfsup, "evaluate",
                        lambda run_dir, data, protocols: {"prompt_seg": {"miou": 0.5}})
    run_dir = tmp_path / "runs" / "mae-vit_tiny-s1"
    summary = {"method": "mae", "backbone": "vit_tiny", "steps": 9, "knn": 0.7, "linear": 0.8,
               "rankme": 3.0, "images_per_s": 100.0}
    pretrained: list[Path] = []

    def pretrain() -> Path:  # stands in for pretrain_or_reuse: writes the run's files
        pretrained.append(run_dir)
        run_dir.mkdir(parents=True)
        masked_table.RunDir(run_dir).weights.touch()
        return run_dir

    monkeypatch.setattr(masked_table, "summary", lambda path: dict(summary))
    path = tmp_path / "ledger.jsonl"
    ledger = masked_table.Ledger(path)
    first = masked_table.record(run_dir, pretrain, "10%", [1], [], 7, None, "digits", ledger)
    assert pretrained == [run_dir] and calls == [("10%", 1, "pretrained", None)]
    assert first["knn"] == 0.7 and first["prompt_miou"] == 0.5
    assert first["finetune"][0]["pretrained"]["runs"] == [pytest.approx(0.61)]
    keys = [line.split('"')[3] for line in path.read_text().splitlines()]
    assert keys == ["mae-vit_tiny-s1/summary.json", "mae-vit_tiny-s1/prompt-seg.json",
                    "mae-vit_tiny-s1/finetune-pretrained-10-7-s1.json"]

    # another checkout: the run directory is gone, the committed ledger is not
    for f in run_dir.iterdir():
        f.unlink()
    run_dir.rmdir()
    pretrained.clear()
    calls.clear()
    again = masked_table.record(run_dir, pretrain, "10%", [1], [], 7, None, "digits",
                                masked_table.Ledger(path))
    assert again == first and pretrained == [] and calls == []
    assert len(path.read_text().splitlines()) == 3  # nothing written twice
    # a result the ledger lacks cannot come from an encoder that is gone: a clear error
    with pytest.raises(SystemExit, match="not in the ledger"):
        masked_table.record(run_dir, pretrain, "1%", [1], [], 7, None, "digits",
                            masked_table.Ledger(path))


def test_each_method_runs_on_its_recipes_backbone():
    assert masked_table.runs(["mae", "selfie"], [0, 1], ["vit_tiny"], 0) == [
        ("mae", "vit_tiny", 0), ("mae", "vit_tiny", 1), ("selfie", "resnet8w32", 0),
        ("selfie", "resnet8w32", 1), ("simclr", "vit_tiny", 0)]
