"""The RankMe monitor: metrics rows, the collapse warning, and RankMe-based selection."""

import json
import logging
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from selfsup.backbones import Preprocessing
from selfsup.rundir import load_checkpoint_safely
from selfsup.train.monitors import RankMeMonitor, probe_images


class RankKnob(nn.Module):
    """A fixed random projection of the pixels whose output keeps only ``rank`` dimensions."""

    def __init__(self, dim: int = 32):
        super().__init__()
        self.proj = nn.Linear(64, dim)
        self.rank = dim
        self.constant = False
        self.preprocessing = Preprocessing(8, 1, (0.5,), (0.25,))

    def forward(self, x):
        if self.constant:
            return torch.ones(x.shape[0], self.proj.out_features)
        z = self.proj(x.flatten(1))
        return z * (torch.arange(z.shape[1]) < self.rank)


def _trainer(saved: list, step: int = 0):
    t = SimpleNamespace(global_step=step, current_epoch=0, is_global_zero=True)
    t.save_checkpoint = lambda path, weights_only=False: saved.append((t.global_step, path))
    return t


def _images(n=256):
    return torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(0))


def test_collapse_warning_fires_once_on_a_constant_encoder(tmp_path, caplog):
    net = RankKnob()
    module = SimpleNamespace(method=SimpleNamespace(backbone=net, export=lambda: net))
    monitor = RankMeMonitor(_images(), tmp_path / "metrics.jsonl")
    trainer = _trainer([])
    with caplog.at_level(logging.WARNING, logger="selfsup"):
        for step in (10, 20):
            trainer.global_step = step
            monitor.on_train_epoch_end(trainer, module)
    assert not caplog.records, "a healthy (full-rank random) encoder raised a collapse warning"
    net.constant = True
    with caplog.at_level(logging.WARNING, logger="selfsup"):
        for step in (30, 40):
            trainer.global_step = step
            monitor.on_train_epoch_end(trainer, module)
    [record] = caplog.records  # one line, not one per epoch
    assert "collapse at step 30" in record.getMessage()
    assert "RankMe" in record.getMessage() and "std" in record.getMessage()
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20, 30, 40]
    assert [r["collapsed"] for r in rows] == [False, False, True, True]
    assert rows[0]["rankme"] > 20 and rows[2]["rankme"] == pytest.approx(1.0, abs=1e-3)
    assert rows[2]["embedding_std"] == 0.0
    assert net.training, "the monitor put the backbone back in training mode"


def test_best_checkpoint_follows_the_highest_rankme(tmp_path):
    net = RankKnob()
    module = SimpleNamespace(method=SimpleNamespace(backbone=net, export=lambda: net))
    best = tmp_path / "checkpoints" / "best.ckpt"
    best.parent.mkdir()
    monitor = RankMeMonitor(_images(), tmp_path / "metrics.jsonl", every_n_steps=10,
                            best_path=best)
    saved = []
    trainer = _trainer(saved)
    for step, rank in ((10, 4), (20, 16), (30, 8), (40, 12)):
        trainer.global_step, net.rank = step, rank
        monitor.on_train_batch_end(trainer, module, None, None, 0)
    trainer.global_step = 45  # not a multiple of 10: no measurement
    monitor.on_train_batch_end(trainer, module, None, None, 0)
    assert [s for s, _ in saved] == [10, 20]  # saved only when RankMe rose
    info = json.loads(best.with_suffix(".json").read_text())
    assert info["step"] == 20
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert max(rows, key=lambda r: r["rankme"])["step"] == 20
    # an epoch ending on a measured step does not measure twice
    trainer.global_step = 40
    monitor.on_train_epoch_end(trainer, module)
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 4
    # resume: the best so far survives, so a lower RankMe does not overwrite best.ckpt
    again = RankMeMonitor(_images(), tmp_path / "metrics.jsonl", best_path=best)
    again.load_state_dict(monitor.state_dict())
    trainer.global_step, net.rank = 50, 12
    again.on_train_epoch_end(trainer, module)
    assert [s for s, _ in saved] == [10, 20]


def test_probe_images_fixed_subset():
    from selfsup.data import load_source

    split = load_source("digits").train
    a, b = probe_images(split, 100, seed=0), probe_images(split, 100, seed=0)
    assert a.shape == (100, 1, 8, 8) and a.dtype == torch.uint8 and torch.equal(a, b)


def test_select_by_rankme_exports_the_best_checkpoint(digits_run):
    run_dir = digits_run.dir
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    ranks = [r for r in rows if "rankme" in r]
    assert [r["step"] for r in ranks] == [14, 28, 42]  # one per epoch (1797 // 128 steps)
    best = json.loads((run_dir / "checkpoints" / "best.json").read_text())
    assert best["step"] == max(ranks, key=lambda r: r["rankme"])["step"]
    meta = json.loads((run_dir / "encoder.json").read_text())
    assert meta["selected_by"] == "rankme" and meta["step"] == best["step"]
    state = load_checkpoint_safely(run_dir / "checkpoints" / "best.ckpt")["state_dict"]
    assert state, "best.ckpt holds the weights"
    exported = load_file(str(run_dir / "encoder.safetensors"))
    prefix = "method.backbone."
    for k, v in exported.items():
        assert torch.equal(v, state[prefix + k]), k
