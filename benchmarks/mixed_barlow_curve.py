"""Mixed Barlow Twins' claim (Bandara et al. 2023, issue 17): over a longer budget Barlow Twins'
kNN stalls or drops (it overfits) while Mixed Barlow Twins' keeps rising.

Each (data, method, seed) is one `selfsup.pretrain` at the budget with the method's defaults. A
callback saves the exported encoder as the training clock passes 20, 40, 60 and 80% of the
budget (milliseconds each; the budget's schedule is unchanged), and each snapshot is scored
afterwards with the README's kNN (k=200, T=0.1, test split); the 100% point is the run's own
kNN. The data are small on purpose, where overfitting shows first and this CPU gets many epochs:
digits (1,797 images) and a class-balanced tenth of Fashion-MNIST (6,000; see small_data.py).

The claim is read on the mean curves over the seeds, from the 40% point to the end: Barlow
Twins "stalls or drops" when its gain there is at most its std over the seeds; Mixed Barlow
Twins "keeps rising" when its gain is above its std. Seen when both hold.

    python benchmarks/mixed_barlow_curve.py --budget 5m
A quick check (nothing appended):
    python benchmarks/mixed_barlow_curve.py --budget 20s --seeds 0 --data digits \
        --root /tmp/mbt-check --no-append
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import lightning as L

import selfsup
from selfsup.backbones.io import save_encoder
from selfsup.train.config import parse_duration

sys.path.insert(0, str(Path(__file__).parent))
from results_md import append_table, cached, mean_std  # noqa: E402
from small_data import fashion_tenth  # noqa: E402

METHODS = ("barlow_twins", "mixed_barlow_twins")
FRACTIONS = (0.2, 0.4, 0.6, 0.8)  # of the budget; 1.0 is the run's own evaluation


class Snapshots(L.Callback):
    """Saves the exported encoder into ``out/t<seconds>`` when the run's training clock (the
    one `TimeBudget` stops on) first passes each of ``marks`` seconds."""

    def __init__(self, marks: list[float], out: Path):
        self.marks = sorted(marks)
        self.out = out

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        spent = pl_module.elapsed_before + pl_module.session_elapsed()
        passed = [m for m in self.marks if spent >= m]
        if not passed:
            return
        self.marks = self.marks[len(passed):]
        save_encoder(pl_module.method.export(), self.out / f"t{passed[-1]:.0f}",
                     {"steps": trainer.global_step, "seconds": spent})


def run(method: str, data: str, seed: int, budget: str, root: Path) -> dict:
    run_dir = root / f"{method}-{Path(data).stem}-s{seed}"
    seconds = parse_duration(budget)
    marks = [f * seconds for f in FRACTIONS]

    def pretrain() -> dict:
        snaps = run_dir / "snapshots"
        r = selfsup.pretrain(method, data, time_budget=budget, seed=seed, run_dir=str(run_dir),
                             report=False, callbacks=[Snapshots(marks, snaps)])
        # a mark the run did not reach (its schedule ended first) is left out, not guessed
        knn = [selfsup.evaluate(selfsup.load(snaps / f"t{m:.0f}"), data=data,
                                protocols=["knn"])["knn_top1"]
               if (snaps / f"t{m:.0f}").is_dir() else None for m in marks]
        return {"knn": [*knn, r.eval["knn_top1"]], "linear": r.eval["linear_top1"],
                "steps": r.steps}

    return cached(run_dir / "curve.json", pretrain)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", default="5m")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--data", nargs="+", default=["digits", "fashion-10pct"])
    p.add_argument("--root", help="default: runs/mixed-barlow-<budget>")
    p.add_argument("--no-append", action="store_true")
    a = p.parse_args(argv)
    root = Path(a.root or f"runs/mixed-barlow-{a.budget}")
    root.mkdir(parents=True, exist_ok=True)
    points = [*FRACTIONS, 1.0]
    rows, claims = [], []
    for name in a.data:
        data = fashion_tenth(root) if name == "fashion-10pct" else name
        verdict = {}
        for method in METHODS:
            rs = [run(method, data, s, a.budget, root) for s in a.seeds]
            curves = [[None if k is None else 100 * k for k in r["knn"]]
                      for r in rs]  # seeds x points
            gains = [c[-1] - c[points.index(0.4)] for c in curves
                     if c[points.index(0.4)] is not None]
            spread = statistics.stdev(gains) if len(gains) > 1 else 0.0
            gain = statistics.mean(gains)
            verdict[method] = gain <= spread if method == "barlow_twins" else gain > spread
            rows.append([name, method, len(rs),
                         f"{statistics.mean(r['steps'] for r in rs):.0f}",
                         *(mean_std([c[i] for c in curves if c[i] is not None])
                           for i in range(len(points))),
                         mean_std(gains), mean_std([100 * r["linear"] for r in rs])])
            print(rows[-1], flush=True)
        claims.append(f"{name}: Barlow Twins {'stalls' if verdict['barlow_twins'] else 'rises'}"
                      f", Mixed Barlow Twins "
                      f"{'rises' if verdict['mixed_barlow_twins'] else 'does not rise'}, "
                      f"{'seen' if all(verdict.values()) else 'not seen'}")
    header = ["data", "method", "seeds", "steps",
              *(f"kNN % at {100 * f:.0f}%" for f in points), "gain 40->100%", "linear %"]
    for row in [header, *rows]:
        print(" | ".join(str(c) for c in row))
    print("; ".join(claims))
    if not a.no_append:
        append_table(f"Mixed Barlow Twins vs Barlow Twins: kNN during {a.budget} runs, CPU",
                     header, rows, "kNN (k=200, T=0.1) of the encoder at each fraction of the "
                     "training clock, mean ± std over seeds; claim (Barlow Twins stalls or drops "
                     "while Mixed Barlow Twins keeps rising, gain from 40% to the end against its "
                     "std): " + "; ".join(claims))


if __name__ == "__main__":
    main()
