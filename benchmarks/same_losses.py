"""Losses of a short, deterministic fp32 run per method, to compare two versions of selfsup
step for step (a refactor must leave them equal).

Issue 14's check, run once per version (the old one from a worktree on PYTHONPATH):
    git worktree add /tmp/old 647a04e
    PYTHONPATH=/tmp/old/src python benchmarks/same_losses.py simclr isogclr moco > old.json
    python benchmarks/same_losses.py simclr isogclr moco > new.json && diff old.json new.json
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import selfsup


def losses(method: str) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / method
        selfsup.pretrain(method, "digits", epochs=2, batch_size=128, precision="32", seed=0,
                         run_dir=str(run_dir), evaluate_after=False, backbone="resnet10w32")
        rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r.get("loss") is not None]


if __name__ == "__main__":
    print(json.dumps({m: losses(m) for m in sys.argv[1:]}, indent=1))
