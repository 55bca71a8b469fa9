"""The learning guard's figures for every registered encoder method (selfsup/guard.py): kNN
(k=20) after the pinned steps against the untrained encoder the run started from, the last
RankMe, whether the collapse monitor fired, the status that follows and the one registered.

    python benchmarks/guard_table.py
    python benchmarks/guard_table.py --methods simclr mae

The budget is in steps, so the table reads the same on any CPU; the seconds are this machine's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from results_md import write_table  # noqa: E402

from selfsup.guard import (  # noqa: E402
    GUARD_BATCH,
    GUARD_DATA,
    GUARD_K,
    GUARD_STEPS,
    MARGIN,
    run_guard,
)
from selfsup.methods import METHODS  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    encoders = sorted(n for n, c in METHODS.items() if c.product == "encoder")
    p.add_argument("--methods", nargs="+", default=encoders, choices=encoders)
    p.add_argument("--no-record", action="store_true")
    a = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.methods:
            t = time.perf_counter()
            r = run_guard(name, Path(tmp) / name)
            registered = METHODS[name].info.status
            rows.append([name, GUARD_DATA[METHODS[name].modalities[0]], r.steps,
                         f"{100 * r.untrained_knn:.1f}", f"{100 * r.trained_knn:.1f}",
                         f"{100 * (r.trained_knn - r.untrained_knn):+.1f}", f"{r.rankme:.1f}",
                         "yes" if r.collapsed else "no", r.status,
                         registered if registered == r.status else f"**{registered}**",
                         f"{r.images_per_s:.0f}", f"{time.perf_counter() - t:.1f}"])
            print(" | ".join(map(str, rows[-1])), flush=True)
    if a.no_record:
        return
    write_table(
        f"The learning guard: every method at {GUARD_STEPS} steps of {GUARD_BATCH}",
        ["method", "source", "steps", "untrained kNN %", "trained kNN %", "gain", "RankMe",
         "collapsed", "measured", "registered", "images/s", "seconds"], rows,
        f"budget {GUARD_STEPS} steps of batch {GUARD_BATCH}, fp32, seed 0, each method's "
        f"guard size (selfsup.guard.GUARD_SIZES); kNN k={GUARD_K}, T=0.1 on the 20% "
        f"stratified holdout; ready = gain above {100 * MARGIN:.0f} points and no collapse; "
        "collapsed = the RankMe monitor fired at any measurement (epoch ends and the end); "
        "seconds: training and both probes on this machine, one process")


if __name__ == "__main__":
    main()
