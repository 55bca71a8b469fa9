"""Label-free hyperparameter selection with RankMe (Garrido et al. 2023): for each method, train
one run per setting at a short budget, let RankMe pick a setting (no labels), and compare with
the setting kNN (labels) would pick.

Example (the table in RESULTS.md):
    python benchmarks/rankme_selection.py --budget 2m
Defaults: SimCLR over temperature 0.05/0.1/0.2/0.5 and Barlow Twins over learning rate
5e-4/1e-3/2e-3/4e-3 on Fashion-MNIST. RankMe is the monitor's last value on its fixed
2048-image training subset (label-free); kNN is the evaluation's test top-1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).parent))
from results_md import append_table, save_json  # noqa: E402
from sweep_defaults import setting_to_args  # noqa: E402

SETTINGS = {
    "simclr": ["method_args.temperature=0.05", "method_args.temperature=0.1",
               "method_args.temperature=0.2", "method_args.temperature=0.5"],
    "barlow_twins": ["lr=0.0005", "lr=0.001", "lr=0.002", "lr=0.004"],
}


def run_one(method: str, setting: str, data: str, length: list[str], seed: int,
            extra: list[str]) -> dict:
    selfsup = str(Path(sys.executable).with_name("selfsup"))
    run_dir = Path("runs") / f"rankme-{method}-{int(time.time() * 1000)}"
    cmd = [selfsup, "pretrain", "--method", method, "--data", data, *length, "--seed",
           str(seed), "--run-dir", str(run_dir), "--no-progress", *setting_to_args(setting),
           *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return {"setting": setting, "failed": True}
    ev = json.loads((run_dir / "eval.json").read_text())
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    ranks = [r for r in rows if "rankme" in r]
    return {"setting": setting, "seed": seed, "run_dir": str(run_dir),
            "command": " ".join(["selfsup", *cmd[1:]]), "rankme": ranks[-1]["rankme"],
            "rankme_test": ev["rankme"], "knn": ev["knn_top1"], "linear": ev["linear_top1"],
            "steps": max((r["step"] for r in rows if "step" in r), default=0)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--budget", default="2m", help="time budget per run")
    p.add_argument("--epochs", type=int, help="train epochs instead of a time budget")
    p.add_argument("--method", action="append", choices=sorted(SETTINGS),
                   help="default: simclr and barlow_twins")
    p.add_argument("--seed", type=int, action="append", help="repeat for more trials")
    p.add_argument("--extra", default="", help="more pretrain flags, e.g. '--batch-size 128'")
    p.add_argument("--keep-runs", action="store_true")
    p.add_argument("--no-append", action="store_true", help="print only; leave RESULTS.md alone")
    a = p.parse_args()
    length = ["--epochs", str(a.epochs)] if a.epochs else ["--time-budget", a.budget]
    detail, summary, records = [], [], []
    for method in a.method or ["simclr", "barlow_twins"]:
        for seed in a.seed or [0]:
            runs = [run_one(method, s, a.data, length, seed, a.extra.split())
                    for s in SETTINGS[method]]
            ok = [r for r in runs if not r.get("failed")]
            for r in runs:
                cells = ([f"{r['rankme']:.1f}", f"{100 * r['knn']:.2f}",
                          f"{100 * r['linear']:.2f}", r["steps"]] if not r.get("failed")
                         else ["failed", "", "", ""])
                detail.append([method, seed, r["setting"], *cells])
                print(" | ".join(str(c) for c in detail[-1]), flush=True)
            if len(ok) < 2:
                continue
            by_rank = max(ok, key=lambda r: r["rankme"])
            by_knn = max(ok, key=lambda r: r["knn"])
            rho = spearmanr([r["rankme"] for r in ok], [r["knn"] for r in ok]).statistic
            summary.append([method, seed, by_rank["setting"], by_knn["setting"],
                            "yes" if by_rank is by_knn else "no",
                            f"{100 * (by_knn['knn'] - by_rank['knn']):.2f}", f"{rho:+.2f}"])
            records.append({"method": method, "seed": seed, "runs": runs})
            if not a.keep_runs:
                for r in ok:
                    shutil.rmtree(r["run_dir"], ignore_errors=True)
    matches = sum(row[4] == "yes" for row in summary)
    print(f"RankMe picked the kNN-best setting in {matches} of {len(summary)} selections")
    save_json("rankme-selection", records)
    if a.no_append:
        return
    how = f"{a.epochs} epochs" if a.epochs else f"{a.budget} budget"
    append_table(f"RankMe selection: {a.data}, {how} per run (all settings)",
                 ["method", "seed", "setting", "RankMe (train probe subset)", "kNN top-1 %",
                  "linear top-1 %", "steps"], detail,
                 "one `selfsup pretrain` per setting, one at a time")
    append_table(f"RankMe selection: {a.data}, {how} per run (summary)",
                 ["method", "seed", "RankMe's choice", "kNN-best", "match",
                  "kNN lost (points)", "Spearman(RankMe, kNN)"], summary,
                 f"RankMe picked the kNN-best setting in {matches} of {len(summary)} "
                 "selections; 'kNN lost' is the kNN-best setting's top-1 minus that of "
                 "RankMe's choice")


if __name__ == "__main__":
    main()
