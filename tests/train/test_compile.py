"""--compile: the compiled step trains and leaves its kernels in the machine's selfsup cache,
and the cache goes where the user says (or nowhere they did not ask for)."""

from __future__ import annotations

import json
import math
import os

import pytest

import selfsup
from selfsup.hardware import use_compile_cache
from selfsup.train import ConfigError


@pytest.fixture
def no_inductor_dir(monkeypatch):
    # inductor writes TORCHINDUCTOR_CACHE_DIR itself once used; monkeypatch restores it after
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    return monkeypatch


def test_cache_under_selfsup_cache_unless_the_user_chose(tmp_path, no_inductor_dir):
    no_inductor_dir.setenv("SELFSUP_CACHE", str(tmp_path / "mine"))
    assert use_compile_cache() == tmp_path / "mine" / "inductor"
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine" / "inductor")
    no_inductor_dir.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "theirs"))
    assert use_compile_cache() == tmp_path / "theirs"  # the user's choice stands
    # what Lightning's import writes there is inductor's default, not a choice
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    no_inductor_dir.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())
    assert use_compile_cache() == tmp_path / "mine" / "inductor"
    no_inductor_dir.delenv("TORCHINDUCTOR_CACHE_DIR")
    no_inductor_dir.setenv("SELFSUP_CACHE", "off")
    assert use_compile_cache() is None and "TORCHINDUCTOR_CACHE_DIR" not in os.environ


def test_compile_is_a_yes_or_no(tmp_path):
    with pytest.raises(ConfigError, match="compile"):
        selfsup.pretrain("simclr", "digits", epochs=1, compile="yes",
                         run_dir=str(tmp_path / "run"))


def test_compiled_run_trains_and_fills_the_machine_cache(tmp_path, no_inductor_dir):
    no_inductor_dir.setenv("SELFSUP_CACHE", str(tmp_path / "cache"))
    selfsup.pretrain("simclr", "digits", backbone="resnet8w32", epochs=2, batch_size=128,
                     compile=True, run_dir=str(tmp_path / "run"), seed=0, report=False,
                     rankme_samples=0, eval_protocols=["knn"])
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses and all(math.isfinite(x) for x in losses)
    assert any((tmp_path / "cache" / "inductor").rglob("*"))  # kernels kept for the next run
    ev = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert ev["knn_top1"] > 0.5  # digits: chance is 0.1
