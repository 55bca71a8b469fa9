"""What the command line prints: a run's summary, scores, the table probes and fine-tuning rows,
and the hint for a run whose data has no labels (rich tables where a table reads better)."""

from __future__ import annotations


def print_results(run) -> None:
    from rich.console import Console
    from rich.table import Table

    from .train.config import format_flops

    table = Table(title=f"selfsup run: {run.dir}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    e = run.eval
    rows = [("kNN top-1 (k=200, T=0.1)", e.get("knn_top1"), True),
            ("linear top-1", e.get("linear_top1"), True),
            ("raw-pixel kNN top-1", e.get("raw_pixels_knn_top1"), True),
            ("raw-feature kNN top-1", e.get("raw_features_knn_top1"), True),
            ("RankMe", e.get("rankme"), False)]
    probed = e.get("eval_data", {})
    rows += [(f"{name} on {probed.get('data')}", probed.get(key), True) for name, key in (
        ("kNN top-1", "knn_top1"), ("linear top-1", "linear_top1"),
        ("raw-pixel kNN top-1", "raw_pixels_knn_top1"))]
    for name, value, pct in rows:
        if value is not None:
            table.add_row(name, f"{100 * value:.2f}%" if pct else f"{value:.1f}")
    for name, key in (("linear (ridge) RMSE", "linear_rmse"), ("linear (ridge) R²", "linear_r2")):
        if key in e:
            table.add_row(name, f"{e[key]:.4g}")
    if "collapse" in e:
        table.add_row("collapsed", "yes" if e["collapse"]["collapsed"] else "no")
    trained = run.training or {}
    table.add_row("budget", str(trained.get("budget")))
    table.add_row("steps", str(run.steps))
    if "epochs" in trained:
        table.add_row("epochs", f"{trained['epochs']:g}")
    if trained.get("compute_flops"):
        table.add_row("training compute", format_flops(trained["compute_flops"]))
    table.add_row("training time", duration(run.seconds))
    table.add_row("images/s", f"{run.images_per_s:.0f}")
    if "eval_seconds" in e:  # what the user waits for after training
        table.add_row("evaluation time", duration(e["eval_seconds"]))
    table.add_row("run directory", str(run.dir))
    if (run.dir / "report.html").is_file():
        table.add_row("report", str(run.dir / "report.html"))
    Console().print(table)
    print_table_probes(e)
    print_label_hint(e, run.dir)


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def print_label_hint(results: dict, run_dir) -> None:
    """One line on how to probe a run whose data has no labels."""
    unlabelled = results.get("split") == "no labels"
    if unlabelled and results.get("skipped") and "eval_data" not in results:
        print(f"no labels in {results.get('data')}: RankMe and the collapse check only; probe "
              f"with labels: selfsup evaluate {run_dir} --eval-data LABELLED_SOURCE")


def print_scores(results: dict) -> None:
    for key in ("knn_top1", "linear_top1", "nb_top1", "raw_pixels_knn_top1",
                "raw_features_knn_top1", "rankme"):
        if key in results:
            v = results[key]
            print(f"{key:22s} {100 * v:.2f}%" if key != "rankme" else f"{key:22s} {v:.1f}")
    if "collapse" in results:
        print(f"{'collapsed':22s} {'yes' if results['collapse']['collapsed'] else 'no'}")
    for key in ("linear_rmse", "linear_r2"):
        if key in results:
            print(f"{key:22s} {results[key]:.4g}")
    for probe, why in results.get("skipped", {}).items():
        print(f"{probe:22s} skipped: {why}")
    print_table_probes(results)
    for probe in ("linear", "nb"):
        for row in results.get("fewshot", {}).get(probe, []):
            print(f"fewshot {probe:6s} {100 * row['fraction']:5.1f}%  "
                  f"{100 * row['mean']:.2f} ± {100 * row['std']:.2f}%")
    if "finetune" in results:
        print_finetune(results["finetune"])
    if "prompt_seg" in results:
        r = results["prompt_seg"]
        print(f"{'prompt_seg mIoU':22s} {100 * r['miou']:.2f}%  (intra {r['intra_similarity']:.3f}"
              f", inter {r['inter_similarity']:.3f}, AUROC {r['auroc']:.3f}; "
              f"{r['n_images']} images)")
    for name, row in results.get("layers", {}).items():
        print(f"layer {name:10s} ({row['dim']}-d)  kNN {100 * row['knn_top1']:.2f}%  linear "
              f"{100 * row['linear_top1']:.2f}%  nb {100 * row['nb_top1']:.2f}%")


def print_table_probes(results: dict) -> None:
    """The table probes as one table: a row per probe, a column per label fraction."""
    t = results.get("table_probes")
    if not t:
        return
    from rich.console import Console
    from rich.table import Table

    from .evaluate.table_probes import PROBE_NAMES, format_score

    regression = t["task"] == "regression"
    table = Table(title=f"table probes on {results.get('data')}: test "
                  f"{'RMSE (R²)' if regression else 'accuracy'}; below 100%: mean ± std over "
                  f"{len(t['seeds'])} {'random' if regression else 'class-balanced'} label "
                  "subsets")
    table.add_column("probe")
    for row in next(iter(t["rows"].values())):
        table.add_column(f"{100 * row['fraction']:g}% ({row['n_labels']} labels)",
                         justify="right")
    for probe, rows in t["rows"].items():
        table.add_row(PROBE_NAMES.get(probe, probe), *(format_score(r, t["task"]) for r in rows))
    Console().print(table)


def print_finetune(result: dict) -> None:
    for row in result["rows"]:
        arms = [f"{name} {100 * row[arm]['mean']:.2f} ± {100 * row[arm]['std']:.2f}%"
                for arm, name in (("pretrained", "pretrained"), ("scratch", "scratch"))
                if row[arm]]
        gain = f"  gain {100 * row['gain']:+.2f}" if row["gain"] is not None else ""
        print(f"finetune {100 * row['fraction']:5.1f}% ({row['n_labels']} labels)  "
              f"{'  '.join(arms)}{gain}")
