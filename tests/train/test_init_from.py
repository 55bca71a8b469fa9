"""Continual pretraining: --init-from starts a new stage from a run's weights; the infinite
schedule continues on its constant phase, the repeated cosine warms up again."""

import json

import pytest
import torch

import selfsup
from selfsup.methods.simclr import SimCLR
from selfsup.rundir import load_checkpoint_safely
from selfsup.train import ConfigError
from selfsup.train import run as run_module

STAGE = {"epochs": 2, "batch_size": 64, "precision": "32", "log_every": 1,
         "evaluate_after": False}
BASE_LR = SimCLR.recipe.lr * 64 / 256


def lrs(run_dir) -> dict[int, float]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["lr"] for r in rows if "lr" in r}


@pytest.fixture(scope="module")
def first_stage(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("stage1") / "run"
    selfsup.pretrain("simclr", "digits", classes="0-4", schedule="infinite",
                     run_dir=str(run_dir), **STAGE)
    return run_dir


def test_infinite_stage_anneals_and_keeps_its_constant_phase(first_stage):
    last = load_checkpoint_safely(first_stage / "checkpoints" / "last.ckpt")
    total = last["global_step"]
    assert total > 20  # two epochs of digits 0-4
    constant = load_checkpoint_safely(first_stage / "checkpoints" / "constant.ckpt")
    assert constant["global_step"] == total - round(0.1 * total)  # where the anneal begins
    lr = lrs(first_stage)
    assert lr[constant["global_step"]] == pytest.approx(0.5 * BASE_LR)
    assert lr[total] < 0.5 * BASE_LR / 5  # annealed toward zero by the end


def test_infinite_continues_from_the_constant_phase(first_stage, tmp_path, monkeypatch):
    loaded = {}
    original = run_module.load_weights

    def spy(module, state, path):
        original(module, state, path)
        loaded["path"], loaded["state"] = path, {k: v.clone()
                                                 for k, v in module.state_dict().items()}

    monkeypatch.setattr(run_module, "load_weights", spy)
    run_dir = tmp_path / "stage2"
    selfsup.pretrain("simclr", "digits", classes="5-9", schedule="infinite",
                     init_from=str(first_stage), run_dir=str(run_dir), **STAGE)
    assert loaded["path"].name == "constant.ckpt"
    saved = load_checkpoint_safely(loaded["path"])["state_dict"]
    assert all(torch.equal(loaded["state"][k], v) for k, v in saved.items())
    # no re-warming: the first step already runs at the constant lr
    assert lrs(run_dir)[1] == pytest.approx(0.5 * BASE_LR)
    # the encoder keeps the first stage's preprocessing, whatever the new data's statistics
    first = json.loads((first_stage / "encoder.json").read_text())["preprocessing"]
    assert json.loads((run_dir / "encoder.json").read_text())["preprocessing"] == first


def test_repeated_cosine_warms_up_again(first_stage, tmp_path):
    run_dir = tmp_path / "stage2"
    selfsup.pretrain("simclr", "digits", classes="5-9", schedule="repeated-cosine",
                     init_from=str(first_stage), run_dir=str(run_dir), warmup_fraction=0.25,
                     **STAGE)
    lr = lrs(run_dir)
    warmup = round(0.25 * max(lr))
    assert lr[1] == pytest.approx(BASE_LR * 2 / warmup)  # climbing again from near zero
    assert lr[warmup] == pytest.approx(BASE_LR)


def test_init_from_another_backbone_is_refused(first_stage, tmp_path):
    with pytest.raises(ConfigError, match="do not fit this method and backbone"):
        selfsup.pretrain("simclr", "digits", backbone="resnet10", init_from=str(first_stage),
                         run_dir=str(tmp_path / "x"), **STAGE)


def test_init_from_a_run_without_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="has no checkpoints/last.ckpt"):
        selfsup.pretrain("simclr", "digits", init_from=str(tmp_path),
                         run_dir=str(tmp_path / "x"), **STAGE)
