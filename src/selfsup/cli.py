"""Command line: thin wrappers that parse, build a config and call the library."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .console import (
    print_finetune,
    print_label_hint,
    print_results,
    print_scores,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _key_values(items: list[str] | None) -> dict[str, Any]:
    import yaml

    from .train import ConfigError

    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"expected KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)  # numbers, booleans and lists typed as YAML
    return out


def _parser() -> argparse.ArgumentParser:
    # the choices come from the registries, so a new method or backbone needs no CLI change
    from .backbones import BACKBONES
    from .methods import METHODS
    from .train.config import BATCH_SAMPLERS, LOGGERS, OPTIMIZERS, PRECISIONS
    from .train.schedule import SCHEDULES

    p = argparse.ArgumentParser(prog="selfsup", description="Self-supervised representation "
                                "learning: pretrain, evaluate, inspect.")
    sub = p.add_subparsers(dest="command", required=True)
    fmt = argparse.RawDescriptionHelpFormatter

    pre = sub.add_parser("pretrain", help="pretrain an encoder, then evaluate it",
                         formatter_class=fmt, epilog="examples:\n"
                         "  selfsup pretrain              # simclr on fashion-mnist, 10m\n"
                         "  selfsup pretrain --method barlow_twins --time-budget 5m\n"
                         "  selfsup pretrain --steps 2000      # the same run on any machine\n"
                         "  selfsup pretrain --compute 50tflop # or a budget in training FLOPs\n"
                         "  selfsup pretrain --data ./my_images --backbone resnet18 --epochs 20\n"
                         "  selfsup pretrain --data wine --method tjepa --epochs 50\n"
                         "  selfsup pretrain --resume runs/simclr-fashion-mnist-20260101-120000")
    # method and backbone are checked by the config, whose one-line error lists the valid ones
    pre.add_argument("--method", help=f"one of {', '.join(sorted(METHODS))} (see `selfsup "
                     "methods`); default simclr")
    pre.add_argument("--data", help="fashion-mnist (default), digits, a .npz file, an image "
                     "folder or tar shards ('shards/train-{000000..000099}.tar', see `selfsup "
                     "shard`); tables: a CSV or Parquet file (with --target), breast_cancer, "
                     "wine, satimage, nursery, fars, ccpp and casp (regression) (then "
                     "--method tjepa)")
    pre.add_argument("--backbone", help=f"one of {', '.join(sorted(BACKBONES))}; default: "
                     "the method's (resnet10w32 on CPU, vit_tiny for mae)")
    pre.add_argument("--epochs", type=int, help="train this many epochs")
    pre.add_argument("--steps", type=int, help="train this many optimizer steps")
    pre.add_argument("--time-budget", help="stop cleanly after this long, e.g. 10m, 90s, 1h "
                     "(default 10m when no other budget is given)")
    pre.add_argument("--compute", metavar="FLOPS", help="train until this many training FLOPs "
                     "(torch's counter on the real step, all processes), e.g. 100tflop, 2.5pflop")
    pre.add_argument("--batch-size", type=int, help="global batch size (default 256)")
    pre.add_argument("--optimizer", choices=OPTIMIZERS,
                     help="default: the method's recipe")
    pre.add_argument("--lr", type=float, help="base learning rate for batch 256 (scaled linearly)")
    pre.add_argument("--weight-decay", type=float)
    pre.add_argument("--grad-clip", type=float, metavar="NORM",
                     help="clip the gradients' global L2 norm to NORM (0: off; default: the "
                     "method's recipe, e.g. 3.0 for cae)")
    pre.add_argument("--image-size", type=int, help="training resolution (default: the source's)")
    pre.add_argument("--channels", type=int, choices=[1, 3])
    pre.add_argument("--precision", choices=PRECISIONS,
                     help="auto (default): bf16 autocast where the hardware has it, else fp32")
    pre.add_argument("--devices", type=int, help="processes/GPUs per node (DDP); default 1")
    pre.add_argument("--num-nodes", type=int, help="default 1")
    pre.add_argument("--run-dir", help="default: runs/<method>-<data>-<time>")
    pre.add_argument("--seed", type=int, help="default 0")
    pre.add_argument("--config", help="YAML file of config fields; flags given override it")
    pre.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last "
                     "checkpoint with its saved config (a larger budget of its own kind "
                     "extends it)")
    pre.add_argument("--schedule", choices=SCHEDULES,
                     help="learning-rate schedule (default cosine); linear: warmup, then linear "
                     "decay to 0; infinite: warmup, cooldown to a constant, anneal at the end; "
                     "continue it with --init-from")
    pre.add_argument("--init-from", metavar="RUN_DIR", help="start from that run's weights "
                     "(fresh optimizer), e.g. to continue on new data")
    pre.add_argument("--classes", help="train on these labels of the source only, e.g. 0-4")
    pre.add_argument("--target", metavar="COLUMN", help="a CSV/Parquet table's label column "
                     "(default: none, an unlabelled table)")
    pre.add_argument("--categorical", metavar="COLUMNS", help="comma-separated table columns "
                     "to treat as categorical (text columns always are)")
    pre.add_argument("--task", choices=("classification", "regression"), help="what --target "
                     "is (default: inferred; numbers with fractions or over 100 distinct values "
                     "are a regression target)")
    pre.add_argument("--sync-batchnorm", action="store_true", default=None,
                     help="with --devices > 1: batch-norm statistics over all processes "
                     "(default: each process normalizes with its own batch)")
    pre.add_argument("--batch-sampler", choices=BATCH_SAMPLERS,
                     help="guided: G-SimCLR batches, no two images of one pseudo-class "
                     "(autoencoder + k-means) together; default: the method's recipe")
    pre.add_argument("--method-arg", action="append", metavar="KEY=VALUE",
                     help="method hyperparameter, e.g. temperature=0.2 (repeatable)")
    pre.add_argument("--backbone-arg", action="append", metavar="KEY=VALUE",
                     help="backbone setting, e.g. depth=6 or pool=mean for a ViT, patch_size=2 "
                     "(repeatable; recorded in encoder.json)")
    pre.add_argument("--view", action="append", metavar="KEY=VALUE",
                     help="augmentation setting, e.g. crop_scale=[0.3,1.0] (repeatable)")
    pre.add_argument("--no-progress", action="store_true", help="no live progress bar")
    pre.add_argument("--no-eval", action="store_true", help="skip the evaluation at the end")
    pre.add_argument("--no-report", action="store_true", help="evaluate but write no "
                     "report.html (`selfsup report RUN_DIR` writes it later)")
    pre.add_argument("--eval-data", metavar="SOURCE", help="run the probes on this labelled "
                     "source (e.g. a folder with one sub-folder per class) instead of --data, "
                     "e.g. when --data has no labels; results under eval_data in eval.json")
    pre.add_argument("--eval-train-samples", metavar="N|all|auto", help="the evaluation "
                     "after pretraining fits its probes on a class-stratified sample of N "
                     "training images (default auto: all of Fashion-MNIST and CIFAR-10, about "
                     "13,000 of a 64 px RGB folder; recorded in eval.json)")
    pre.add_argument("--eval-test-samples", metavar="N|all", help="and scores them on N test "
                     "images (default 10000)")
    pre.add_argument("--select-by", choices=["last", "rankme"],
                     help="rankme: keep checkpoints/best.ckpt at the highest RankMe (no labels "
                     "used) and export that encoder; default last")
    pre.add_argument("--ema", type=float, metavar="DECAY",
                     help="export an exponential moving average of the encoder's weights "
                     "(e.g. 0.999 per step); the online weights go to RUN/online-encoder/ and "
                     "are scored beside it (online_encoder in eval.json)")
    pre.add_argument("--compile", action="store_true", default=None,
                     help="torch.compile the training step (views, model, loss); its kernels "
                     "are cached per machine in $SELFSUP_CACHE/inductor, so only the first "
                     "run pays the full compile time")
    pre.add_argument("--rankme-every", type=int, metavar="STEPS",
                     help="measure RankMe every STEPS steps as well as at each epoch end")
    pre.add_argument("--logger", action="append", choices=LOGGERS, dest="loggers",
                     help="also log to an experiment tracker, into RUN/logs/ (repeatable): csv, "
                     "tensorboard, mlflow (file store RUN/logs/mlflow), wandb (offline)")

    ev = sub.add_parser("evaluate", help="evaluate a run's encoder with frozen features",
                        formatter_class=fmt, epilog="examples:\n"
                        "  selfsup evaluate runs/simclr-fashion-mnist-20260101-120000\n"
                        "  selfsup evaluate RUN_DIR --protocol knn,linear,nb,fewshot,layers\n"
                        "  selfsup evaluate RUN_DIR --data ./labelled_images --protocol knn\n"
                        "  selfsup evaluate RUN_DIR --protocol knn --preprocessing "
                        "size=32,std=0.5\n"
                        "  selfsup evaluate RUN_DIR --eval-data ./labelled_images  # eval.json\n"
                        "  selfsup evaluate VIT_RUN --protocol prompt_seg --data fashion-mnist")
    ev.add_argument("run_dir")
    ev.add_argument("--data", help="default: the run's own data")
    ev.add_argument("--protocol", default="knn,linear,rankme,raw_knn",
                    help="comma-separated: knn, linear (C chosen on a validation split), nb "
                    "(Gaussian naive Bayes), fewshot (1-100%% of labels, linear and nb, mean "
                    "and std over 3 subsets), layers (each stage and the projector), rankme, "
                    "raw_knn, finetune (end to end, see `selfsup finetune`), prompt_seg "
                    "(ViTs: zero-shot segmentation by a prompt patch; needs object masks: a "
                    ".npz with masks, a folder with images/ and masks/ twins, fashion-mnist); "
                    "tables: mlp (an MLP on the embeddings), raw_mlp (on the raw features), gbt "
                    "(gradient-boosted trees on the raw features), at 100%% and 10%% of the "
                    "labels; default knn,linear,rankme,raw_knn")
    ev.add_argument("--k", type=int, default=200, help="kNN neighbours (default 200)")
    ev.add_argument("--temperature", type=float, default=0.1,
                    help="kNN vote temperature (default 0.1)")
    ev.add_argument("--train-samples", metavar="N|all|auto", default="auto",
                    help="fit the probes on a class-stratified sample of N training images "
                    "(default auto: the images that hold 160M input values, all of "
                    "Fashion-MNIST and CIFAR-10)")
    ev.add_argument("--test-samples", metavar="N|all", default="10000",
                    help="score them on N test images (default 10000)")
    ev.add_argument("--eval-data", metavar="SOURCE",
                    help="run the probes on this labelled source (a run pretrained on "
                    "unlabelled data, say); RankMe stays on the run's own data; results under "
                    "eval_data in the same file as --data's (eval.json by default)")
    ev.add_argument("--preprocessing", metavar="SPEC",
                    help="override the encoder's own preprocessing: none, or e.g. "
                    "size=32,mean=0.5,std=0.5 (results go to eval-<data>-<SPEC>.json)")

    ft = sub.add_parser("finetune", help="fine-tune a run's encoder end to end on a few or "
                        "many labels, beside the same architecture from scratch",
                        formatter_class=fmt, epilog="examples:\n"
                        "  selfsup finetune RUN_DIR --labels 1%,10%,100%\n"
                        "  selfsup finetune RUN_DIR --data ./labelled_images --labels 10% "
                        "--steps 500\n"
                        "  selfsup finetune RUN_DIR --layer-decay 0.75     # ViTs")
    ft.add_argument("run_dir")
    ft.add_argument("--data", help="labelled source (default: the run's own data)")
    ft.add_argument("--labels", default="1%,10%,100%",
                    help="fractions of the training labels, class-balanced (default "
                    "1%%,10%%,100%%)")
    ft.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                    help="one run per seed and fraction (default 0 1 2)")
    ft.add_argument("--steps", type=int, help="optimizer steps per run, every fraction alike "
                    "(default 300)")
    ft.add_argument("--batch-size", type=int, help="default 128")
    ft.add_argument("--lr", type=float, help="AdamW peak lr (default 2e-3 x batch / 256)")
    ft.add_argument("--layer-decay", type=float, help="layer-wise lr decay for ViTs, e.g. 0.75")

    em = sub.add_parser("embed", help="write a run's embeddings of a source to .npy or .parquet",
                        formatter_class=fmt, epilog="examples:\n"
                        "  selfsup embed RUN_DIR --out emb.npy      # + emb.labels.npy, emb.json\n"
                        "  selfsup embed RUN_DIR --data ./images --out emb.parquet")
    em.add_argument("run_dir")
    em.add_argument("--data", help="default: the run's own data")
    em.add_argument("--out", required=True, help="FILE.npy (float32 (N, D) + FILE.labels.npy, "
                    "FILE.json, FILE.paths.txt for folders) or FILE.parquet (needs pyarrow)")
    em.add_argument("--split", choices=["all", "train", "test"], default="all")

    ex = sub.add_parser("export", help="export a run's encoder for serving (ONNX or "
                        "torch.export), with its preprocessing in FILE.json",
                        formatter_class=fmt, epilog="examples:\n"
                        "  selfsup export RUN_DIR --out encoder.onnx   # + encoder.onnx.json\n"
                        "  selfsup export RUN_DIR --format pt2 --out encoder.pt2\n\n"
                        "the graph takes uint8 images (batch, C, S, S) at the encoder's input "
                        "size and returns\nfeatures (batch, dim); FILE.json says how to resize "
                        "and the mean/std applied inside")
    ex.add_argument("run_dir")
    ex.add_argument("--format", choices=["onnx", "pt2"],
                    help="onnx (checked with onnxruntime when installed) or pt2 "
                    "(torch.export.load); default: from --out's suffix")
    ex.add_argument("--out", required=True, metavar="FILE", help="FILE.onnx or FILE.pt2")

    sh = sub.add_parser("shard", help="write an image folder as WebDataset tar shards, for "
                        "data past one folder (streamed, split over processes and workers)",
                        formatter_class=fmt, epilog="examples:\n"
                        "  selfsup shard ./photos --out shards      # shards/train-000000.tar ...\n"
                        "  selfsup shard ./imagenet --out in-shards --shard-size 2000\n"
                        "  selfsup pretrain --data 'shards/train-{000000..000009}.tar'\n\n"
                        "labels come from class sub-folders, train/ and test/ become train-* and "
                        "test-* shards;\nshards/index.json records counts and labels, so "
                        "--data shards (the folder) reads both")
    sh.add_argument("folder")
    sh.add_argument("--out", required=True, metavar="DIR", help="folder for the shards (new "
                    "or empty)")
    sh.add_argument("--shard-size", type=int, default=1000, metavar="N",
                    help="images per shard (default 1000)")
    sh.add_argument("--seed", type=int, default=0,
                    help="the shuffle that mixes classes across shards (default 0)")

    rp = sub.add_parser("report", help="write RUN_DIR/report.html (curves, probes, maps)",
                        formatter_class=fmt, epilog="example:\n  selfsup report RUN_DIR\n"
                        "  selfsup report RUN_DIR --map tsne")
    rp.add_argument("run_dir")
    rp.add_argument("--data", help="images for the map and neighbours (default: the run's)")
    rp.add_argument("--map", choices=["pca", "tsne"], default="pca",
                    help="2-D embedding map (default pca; tsne is slower)")

    cp = sub.add_parser("compare", help="a table of runs: method, budget, probes, RankMe",
                        formatter_class=fmt, epilog="example:\n"
                        "  selfsup compare runs/* --out runs.md")
    cp.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    cp.add_argument("--out", metavar="FILE.md", help="also write the table as markdown")

    sub.add_parser("methods", help="list the registered methods", formatter_class=fmt,
                   epilog="example:\n  selfsup methods")
    return p


def _config_from_args(a: argparse.Namespace) -> dict[str, Any]:
    """The config file's fields (``--config``), then the flags given on top of them."""
    from .train.config import read_config_file

    opts: dict[str, Any] = read_config_file(a.config) if a.config else {}
    flags = {
        "method": a.method, "data": a.data, "backbone": a.backbone, "epochs": a.epochs,
        "steps": a.steps, "time_budget": a.time_budget, "compute": a.compute,
        "batch_size": a.batch_size, "optimizer": a.optimizer,
        "lr": a.lr, "weight_decay": a.weight_decay, "grad_clip": a.grad_clip,
        "image_size": a.image_size, "channels": a.channels, "precision": a.precision,
        "devices": a.devices,
        "num_nodes": a.num_nodes, "run_dir": a.run_dir, "seed": a.seed,
        "schedule": a.schedule, "init_from": a.init_from, "classes": a.classes,
        "sync_batchnorm": a.sync_batchnorm, "batch_sampler": a.batch_sampler,
        "select_by": a.select_by, "rankme_every": a.rankme_every, "loggers": a.loggers,
        "ema": a.ema, "compile": a.compile,
        "eval_train_samples": _samples(a.eval_train_samples, auto=True),
        "eval_test_samples": _samples(a.eval_test_samples),
        "target": a.target, "task": a.task,
        "categorical": [c.strip() for c in a.categorical.split(",") if c.strip()]
        if a.categorical else None,
    }
    # flags given override the config file; the rest fall back to PretrainConfig's defaults
    opts.update({k: v for k, v in flags.items() if v is not None})
    # a flag adds to the file's method_args/views rather than replacing them
    if a.method_arg:
        opts["method_args"] = {**opts.get("method_args", {}), **_key_values(a.method_arg)}
    if a.backbone_arg:
        opts["backbone_args"] = {**opts.get("backbone_args", {}),
                                 **_key_values(a.backbone_arg)}
    if a.view:
        opts["views"] = {**opts.get("views", {}), **_key_values(a.view)}
    return opts


