"""Sweep the default recipe: run `selfsup pretrain` once per setting at a fixed time budget and
record kNN, linear, RankMe, images/s and wall time for each, one run at a time.

Example (the sweep behind the defaults, see RESULTS.md):
    python benchmarks/sweep_defaults.py --method simclr --budget 3m \
        --setting "lr=0.3" --setting "lr=1.0;method_args.temperature=0.1"
A setting is ';'-separated KEY=VALUE pairs: config fields (lr, batch_size, optimizer,
backbone, weight_decay, warmup_fraction), method_args.NAME or views.NAME.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from results_md import append_table, save_json  # noqa: E402

FLAGS = {"lr": "--lr", "batch_size": "--batch-size", "optimizer": "--optimizer",
         "backbone": "--backbone", "weight_decay": "--weight-decay", "epochs": "--epochs",
         "precision": "--precision", "image_size": "--image-size"}


def setting_to_args(setting: str) -> list[str]:
    args: list[str] = []
    cfg: dict = {}
    for pair in filter(None, (p.strip() for p in setting.split(";"))):
        key, value = pair.split("=", 1)
        if key in FLAGS:
            args += [FLAGS[key], value]
        elif key.startswith("method_args."):
            args += ["--method-arg", f"{key.split('.', 1)[1]}={value}"]
        elif key.startswith("views."):
            args += ["--view", f"{key.split('.', 1)[1]}={value}"]
        else:
            cfg[key] = yaml.safe_load(value)
    if cfg:
        raise SystemExit(f"unsupported keys {sorted(cfg)}")
    return args


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", default="simclr")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--budget", default="3m",
                   help="time budget per run; 'default' passes none (selfsup's own default)")
    p.add_argument("--seed", type=int, action="append")
    p.add_argument("--setting", action="append", default=[],
                   help="';'-separated KEY=VALUE pairs; repeat for each setting ('' = defaults)")
    p.add_argument("--title", default=None)
    p.add_argument("--keep-runs", action="store_true")
    a = p.parse_args()
    settings = a.setting or [""]
    seeds = a.seed or [0]
    selfsup = str(Path(sys.executable).with_name("selfsup"))
    rows, records = [], []
    for setting in settings:
        for seed in seeds:
            run_dir = Path("runs") / f"sweep-{a.method}-{int(time.time())}"
            budget = [] if a.budget == "default" else ["--time-budget", a.budget]
            cmd = [selfsup, "pretrain", "--method", a.method, "--data", a.data, *budget,
                   "--seed", str(seed), "--run-dir", str(run_dir), "--no-progress",
                   *setting_to_args(setting)]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                print(proc.stderr[-2000:], file=sys.stderr)
                rows.append([setting or "defaults", seed, "failed", "", "", "", "", f"{wall:.0f}"])
                continue
            ev = json.loads((run_dir / "eval.json").read_text())
            batch = yaml.safe_load((run_dir / "config.yaml").read_text())["batch_size"]
            n_train = ev["n_train"]
            metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
            steps = [m for m in metrics if "images_per_s" in m]
            ips = sum(m["images_per_s"] for m in steps[2:]) / max(1, len(steps[2:]))
            epochs = steps[-1]["step"] * batch / n_train if steps else 0
            rec = {"command": " ".join(["selfsup", *cmd[1:]]), "setting": setting,
                   "seed": seed, "eval": ev, "images_per_s": ips,
                   "wall_s": wall, "last_step": steps[-1]["step"] if steps else 0}
            records.append(rec)
            rows.append([setting or "defaults", seed, f"{100 * ev['knn_top1']:.2f}",
                         f"{100 * ev['linear_top1']:.2f}", f"{ev['rankme']:.1f}",
                         f"{ips:.0f}", f"{epochs:.1f}", f"{wall:.0f}"])
            print(" | ".join(str(c) for c in rows[-1]), flush=True)
            if not a.keep_runs:
                shutil.rmtree(run_dir, ignore_errors=True)
    save_json(f"sweep-{a.method}", records)
    shown = " ".join(["selfsup", *cmd[1:]]) if len(settings) == 1 and len(seeds) == 1 else ""
    append_table(a.title or f"Recipe sweep: {a.method} on {a.data}, {a.budget} budget",
                 ["setting", "seed", "kNN top-1 %", "linear top-1 %", "RankMe", "images/s",
                  "epochs (approx.)", "wall s"], rows,
                 f"each run: `{shown}`" if shown else "each run: `selfsup pretrain` with the "
                 "setting's flags, one run at a time, nothing else running")


if __name__ == "__main__":
    main()
