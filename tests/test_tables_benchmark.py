"""benchmarks/tables.py's reading of T-JEPA's claim (MLP on embeddings at least as good as the
MLP on raw features), on hand-made records."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # for its results_md
# loaded by path: "tables" is also the name of an unrelated PyPI package (PyTables)
_spec = importlib.util.spec_from_file_location("tables_benchmark", BENCHMARKS / "tables.py")
tables = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tables)


def record(table: str, task: str, emb: tuple[float, float], raw: tuple[float, float]) -> dict:
    rows = {p: [{"mean": v} for v in values] for p, values in
            (("mlp", emb), ("raw_mlp", raw), ("gbt", raw))}
    return {"table": table, "task": task, "rows": rows, "n_train": 10, "n_test": 5,
            "pretrain_steps": 7, "pretrain_s": 3.0}


def test_claim_verdicts():
    records = [
        # accuracy: 100% embeddings 0.90, 0.92 vs raw 0.89, 0.89 -> +2.00 points: seen;
        # 10% 0.70, 0.72 vs 0.80, 0.80 -> -9.00, beyond the stds (1.41 + 0): not seen
        record("a", "classification", (0.90, 0.70), (0.89, 0.80)),
        record("a", "classification", (0.92, 0.72), (0.89, 0.80)),
        # RMSE: lower is better; 100% 3.0, 3.2 vs 3.0, 3.0 -> -0.10 within 0.14: inconclusive
        record("b", "regression", (3.0, 2.0), (3.0, 2.5)),
        record("b", "regression", (3.2, 2.0), (3.0, 2.5)),
    ]
    header, rows = tables.claims(records)
    assert header[-1] == "claim"
    assert [(r[0], r[1], r[4], r[5]) for r in rows] == [
        ("a", "100%", "+2.00", "seen"), ("a", "10%", "-9.00", "not seen"),
        ("b", "100%", "-0.10", "inconclusive"), ("b", "10%", "+0.50", "seen")]
    header, rows = tables.table_rows(records)
    assert rows[0][:6] == ["a", "classification (accuracy %)", "10 / 5", 2, "7", "3"]
    assert rows[0][6] == "91.00 ± 1.41" and rows[1][1] == "regression (RMSE)"