def _samples(text: str | None, auto: bool = False) -> int | str | None:
    """--eval-*-samples: a number of images, all (0) or, for training, auto."""
    if text is None:
        return None
    if text in ("all", "0"):
        return 0
    if auto and text == "auto":
        return "auto"
    if text.isdigit():
        return int(text)
    from .train import ConfigError

    raise ConfigError(f"--eval-*-samples takes a number of images, all{' or auto' * auto}; "
                      f"got {text!r}")


def _cmd_pretrain(a: argparse.Namespace) -> int:
    import selfsup

    if a.resume:
        extend = {k: v for k, v in (("epochs", a.epochs), ("steps", a.steps),
                                    ("time_budget", a.time_budget), ("compute", a.compute))
                  if v is not None}
        run = selfsup.pretrain(resume=a.resume, progress=not a.no_progress,
                               evaluate_after=not a.no_eval, eval_data=a.eval_data,
                               report=not a.no_report, **extend)
    else:
        opts = _config_from_args(a)
        run = selfsup.pretrain(progress=not a.no_progress, evaluate_after=not a.no_eval,
                               eval_data=a.eval_data, report=not a.no_report, **opts)
    if run.is_global_zero:
        print_results(run)
    return EXIT_OK


def _cmd_evaluate(a: argparse.Namespace) -> int:
    import json

    import selfsup

    protocols = [p.strip() for p in a.protocol.split(",") if p.strip()]
    try:
        results = selfsup.evaluate(a.run_dir, data=a.data, protocols=protocols, k=a.k,
                                   temperature=a.temperature, preprocessing=a.preprocessing,
                                   eval_data=a.eval_data,
                                   train_samples=_samples(a.train_samples, auto=True),
                                   test_samples=_samples(a.test_samples))
    except ValueError as e:
        print(f"selfsup: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    print_scores(results)
    if "eval_data" in results:
        print(f"on {results['eval_data']['data']}:")
        print_scores(results["eval_data"])
    print_label_hint(results, a.run_dir)
    print(json.dumps({"eval_json": results["written_to"]}))
    return EXIT_OK


def _cmd_finetune(a: argparse.Namespace) -> int:
    import json

    import selfsup

    try:
        result = selfsup.finetune(a.run_dir, data=a.data, labels=a.labels, seeds=tuple(a.seeds),
                                  steps=a.steps, batch_size=a.batch_size, lr=a.lr,
                                  layer_decay=a.layer_decay, progress=True)
    except ValueError as e:
        print(f"selfsup: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    print_finetune(result)
    print(json.dumps({"eval_json": result["written_to"]}))
    return EXIT_OK


def _cmd_embed(a: argparse.Namespace) -> int:
    import selfsup

    try:
        written = selfsup.embed(a.run_dir, a.out, data=a.data, split=a.split)
    except (ValueError, ImportError) as e:
        print(f"selfsup: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    print("\n".join(str(p) for p in written))
    return EXIT_OK


def _cmd_export(a: argparse.Namespace) -> int:
    from .export import export_encoder

    try:
        done = export_encoder(a.run_dir, a.out, a.format)
    except (ValueError, ImportError) as e:
        print(f"selfsup: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    checked = ("" if done.max_abs_diff is None else
               f" (max |difference| from PyTorch {done.max_abs_diff:.2g})")
    print(f"{done.path}{checked}\n{done.meta_path}")
    return EXIT_OK


def _cmd_shard(a: argparse.Namespace) -> int:
    from pathlib import Path

    from .data import DataError
    from .data.shard_writer import write_shards

    if not Path(a.folder).is_dir():
        raise DataError(f"{a.folder} is not a folder: give an image folder to write as shards")
    done = write_shards(a.folder, a.out, a.shard_size, a.seed)
    for split, n in done.samples.items():
        print(f"{split}: {n} images in {done.shards[split]} shard(s): {done.pattern(split)}")
    print(f"use: selfsup pretrain --data '{done.pattern()}'   (or --data {done.out})")
    return EXIT_OK


def _cmd_report(a: argparse.Namespace) -> int:
    from .report import write_report

    print(write_report(a.run_dir, a.data, a.map))
    return EXIT_OK


def _cmd_compare(a: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from .report.compare import COLUMNS, HEADER, compare_rows, format_cell, markdown_table

    rows = compare_rows(a.run_dirs)
    table = Table(title="selfsup runs (test top-1 %)")
    for col, name in zip(COLUMNS, HEADER, strict=True):
        table.add_column(name, justify="right" if col not in ("run", "method", "backbone")
                         else "left")
    for r in rows:
        table.add_row(*(format_cell(k, r[k]) for k in COLUMNS))
    Console(width=160).print(table)
    if a.out:
        Path(a.out).write_text(markdown_table(rows))
        print(a.out)
    return EXIT_OK


def _cmd_methods(a: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from .guard import GUARD_BATCH, GUARD_DATA, GUARD_K, GUARD_STEPS
    from .methods import METHODS

    sources = " / ".join(GUARD_DATA.values())
    table = Table(title="selfsup methods", caption=(
        f"status: what the learning guard measured after {GUARD_STEPS} steps of {GUARD_BATCH} "
        f"on {sources}: ready = above its own untrained encoder (kNN k={GUARD_K}); collapses "
        "= the collapse monitor fired; experimental = trains, but not above its untrained "
        "encoder"))
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
    from .rundir import CheckpointRefused, DamagedFile
    from .train import ConfigError
    from .train.module import TrainingDiverged

    user_errors = (ConfigError, DataError, CheckpointRefused, DamagedFile, FileNotFoundError)
    try:
        return {"pretrain": _cmd_pretrain, "evaluate": _cmd_evaluate, "embed": _cmd_embed,
                "finetune": _cmd_finetune, "export": _cmd_export, "shard": _cmd_shard,
                "report": _cmd_report, "compare": _cmd_compare,
                "methods": _cmd_methods}[args.command](args)
    except user_errors as e:
        print(f"selfsup: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingDiverged as e:
        print(f"selfsup: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("selfsup: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
