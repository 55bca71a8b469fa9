"""Command line: thin wrappers that parse, build a config and call the library."""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _key_values(items: list[str] | None) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise SystemExit(f"selfsup: error: expected KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)  # numbers, booleans and lists typed as YAML
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="selfsup", description="Self-supervised representation "
                                "learning: pretrain, evaluate, inspect.")
    sub = p.add_subparsers(dest="command", required=True)
    fmt = argparse.RawDescriptionHelpFormatter

    pre = sub.add_parser("pretrain", help="pretrain an encoder, then evaluate it",
                         formatter_class=fmt, epilog="examples:\n"
                         "  selfsup pretrain              # simclr on fashion-mnist, 10m\n"
                         "  selfsup pretrain --method barlow_twins --time-budget 5m\n"
                         "  selfsup pretrain --data ./my_images --backbone resnet18 --epochs 20\n"
                         "  selfsup pretrain --resume runs/simclr-fashion-mnist-20260101-120000")
    pre.add_argument("--method", help="registered method (see `selfsup methods`); default simclr")
    pre.add_argument("--data", help="fashion-mnist (default), digits, a .npz file or an image "
                     "folder")
    pre.add_argument("--backbone",
                     help="resnet10w32 (the CPU default), resnet10, resnet18, resnet50")
    pre.add_argument("--epochs", type=int, help="train this many epochs")
    pre.add_argument("--time-budget", help="stop cleanly after this long, e.g. 10m, 90s, 1h "
                     "(default 10m when --epochs is not given)")
    pre.add_argument("--batch-size", type=int, help="global batch size (default 256)")
    pre.add_argument("--optimizer", choices=["lars", "sgd", "adamw"],
                     help="default: the method's recipe")
    pre.add_argument("--lr", type=float, help="base learning rate for batch 256 (scaled linearly)")
    pre.add_argument("--weight-decay", type=float)
    pre.add_argument("--image-size", type=int, help="training resolution (default: the source's)")
    pre.add_argument("--channels", type=int, choices=[1, 3])
    pre.add_argument("--precision", choices=["auto", "bf16", "32"],
                     help="auto (default): bf16 autocast where the hardware has it, else fp32")
    pre.add_argument("--devices", type=int, help="processes/GPUs per node (DDP); default 1")
    pre.add_argument("--num-nodes", type=int, help="default 1")
    pre.add_argument("--run-dir", help="default: runs/<method>-<data>-<time>")
    pre.add_argument("--seed", type=int, help="default 0")
    pre.add_argument("--config", help="YAML file of config fields; flags given override it")
    pre.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last "
                     "checkpoint with its saved config (--epochs/--time-budget may extend it)")
    pre.add_argument("--method-arg", action="append", metavar="KEY=VALUE",
                     help="method hyperparameter, e.g. temperature=0.2 (repeatable)")
    pre.add_argument("--view", action="append", metavar="KEY=VALUE",
                     help="augmentation setting, e.g. crop_scale=[0.3,1.0] (repeatable)")
    pre.add_argument("--no-progress", action="store_true", help="no live progress bar")
    pre.add_argument("--no-eval", action="store_true", help="skip the evaluation at the end")

    ev = sub.add_parser("evaluate", help="evaluate a run's encoder with frozen features",
                        formatter_class=fmt, epilog="example:\n"
                        "  selfsup evaluate runs/simclr-fashion-mnist-20260101-120000\n"
                        "  selfsup evaluate RUN_DIR --data ./labelled_images --protocol knn")
    ev.add_argument("run_dir")
    ev.add_argument("--data", help="default: the run's own data")
    ev.add_argument("--protocol", default="knn,linear,rankme,raw_knn",
                    help="comma-separated: knn, linear, rankme, raw_knn")
    ev.add_argument("--k", type=int, default=200)
    ev.add_argument("--temperature", type=float, default=0.1)

    sub.add_parser("methods", help="list the registered methods", formatter_class=fmt,
                   epilog="example:\n  selfsup methods")
    return p


