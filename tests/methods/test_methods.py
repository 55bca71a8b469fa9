"""Every registered method trains end to end on digits and beats chance by a clear margin."""

import json
import math

import pytest

import selfsup
from selfsup.methods import METHODS, get_method


def test_registry_has_paper_and_family():
    for name, cls in METHODS.items():
        assert cls.info.name == name and cls.info.paper and cls.info.family


def test_unknown_method_lists_valid():
    with pytest.raises(ValueError, match="simclr"):
        get_method("simclr2")


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_trains_and_beats_chance(name, tmp_path):
    run = selfsup.pretrain(name, "digits", epochs=4, batch_size=128, precision="32",
                           run_dir=str(tmp_path / name), seed=0)  # each method's own backbone
    # 10 classes: chance is 10%
    assert run.eval["knn_top1"] > 0.5, run.eval
    assert run.steps == 4 * (1797 // 128)  # all 1797 digits pretrain; the holdout is for eval
    assert (tmp_path / name / "encoder.safetensors").is_file()
    assert (tmp_path / name / "checkpoints" / "last.ckpt").is_file()
    rows = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    assert steps and all({"step", "epoch", "loss", "lr", "images_per_s"} <= set(r) for r in steps)
    assert all(math.isfinite(r["loss"]) for r in steps)
