"""Every method at the same budget, several seeds: kNN and linear top-1 next to raw pixels.

One `selfsup pretrain` per (method, seed), one at a time, each into
``runs/methods/<data>-<budget>/<method>-s<seed>``. A run whose eval.json exists is reused, not
retrained, so a sweep longer than one sitting can be run in pieces (same command again) and the
table rebuilt from what is there. A run directory without eval.json (interrupted) is trained
again from scratch into a fresh directory beside it. ``--trained-only`` trains nothing and
tables the finished runs, each row saying how many seeds it has.

Issue 6's tables (each about (budget + 1 minute) x methods x seeds of wall time):
    python benchmarks/methods_table.py --budget 10m --seeds 0 1 2 \
        --methods simclr dcl dclw moco mochi isogclr groco gsimclr
    python benchmarks/long_tail.py --out data/fashion-mnist-lt100.npz
    python benchmarks/methods_table.py --data data/fashion-mnist-lt100.npz --budget 10m \
        --seeds 0 1 2 --methods simclr isogclr
MoCHi vs MoCo at equal budget is the first table's moco and mochi rows. A method may carry
settings (`parse_spec`), as issue 17's random-field claim does:
    python benchmarks/methods_table.py --budget 10m --seeds 0 1 2 --methods simclr \
        "simclr[views.kind=random_field;views.field_strength=0.5]" barlow_twins \
        mixed_barlow_twins scatsimclr transitive
Levers that leave a step's cost unchanged (views, temperature, schedule) are screened at equal
steps with ``--epochs E`` instead of a time budget: the machine's speed, which swings by a
third between sittings here, then cannot move the comparison (runs in
``runs/methods/<data>-<E>ep``):
    python benchmarks/methods_table.py --epochs 8 --seeds 0 --methods simclr \
        "simclr[views.solarize_p=0.0]"
A quick check (seconds, nothing appended):
    python benchmarks/methods_table.py --data digits --budget 5s --seeds 0 \
        --methods simclr dcl --root /tmp/methods-check --no-append
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import yaml

import selfsup

sys.path.insert(0, str(Path(__file__).parent))
from results_md import append_table, mean_std, save_json  # noqa: E402


def run_dir_for(root: Path, method: str, seed: int) -> Path:
    return root / f"{method}-s{seed}"


def parse_spec(spec: str) -> tuple[str, dict]:
    """``simclr`` or ``simclr[views.kind=random_field;views.field_strength=0.5;ema=0.996]``: a
    method and the `selfsup.pretrain` options it runs with (``views.K`` and ``method_args.K``
    fill those dicts; any other key is a config field)."""
    method, _, settings = spec.partition("[")
    options: dict = {}
    settings = settings[:-1] if settings.endswith("]") else settings  # one: values may be lists
    for pair in filter(None, settings.split(";")):
        key, value = pair.split("=", 1)
        group, _, name = key.rpartition(".")
        if group:
            options.setdefault(group, {})[name] = yaml.safe_load(value)
        else:
            options[key] = yaml.safe_load(value)
    return method, options


def train_or_reuse(spec: str, seed: int, data: str, budget: str | None, root: Path,
                   trained_only: bool = False, epochs: int | None = None) -> dict | None:
    """The run's record, trained first if it has no eval.json (None under ``trained_only``):
    for the time ``budget``, or for ``epochs`` when given (then ``budget`` is not used)."""
    method, options = parse_spec(spec)
    run_dir = run_dir_for(root, spec.replace("[", "-").replace(";", "-").rstrip("]"), seed)
    if trained_only and not (run_dir / "eval.json").is_file():
        return None
    if not (run_dir / "eval.json").is_file():
        if run_dir.exists():  # interrupted: keep it, train beside it
            stale = run_dir.with_name(run_dir.name + "-interrupted")
            print(f"{run_dir} has no eval.json; moved to {stale}", flush=True)
            run_dir.rename(stale)
        length = {"epochs": epochs} if epochs is not None else {"time_budget": budget}
        selfsup.pretrain(method, data, seed=seed, run_dir=str(run_dir), progress=False,
                         **length, **options)
    ev = json.loads((run_dir / "eval.json").read_text())
    metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = max((m["step"] for m in metrics if "step" in m), default=0)
    return {"method": spec, "seed": seed, "run_dir": str(run_dir), "steps": steps,
            "knn": ev["knn_top1"], "linear": ev["linear_top1"],
            "raw_knn": ev["raw_pixels_knn_top1"], "rankme": ev.get("rankme"),
            # with ema: the exported encoder is the average, the trained weights scored beside it
            "online": ev.get("online_encoder")}


def table(records: list[dict], methods: list[str]) -> list[list]:
    """One row per method: kNN and linear mean ± std, raw-pixel kNN, whether every seed beat it.

    A method run with ``ema`` (an averaged encoder exported) gets a second row, "(online
    weights)", scoring the trained weights of the same runs."""
    rows = []
    for method in methods:
        mine = [r for r in records if r["method"] == method]
        if not mine:
            continue
        raw = 100 * mine[0]["raw_knn"]
        steps = f"{statistics.mean(r['steps'] for r in mine):.0f}"
        scored = [(method, [r["knn"] for r in mine], [r["linear"] for r in mine])]
        if all(r.get("online") for r in mine):
            scored.append((f"{method} (online weights)",
                           [r["online"]["knn_top1"] for r in mine],
                           [r["online"]["linear_top1"] for r in mine]))
        for name, knn, linear in scored:
            knn = [100 * x for x in knn]
            rows.append([name, len(mine), mean_std(knn), mean_std([100 * x for x in linear]),
                         ", ".join(f"{x:.2f}" for x in knn), f"{raw:.2f}",
                         "yes" if all(x > raw for x in knn) else "no", steps])
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", required=True)
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--budget", default="10m", help="time budget per run (default 10m)")
    p.add_argument("--epochs", type=int,
                   help="train this many epochs instead of a time budget (equal steps)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--root", help="default: runs/methods/<data>-<budget>, or -<E>ep")
    p.add_argument("--no-append", action="store_true", help="print only; leave RESULTS.md alone")
    p.add_argument("--title", help="RESULTS.md section title (default: data, budget)")
    p.add_argument("--trained-only", action="store_true",
                   help="train nothing: the table from the runs that have finished (the seeds "
                        "column says how many each method has)")
    a = p.parse_args(argv)
    length = f"{a.epochs}ep" if a.epochs is not None else a.budget
    root = Path(a.root or f"runs/methods/{Path(a.data).stem}-{length}")
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for seed in a.seeds:  # seed-major: a sweep cut short still has every method once
        for method in a.methods:
            record = train_or_reuse(method, seed, a.data, a.budget, root, a.trained_only,
                                    a.epochs)
            if record is not None:
                records.append(record)
                print(record, flush=True)
    header = ["method", "seeds", "kNN top-1 % (mean ± std)", "linear top-1 % (mean ± std)",
              "kNN per seed", "raw-pixel kNN %", "beats raw pixels (every seed)", "steps (mean)"]
    rows = table(records, a.methods)
    for row in [header, *rows]:
        print(" | ".join(str(c) for c in row))
    if a.no_append:
        return records
    save_json("methods-table", records)
    flag = f"--epochs {a.epochs}" if a.epochs is not None else "--time-budget B"
    per_run = f"{a.epochs} epochs" if a.epochs is not None else a.budget
    append_table(a.title or f"Methods at equal budget: {a.data}, {per_run} per run, CPU",
                 header, rows,
                 f"`selfsup pretrain --method M --seed S {flag}` with each method's "
                 "recipe, one run at a time; kNN k=200, T=0.1 and linear (C on a validation "
                 f"split) on the test split; runs in {root}")
    return records


if __name__ == "__main__":
    main()