def _config_from_args(a: argparse.Namespace) -> dict[str, Any]:
    import yaml

    opts: dict[str, Any] = {}
    if a.config:
        with open(a.config) as f:
            loaded = yaml.safe_load(f) or {}
        if not isinstance(loaded, dict):
            raise SystemExit(f"selfsup: error: {a.config} must hold a mapping of config fields")
        loaded.pop("resolved", None)
        opts.update(loaded)
    flags = {
        "method": a.method, "data": a.data, "backbone": a.backbone, "epochs": a.epochs,
        "time_budget": a.time_budget, "batch_size": a.batch_size, "optimizer": a.optimizer,
        "lr": a.lr, "weight_decay": a.weight_decay, "image_size": a.image_size,
        "channels": a.channels, "precision": a.precision, "devices": a.devices,
        "num_nodes": a.num_nodes, "run_dir": a.run_dir, "seed": a.seed,
    }
    # flags given override the config file; the rest fall back to PretrainConfig's defaults
    opts.update({k: v for k, v in flags.items() if v is not None})
    if a.method_arg:
        opts["method_args"] = {**opts.get("method_args", {}), **_key_values(a.method_arg)}
    if a.view:
        opts["views"] = {**opts.get("views", {}), **_key_values(a.view)}
    return opts


def _print_results(run) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"selfsup run: {run.dir}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    e = run.eval
    rows = [("kNN top-1 (k=200, T=0.1)", e.get("knn_top1"), True),
            ("linear top-1", e.get("linear_top1"), True),
            ("raw-pixel kNN top-1", e.get("raw_pixels_knn_top1"), True),
            ("RankMe", e.get("rankme"), False)]
    for name, value, pct in rows:
        if value is not None:
            table.add_row(name, f"{100 * value:.2f}%" if pct else f"{value:.1f}")
    table.add_row("steps", str(run.steps))
    table.add_row("training time", f"{run.seconds / 60:.1f} min")
    table.add_row("images/s", f"{run.images_per_s:.0f}")
    table.add_row("run directory", str(run.dir))
    Console().print(table)


def _cmd_pretrain(a: argparse.Namespace) -> int:
    import selfsup

    if a.resume:
        extend = {k: v for k, v in (("epochs", a.epochs), ("time_budget", a.time_budget))
                  if v is not None}
        run = selfsup.pretrain(resume=a.resume, progress=not a.no_progress,
                               evaluate_after=not a.no_eval, **extend)
    else:
        opts = _config_from_args(a)
        run = selfsup.pretrain(progress=not a.no_progress, evaluate_after=not a.no_eval, **opts)
    _print_results(run)
    return EXIT_OK


def _cmd_evaluate(a: argparse.Namespace) -> int:
    import json

    import selfsup

    protocols = [p.strip() for p in a.protocol.split(",") if p.strip()]
    results = selfsup.evaluate(a.run_dir, data=a.data, protocols=protocols, k=a.k,
                               temperature=a.temperature)
    for key in ("knn_top1", "linear_top1", "raw_pixels_knn_top1", "rankme"):
        if key in results:
            v = results[key]
            print(f"{key:22s} {100 * v:.2f}%" if key != "rankme" else f"{key:22s} {v:.1f}")
    print(json.dumps({"eval_json": f"{a.run_dir}/eval.json"}))
    return EXIT_OK


def _cmd_methods(a: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from .methods import METHODS

    table = Table(title="selfsup methods")
    for col in ("name", "family", "paper", "status"):
        table.add_column(col)
    for name in sorted(METHODS):
        info = METHODS[name].info
        table.add_row(info.name, info.family, info.paper, info.status)
    Console(width=160).print(table)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .data import DataError
    from .train import ConfigError
    from .train.checkpoint_io import CheckpointRefused

    user_errors = (ConfigError, DataError, CheckpointRefused, FileNotFoundError)
    try:
        return {"pretrain": _cmd_pretrain, "evaluate": _cmd_evaluate,
                "methods": _cmd_methods}[args.command](args)
    except user_errors as e:
        print(f"selfsup: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("selfsup: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
