"""Gradient clipping: the recipe's or the user's max norm reaches every optimizer step, 0 turns
it off, the resolved value is recorded in config.yaml, and a negative one is refused."""

from __future__ import annotations

import pytest
import torch
import yaml

import selfsup
from selfsup.methods.cae import CAE
from selfsup.train import ConfigError


def step_grad_norms(monkeypatch, tmp_path, **options) -> tuple[list[float], dict]:
    """Global L2 norm of the gradients each AdamW step sees, and the run's resolved config."""
    norms = []
    step = torch.optim.AdamW.step

    def recording_step(self, closure):
        # Lightning's closure runs forward, backward and then the clipping
        def recording_closure():
            loss = closure()
            grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
            norms.append(torch.linalg.vector_norm(torch.stack(
                [torch.linalg.vector_norm(g.float()) for g in grads])).item())
            return loss
        return step(self, recording_closure)

    monkeypatch.setattr(torch.optim.AdamW, "step", recording_step)
    run_dir = tmp_path / "run"
    selfsup.pretrain("simclr", "digits", classes="0-1", epochs=1, batch_size=64, seed=0,
                     precision="32", run_dir=str(run_dir), evaluate_after=False, report=False,
                     rankme_samples=0, **options)
    return norms, yaml.safe_load((run_dir / "config.yaml").read_text())["resolved"]


def test_every_step_is_clipped_to_the_norm(monkeypatch, tmp_path):
    norms, resolved = step_grad_norms(monkeypatch, tmp_path, grad_clip=1e-3)
    assert len(norms) >= 3 and resolved["grad_clip"] == 1e-3
    # the raw norms are far above 1e-3, so each step sees exactly the clipped norm
    assert norms == pytest.approx([1e-3] * len(norms), rel=1e-3)


def test_zero_turns_clipping_off(monkeypatch, tmp_path):
    norms, resolved = step_grad_norms(monkeypatch, tmp_path, grad_clip=0.0)
    assert resolved["grad_clip"] is None and min(norms) > 1e-2  # unclipped


def test_cae_recipe_clips_like_the_official_code():
    assert CAE.recipe.grad_clip == 3.0  # Atten4Vis/CAE's --clip_grad 3.0


def test_negative_norm_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="grad_clip"):
        selfsup.pretrain("simclr", "digits", epochs=1, grad_clip=-1.0,
                         run_dir=str(tmp_path / "run"), evaluate_after=False)
