"""Fixtures shared across test packages."""

from __future__ import annotations

import pytest

import selfsup


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> selfsup.Run:
    """One tiny finished run (SimCLR on digits, 3 epochs, encoder selected by RankMe) with its
    eval.json and report.html, shared by the evaluation, report and monitor tests (~20 s)."""
    run_dir = tmp_path_factory.mktemp("runs") / "simclr-digits"
    return selfsup.pretrain("simclr", "digits", epochs=3, batch_size=128, precision="32",
                            backbone="resnet10w32", seed=0, run_dir=str(run_dir),
                            select_by="rankme")
