"""T-JEPA on tables against the raw features and gradient-boosted trees (issue 16).

For each table and seed s: pretrain tjepa (the default ft_transformer) for ``--budget``, then the
table probes (`selfsup.evaluate.table_probes`) with seed s: the same MLP on the frozen T-JEPA
embeddings and on the raw features, and gradient-boosted trees on the raw features, at 100% and
10% of the training labels (a class-balanced 10% subset drawn with seed s; a uniform one for
regression). Every choice (MLP epochs, tree grid point and count) is made on a validation part
of the labelled subset, never on the test split. Cells are mean ± std (sample std) over the
seeds, each seed driving the pretraining, the label subset and the probes' initialization.
Accuracy % for classification, RMSE for regression (R² in the JSON).

The paper's claim (Thimonier et al. 2024: the MLP on T-JEPA embeddings at least as good as the
MLP on raw features) is read per table and label fraction: seen when the embeddings' mean is
at or above the raw features', not seen when it is below by more than the two stds summed,
inconclusive otherwise.

Every stage is kept and reused: a run directory with encoder.safetensors is reused, one with a
checkpoint only (cut short) is resumed, and probe results are cached per run.

The study in RESULTS.md (15 runs of 2 minutes plus the probes, 20 s to about 2 minutes each on
a 2-core CPU, casp's 36,584 training rows the longest: about 50 minutes):
    python benchmarks/tables.py --budget 2m
A tiny check (a minute, nothing appended):
    python benchmarks/tables.py --tables wine --seeds 0 --budget 20s --batch-size 64 \
        --root /tmp/tables-check --no-append
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import selfsup
from selfsup.data import load_source_for
from selfsup.evaluate.features import extract_features
from selfsup.evaluate.suite import target_task, train_test
from selfsup.evaluate.table_probes import (
    PROBE_NAMES,
    TABLE_PROBES,
    categorical_mask,
    probe_inputs,
    table_probes,
)
from selfsup.rundir import RunDir

sys.path.insert(0, str(Path(__file__).parent))
from results_md import append_table, cached, mean_std, pretrain_or_reuse  # noqa: E402

# three classification tables (numeric, categorical, numeric) and two regression tables
TABLES = ("satimage", "nursery", "breast_cancer", "ccpp", "casp")
FRACTIONS = (1.0, 0.1)
# RankMe on 512 rows, not 2048: the monitor's SVD of 2048 flattened (T + 1) x 64 embeddings
# costs ~8 s at every epoch end, which a small table reaches every few seconds
RANKME_SAMPLES = 512


def probe(run_dir: Path, table: str, seed: int) -> dict:
    """The table probes on the run's encoder, its own data's train/test split, seed ``seed``."""
    encoder = selfsup.load(run_dir)
    pre = encoder.preprocessing
    source = load_source_for(table, pre)
    train, test, split = train_test(source)
    tr_x, tr_y = extract_features(encoder, train)
    te_x, te_y = extract_features(encoder, test)
    out = table_probes(TABLE_PROBES, target_task(source), tr_y, te_y,
                       probe_inputs(TABLE_PROBES, (tr_x, te_x), train, test, pre),
                       categorical_mask(pre), fractions=FRACTIONS, seeds=(seed,))
    return {**out, "split": split, "n_train": len(train), "n_test": len(test)}


def pretraining(run_dir: Path) -> dict:
    """Steps and seconds of training (monitor included) from encoder.json and metrics.jsonl."""
    run = RunDir(run_dir)
    rows = [json.loads(x) for x in run.metrics.read_text().splitlines()]
    seconds = max((r["elapsed_s"] for r in rows if "elapsed_s" in r), default=None)
    return {"pretrain_steps": json.loads(run.meta.read_text())["steps"], "pretrain_s": seconds}


def record(table: str, seed: int, budget: str, batch_size: int, root: Path) -> dict:
    run_dir = pretrain_or_reuse(root / f"{table}-s{seed}", "weights", method="tjepa", data=table,
                                time_budget=budget, seed=seed, batch_size=batch_size,
                                rankme_samples=RANKME_SAMPLES, evaluate_after=False)
    result = cached(run_dir / f"table-probes-s{seed}.json", lambda: probe(run_dir, table, seed))
    return {"table": table, "seed": seed, "run_dir": str(run_dir), **pretraining(run_dir),
            **result}


def scale(r: dict) -> float:
    return 100.0 if r["task"] == "classification" else 1.0


def cell(rs: list[dict], probe: str, i: int) -> str:
    return mean_std([scale(r) * r["rows"][probe][i]["mean"] for r in rs])


def table_rows(records: list[dict]) -> tuple[list[str], list[list]]:
    header = ["table", "task (metric)", "train / test rows", "seeds", "pretraining steps",
              "pretraining s"]
    header += [f"{PROBE_NAMES[p]} {100 * f:g}%" for f in FRACTIONS for p in TABLE_PROBES]
    rows = []
    for table in dict.fromkeys(r["table"] for r in records):
        rs = [r for r in records if r["table"] == table]
        metric = "accuracy %" if rs[0]["task"] == "classification" else "RMSE"
        cells = [cell(rs, p, i) for i in range(len(FRACTIONS)) for p in TABLE_PROBES]
        seconds = [r["pretrain_s"] for r in rs if r["pretrain_s"] is not None]
        rows.append([table, f"{rs[0]['task']} ({metric})",
                     f"{rs[0]['n_train']} / {rs[0]['n_test']}", len(rs),
                     f"{statistics.mean(r['pretrain_steps'] for r in rs):.0f}",
                     f"{statistics.mean(seconds):.0f}" if seconds else "", *cells])
    return header, rows


def claims(records: list[dict]) -> tuple[list[str], list[list]]:
    """Per table and fraction: MLP on embeddings vs MLP on raw features, and the verdict."""
    rows = []
    for table in dict.fromkeys(r["table"] for r in records):
        rs = [r for r in records if r["table"] == table]
        better = 1.0 if rs[0]["task"] == "classification" else -1.0  # RMSE: lower is better
        for i, f in enumerate(FRACTIONS):
            emb = [scale(r) * r["rows"]["mlp"][i]["mean"] for r in rs]
            raw = [scale(r) * r["rows"]["raw_mlp"][i]["mean"] for r in rs]
            gap = better * (statistics.mean(emb) - statistics.mean(raw))
            spread = sum(statistics.stdev(v) if len(v) > 1 else 0.0 for v in (emb, raw))
            verdict = "seen" if gap >= 0 else "not seen" if gap < -spread else "inconclusive"
            rows.append([table, f"{100 * f:g}%", mean_std(emb), mean_std(raw), f"{gap:+.2f}",
                         verdict])
    header = ["table", "labels", "MLP on T-JEPA embeddings", "MLP on raw features",
              "advantage of the embeddings", "claim"]
    return header, rows


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tables", nargs="+", default=list(TABLES))
    p.add_argument("--budget", default="5m", help="tjepa pretraining time per run (default 5m)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--batch-size", type=int, default=256, help="pretraining batch (default 256, "
                   "tjepa's recipe scale; lower it for a table of fewer rows)")
    p.add_argument("--root", help="default: runs/tables/<budget>")
    p.add_argument("--no-append", action="store_true", help="print only; leave RESULTS.md alone")
    a = p.parse_args(argv)
    root = Path(a.root or f"runs/tables/{a.budget}")
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for table in a.tables:
        for seed in a.seeds:
            records.append(record(table, seed, a.budget, a.batch_size, root))
            r = records[-1]
            print({"table": table, "seed": seed, "steps": r["pretrain_steps"],
                   **{k: [round(x["mean"], 4) for x in v] for k, v in r["rows"].items()}},
                  flush=True)
    header, rows = table_rows(records)
    claim_header, claim_rows = claims(records)
    for row in [header, *rows, claim_header, *claim_rows]:
        print(" | ".join(str(c) for c in row))
    if not a.no_append:
        append_table(f"T-JEPA on tables: {a.budget} of pretraining per run, CPU", header, rows,
                     f"tjepa's defaults, batch {a.batch_size} (ft_transformer 64-wide, depth 3, "
                     "flattened tokens; "
                     f"RankMe monitor on {RANKME_SAMPLES} rows); probes: one hidden layer of "
                     "256 (MLP, early stopping on a 20% validation part), scikit-learn's "
                     "histogram GBDT (native categories, leaves 15/31/63 and the number of trees "
                     "chosen on the validation part); 100%: the whole training split, 10%: one "
                     f"subset per seed; mean ± std over seeds {a.seeds}; runs in {root}")
        append_table(f"T-JEPA's claim per table: {a.budget} per run, CPU", claim_header,
                     claim_rows, "seen: the embeddings' mean at or above the raw features' "
                     "(accuracy; at or below for RMSE); not seen: worse by more than the two "
                     "stds summed; inconclusive otherwise")
    return records


if __name__ == "__main__":
    main()
