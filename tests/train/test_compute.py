"""Budgets that travel between machines: --steps and --compute, counted on the real step,
recorded in eval.json and metrics.jsonl, extended on resume."""

import json

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn

import selfsup
from selfsup.train.compute import ComputeMeter
from selfsup.train.config import ConfigError, PretrainConfig, format_flops, parse_compute

# a linear layer of 10 -> 4 on a batch of 8: forward 2*8*10*4 = 640 multiply-adds counted as
# FLOPs, backward only the weight's gradient (the input needs none): 640 more
LINEAR_STEP_FLOPS = 1280


class LinearModule(L.LightningModule):
    """A training step whose FLOPs are counted by hand; from progress 1/2 on (``halve_at``) it
    trains on half the batch, as a step whose cost changes (progressive resizing) does."""

    def __init__(self, total_steps: int, halve_at: float = 2.0):
        super().__init__()
        self.layer = nn.Linear(10, 4, bias=False)
        self.total_steps, self.halve_at = total_steps, halve_at
        self.compute_flops = 0.0

    def training_step(self, batch, batch_idx):
        x = batch[0]
        if self.global_step / self.total_steps >= self.halve_at:
            x = x[: len(x) // 2]
        return self.layer(x).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(module: LinearModule, meter: ComputeMeter, max_steps: int = -1) -> L.Trainer:
    data = torch.utils.data.TensorDataset(torch.randn(80, 10))
    trainer = L.Trainer(max_steps=max_steps, max_epochs=-1 if max_steps < 0 else None,
                        callbacks=[meter], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=8))
    return trainer


def test_parse_compute_units_and_errors():
    assert parse_compute("100tflop") == 1e14
    assert parse_compute("2.5pflop") == 2.5e15
    assert parse_compute("3e9") == 3e9 and parse_compute(5) == 5.0
    assert format_flops(1.234e14) == "123.4 TFLOP"
    for bad in ("ten tflop", "5 tflops", "-1tflop", "0"):
        with pytest.raises(ConfigError):
            parse_compute(bad)


def test_one_budget_per_run():
    with pytest.raises(ConfigError, match="one budget.*--epochs, --steps"):
        PretrainConfig(method="simclr", data="digits", epochs=1, steps=5).validate()
    with pytest.raises(ConfigError, match="steps must be >= 1"):
        PretrainConfig(method="simclr", data="digits", steps=0).validate()
    assert PretrainConfig(compute="1tflop").budget == "1tflop"


def test_meter_counts_the_real_step_by_hand():
    meter = ComputeMeter()
    trainer = fit(LinearModule(total_steps=3), meter, max_steps=3)
    assert trainer.global_step == 3
    assert meter.per_step == LINEAR_STEP_FLOPS
    assert meter.spent == 3 * LINEAR_STEP_FLOPS
    assert len(meter.counts) == 1  # the cost never changed: counted once


def test_meter_counts_again_when_the_step_cost_changes():
    def cost(progress):  # the views' model of a step's cost: half from progress 1/2 on
        return np.where(np.asarray(progress) >= 0.5, 0.5, 1.0)

    meter = ComputeMeter(cost=cost)
    fit(LinearModule(total_steps=4, halve_at=0.5), meter, max_steps=4)
    assert [c["flops"] for c in meter.counts] == [LINEAR_STEP_FLOPS, LINEAR_STEP_FLOPS / 2]
    assert meter.spent == 2 * LINEAR_STEP_FLOPS + 2 * LINEAR_STEP_FLOPS / 2


def test_compute_budget_stops_and_sizes_the_schedule():
    module = LinearModule(total_steps=100)  # provisional, as a run's before the first count
    meter = ComputeMeter(budget_flops=5.5 * LINEAR_STEP_FLOPS)
    trainer = fit(module, meter)
    # the sixth step would pass the budget: five fit, and the schedule was sized to them
    assert trainer.global_step == 5 and module.total_steps == 5
    assert meter.spent == 5 * LINEAR_STEP_FLOPS


def test_steps_budget_is_recorded_and_extends_on_resume(tmp_path):
    run_dir = tmp_path / "run"
    opts = dict(batch_size=64, precision="32", backbone="resnet10w32", evaluate_after=False,
                rankme_samples=0, log_every=1)
    run = selfsup.pretrain("simclr", "digits", run_dir=str(run_dir), steps=5, **opts)
    assert run.steps == 5
    trained = json.loads((run_dir / "eval.json").read_text())["training"]
    assert trained["budget"] == "5 steps" and trained["steps"] == 5
    assert trained["epochs"] == round(5 / (1797 // 64), 3)
    per_step = trained["flops_per_step"]
    assert per_step > 1e8 and trained["compute_flops"] == pytest.approx(5 * per_step)
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in rows if "loss" in r]
    assert logged[-1]["compute_flops"] == pytest.approx(logged[-1]["step"] * per_step, rel=1e-5)

    with pytest.raises(ConfigError, match="trained with --steps; extend that one"):
        selfsup.pretrain(resume=str(run_dir), evaluate_after=False, epochs=3)
    run = selfsup.pretrain(resume=str(run_dir), evaluate_after=False, steps=8)
    assert run.steps == 8
    trained = json.loads((run_dir / "eval.json").read_text())["training"]
    # the compute of the first session travels in the checkpoint
    assert trained["compute_flops"] == pytest.approx(8 * per_step)


def test_a_step_that_raises_leaves_no_counter_behind():
    from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

    class Raising(LinearModule):
        def training_step(self, batch, batch_idx):
            raise RuntimeError("boom")  # on the first step, while it is being counted

    with pytest.raises(RuntimeError, match="boom"):
        fit(Raising(total_steps=3), ComputeMeter(), max_steps=3)
    assert not _get_current_dispatch_mode_stack()


def test_progressive_resizing_is_counted_again_and_a_compute_budget_holds(tmp_path):
    # crops grow from half the side to the full one late in the run: the step's FLOPs change,
    # and the meter counts them again when the views say so
    opts = dict(batch_size=64, precision="32", backbone="resnet10w32", evaluate_after=False,
                rankme_samples=0, views={"min_crop_ratio": 0.5})
    run = selfsup.pretrain("simclr", "fashion-mnist", run_dir=str(tmp_path / "steps"),
                           steps=40, **opts)
    counts = run.training["flop_counts"]
    assert len(counts) >= 2 and counts[0]["step"] == 0
    assert counts[-1]["flops"] > counts[0]["flops"]  # larger crops at the end
    spent = sum(c["flops"] * (end - c["step"]) for c, end in
                zip(counts, [c["step"] for c in counts[1:]] + [40], strict=True))
    assert run.training["compute_flops"] == pytest.approx(spent)
    # the same run under a compute budget of what it spent: about the same steps, never more
    budget = run.training["compute_flops"]
    run = selfsup.pretrain("simclr", "fashion-mnist", run_dir=str(tmp_path / "compute"),
                           compute=budget, **opts)
    assert run.training["compute_flops"] <= budget
    assert 30 <= run.steps <= 40, run.training
