"""A table comparing runs: what each trained, for how long, and how its encoder scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ..evaluate.table_probes import PROBE_NAMES, format_score
from ..rundir import RunDir
from ..train.config import budget_words, format_flops

# what each run trained, in units that travel (steps, epochs, FLOPs) and those that do not
# (training and evaluation wall time), then its scores
COLUMNS = ("run", "method", "backbone", "budget", "steps", "epochs", "compute", "train_s",
           "eval_s", "knn", "linear", "nb", "rankme")
HEADER = ("run", "method", "backbone", "budget", "steps", "epochs", "compute", "train min",
          "eval min", "kNN %", "linear %", "naive Bayes %", "RankMe")
# a table encoder's own protocols: shown when a compared run has them (all labels)
TABLE_COLUMNS = ("mlp", "gbt")


def table_scores(ev: dict[str, Any]) -> dict[str, str | None]:
    """The table probes at the largest label fraction, as text (accuracy or RMSE)."""
    probes = ev.get("table_probes", {})
    scores: dict[str, str | None] = dict.fromkeys(TABLE_COLUMNS)
    for name in TABLE_COLUMNS:
        rows = probes.get("rows", {}).get(name)
        if rows:
            scores[name] = format_score(max(rows, key=lambda r: r["fraction"]), probes["task"])
    return scores


def compare_rows(run_dirs: list[str | Path]) -> list[dict[str, Any]]:
    """One row per run: config.yaml, encoder.json and eval.json summarized (None when absent);
    a run whose own data has no labels shows its probes on ``eval_data``."""
    rows = []
    for d in map(Path, run_dirs):
        run = RunDir(d)
        if not run.config.is_file():
            raise FileNotFoundError(f"{run.config} not found: is {d} a selfsup run?")
        cfg = yaml.safe_load(run.config.read_text())
        meta = json.loads(run.meta.read_text()) if run.meta.is_file() else {}
        ev = json.loads(run.eval.read_text()) if run.eval.is_file() else {}
        probed = ev if "knn_top1" in ev or "linear_top1" in ev else ev.get("eval_data", {})
        backbone = cfg.get("backbone")
        if meta.get("backbone"):
            backbone = meta["backbone"].get("name", meta["backbone"].get("arch", backbone))
        trained = ev.get("training", meta.get("training", {}))
        rows.append({"run": d.name, "method": cfg.get("method"), "backbone": backbone,
                     "budget": budget_words(cfg), "steps": meta.get("steps"),
                     "epochs": trained.get("epochs"), "compute": trained.get("compute_flops"),
                     "train_s": trained.get("train_seconds"), "eval_s": ev.get("eval_seconds"),
                     "knn": probed.get("knn_top1"), "linear": probed.get("linear_top1"),
                     "nb": probed.get("nb_top1"),
                     "rankme": ev.get("rankme"), **table_scores(ev)})
    return rows


def format_cell(key: str, value: Any) -> str:
    if value is None:
        return "–"
    if key == "compute":
        return format_flops(value)
    if key in ("train_s", "eval_s"):
        return f"{value / 60:.1f}"
    if key == "epochs":
        return f"{value:g}"
    if key in ("knn", "linear", "nb"):
        return f"{100 * value:.2f}"
    if key == "rankme":
        return f"{value:.1f}"
    return str(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """GitHub markdown; accuracies are test top-1 in %; table runs add their table probes."""
    header = list(HEADER)
    columns = list(COLUMNS)
    if any(r.get(k) is not None for r in rows for k in TABLE_COLUMNS):
        header += [PROBE_NAMES[k] for k in TABLE_COLUMNS]
        columns += TABLE_COLUMNS
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(format_cell(k, r.get(k)) for k in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"
