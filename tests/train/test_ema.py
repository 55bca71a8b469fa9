"""--ema: the average by hand, the exported encoder is the average with the online weights kept
and scored beside it, a resumed run continues the same average, and bad settings are refused."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import selfsup
from selfsup.rundir import load_checkpoint_safely
from selfsup.train import ConfigError
from selfsup.train.ema import EncoderEMA


class Steps:
    """A stand-in trainer: only ``global_step`` is read."""

    def __init__(self):
        self.global_step = 0


def test_average_by_hand_once_per_optimizer_step():
    net = torch.nn.Linear(1, 1, bias=False)
    ema = EncoderEMA(net, decay=0.5)
    trainer = Steps()
    assert ema.averaged() is net  # no step yet
    for step, w in enumerate([2.0, 4.0, 8.0], start=1):
        net.weight.data.fill_(w)
        trainer.global_step = step
        ema.on_train_batch_end(trainer, None, None, None, 0)
        ema.on_train_batch_end(trainer, None, None, None, 0)  # same step: no second update
    # the first update copies (2), then 0.5 * 2 + 0.5 * 4 = 3, then 0.5 * 3 + 0.5 * 8 = 5.5
    assert ema.averaged().weight.item() == pytest.approx(5.5)
    assert net.weight.item() == 8.0
    restored = EncoderEMA(torch.nn.Linear(1, 1, bias=False), decay=0.5)
    restored.load_state_dict(ema.state_dict())
    assert restored.averaged().weight.item() == pytest.approx(5.5) and restored.updated_at == 3
    with pytest.raises(ValueError, match="decay"):
        EncoderEMA(net, decay=1.0)


def test_run_exports_the_average_and_scores_both(tmp_path):
    run = selfsup.pretrain("simclr", "digits", epochs=1, batch_size=128, precision="32",
                           run_dir=str(tmp_path / "run"), seed=0, ema=0.9, progress=False)
    online = load_file(tmp_path / "run" / "online-encoder" / "encoder.safetensors")
    average = load_file(tmp_path / "run" / "encoder.safetensors")
    assert online.keys() == average.keys()
    assert any(not torch.equal(online[k], average[k]) for k in online)
    meta = json.loads((tmp_path / "run" / "encoder.json").read_text())
    assert meta["weights"] == "ema 0.9"
    saved = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert set(saved["online_encoder"]) == {"knn_top1", "linear_top1"}
    assert run.eval["online_encoder"] == saved["online_encoder"]


def test_checkpoints_carry_the_average_and_resume_continues_it(tmp_path):
    """The average's state rides in last.ckpt, and a resumed run keeps averaging from it (the
    kill/resume test, marked slow, checks the resumed average equals the uninterrupted one)."""
    run_dir = tmp_path / "run"
    selfsup.pretrain("simclr", "digits", epochs=1, batch_size=128, precision="32", seed=0,
                     ema=0.8, run_dir=str(run_dir), evaluate_after=False)
    state = ema_state(run_dir)
    assert int(state["average"]["n_averaged"]) == state["updated_at"] == 14
    exported = load_file(run_dir / "encoder.safetensors")
    for k, v in exported.items():
        torch.testing.assert_close(state["average"][f"module.{k}"], v, rtol=0, atol=0)
    selfsup.pretrain(resume=str(run_dir), epochs=2, evaluate_after=False)
    state = ema_state(run_dir)
    assert int(state["average"]["n_averaged"]) == state["updated_at"] == 28


def ema_state(run_dir):
    ckpt = load_checkpoint_safely(run_dir / "checkpoints" / "last.ckpt")
    return next(v for k, v in ckpt["callbacks"].items() if "EncoderEMA" in k)


@pytest.mark.parametrize(("options", "message"), [
    ({"ema": 1.0}, "ema is a decay per step"),
    ({"ema": 0.99, "select_by": "rankme"}, "give one"),
])
def test_bad_settings_are_refused(tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        selfsup.pretrain("simclr", "digits", epochs=1, run_dir=str(tmp_path / "r"), **options)
