"""A trained method rebuilt from its run directory for the layers probe and the report."""

from __future__ import annotations

import torch

import selfsup
from selfsup.methods.saved import saved_method
from selfsup.rundir import load_checkpoint_safely


def test_heads_come_back_even_when_the_views_kept_buffers(tmp_path):
    # kornia's RandomSolarize kept buffers in its parameter generator, so checkpoints written
    # before solarization became tensor code hold them under views.*; the rebuilt method (no
    # views) must leave them behind
    run_dir = tmp_path / "run"
    selfsup.pretrain("simclr", "digits", epochs=1, batch_size=128, precision="32", seed=0,
                     views={"solarize_p": 0.2}, run_dir=str(run_dir), evaluate_after=False)
    path = run_dir / "checkpoints" / "last.ckpt"
    ckpt = load_checkpoint_safely(path)
    state = ckpt["state_dict"]
    for name in ("thresholds", "additions"):
        state[f"method.views.crop.augment.RandomSolarize_0._param_generator.{name}"] = (
            torch.zeros(2))
    torch.save(ckpt, path)
    method = saved_method(str(run_dir), selfsup.load(run_dir))
    for k, v in method.projector.state_dict().items():
        torch.testing.assert_close(v, state[f"method.projector.{k}"])
