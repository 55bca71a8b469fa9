"""The evaluation after pretraining, bounded (issue 40): what fitting the probes on a stratified
sample of the training split costs in accuracy, and what it saves in time.

(a) CIFAR-10 as a JPEG folder, one SimCLR encoder (the default backbone, a short budget): kNN
(k=200, T=0.1), linear-probe and raw-pixel kNN top-1 with the whole training split (50,000)
against class-stratified samples (`selfsup.data.split.stratified_indices`) of each size, over
several sampling seeds, on the full test split. The features are extracted once and sliced,
which gives the same probes `evaluate_encoder` runs on the same images; the evaluation seconds
are `evaluate_encoder` itself (the default protocols, sampling seed 0, extraction included).

(b) A generated folder of 100,000 PNGs, 64 px, 200 classes (benchmarks/index_scale.py's
generator: ``--distinct`` distinct images per class, each class its own colour under per-image
noise, hard-linked to fill the folder): indexing it (a fresh process) and
`selfsup.evaluate(run_dir, data=folder)` with the default protocols after pretraining (knn,
linear, rankme, raw_knn), in a process that has indexed the folder as `selfsup pretrain` has,
for an encoder pretrained a few steps on it (the time does not depend on training quality):
bounded by default, with the whole test split, a larger training bound and both whole splits,
against a 10-minute training budget.

The raw-pixel baseline cache is off throughout (SELFSUP_CACHE=off): a first run on a folder
pays for it. Results of each part are kept under ``--work`` and reused by the same command.

    python benchmarks/eval_sample.py --cifar /tmp/evalsample/cifar10 --work /tmp/evalsample
A quick check (a minute, nothing appended):
    python benchmarks/eval_sample.py --cifar /tmp/evalsample/cifar10 --work /tmp/es-quick \\
        --sizes 1000 --seeds 0 --large-n 4000 --large-classes 20 --budget 10s --no-append
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

os.environ["SELFSUP_CACHE"] = "off"  # every evaluation computes its raw-pixel baseline
sys.path.insert(0, str(Path(__file__).parent))
from index_scale import make_folder, measure_index  # noqa: E402
from results_md import cached, mean_std, pretrain_or_reuse, save_json, write_table  # noqa: E402

import selfsup  # noqa: E402
from selfsup.api import load_for_encoder  # noqa: E402
from selfsup.data import load_source  # noqa: E402
from selfsup.data.split import stratified_indices  # noqa: E402
from selfsup.evaluate import DEFAULT_PROTOCOLS, evaluate_encoder, extract_features  # noqa: E402
from selfsup.evaluate.features import raw_pixels  # noqa: E402
from selfsup.evaluate.probes import knn_accuracy, linear_probe  # noqa: E402
from selfsup.evaluate.suite import (  # noqa: E402
    DEFAULT_TEST_SAMPLES,
    DEFAULT_TRAIN_SAMPLES,
    train_test,
)
from selfsup.hardware import has_bf16  # noqa: E402

TRAIN_BUDGET_S = 600  # the default pretraining budget the evaluation is measured against
GOAL_SHARE = 0.2  # the evaluation after pretraining: under a fifth of it


def pretrained(run_dir: Path, data: str, **budget) -> Path:
    return pretrain_or_reuse(run_dir, "weights", method="simclr", data=data,
                             evaluate_after=False, progress=False, **budget)


def probe_scores(feats: dict, raw: dict, idx: np.ndarray | None, k: int) -> dict:
    """kNN, linear and raw-pixel kNN top-1 with the training rows ``idx`` (None: all)."""
    pick = (lambda a: a) if idx is None else (lambda a: a[idx])
    tr_x, tr_y, te_x, te_y = feats["train_x"], feats["train_y"], feats["test_x"], feats["test_y"]
    return {"knn": knn_accuracy(pick(tr_x), pick(tr_y), te_x, te_y, k),
            "linear": linear_probe(pick(tr_x), pick(tr_y), te_x, te_y)["top1"],
            "raw_knn": knn_accuracy(pick(raw["train_x"]), pick(raw["train_y"]), raw["test_x"],
                                    raw["test_y"], k)}


def accuracy_cost(run_dir: Path, folder: str, sizes: list[int], seeds: list[int],
                  k: int = 200) -> dict:
    """Top-1 of the probes on the whole training split and on samples of each size and seed."""
    encoder = selfsup.load(run_dir)
    source, _ = load_for_encoder(encoder, folder)
    train, test, _ = train_test(source)
    bf16 = has_bf16()
    feats, raw = {}, {}
    for name, split in (("train", train), ("test", test)):
        feats[f"{name}_x"], feats[f"{name}_y"] = extract_features(encoder, split, bf16=bf16)
        raw[f"{name}_x"], raw[f"{name}_y"] = raw_pixels(split, encoder.preprocessing.input_size)
    rows = {"whole": [probe_scores(feats, raw, None, k)]}
    print(f"whole {len(train)}: {rows['whole'][0]}", flush=True)
    for n in sizes:
        rows[str(n)] = []
        for seed in seeds:
            idx = stratified_indices(feats["train_y"], n, seed)
            rows[str(n)].append(probe_scores(feats, raw, idx, k) | {"seed": seed})
            print(f"{n} seed {seed}: {rows[str(n)][-1]}", flush=True)
    return {"n_train": len(train), "n_test": len(test), "scores": rows}


def eval_seconds(run_dir: Path, folder: str, sizes: list[int | None]) -> dict:
    """`evaluate_encoder` with the default protocols per training sample size (None: all)."""
    encoder = selfsup.load(run_dir)
    source, _ = load_for_encoder(encoder, folder)
    out = {}
    for n in sizes:
        ev = evaluate_encoder(encoder, source, DEFAULT_PROTOCOLS, bf16=has_bf16(),
                              train_samples=n)
        out[str(n)] = {key: ev[key] for key in ("eval_seconds", "seconds", "n_train", "n_test",
                                                "knn_top1", "linear_top1",
                                                "raw_pixels_knn_top1")}
        print(f"evaluate_encoder, train_samples={n}: {out[str(n)]}", flush=True)
    return out


def class_pngs(classes: int, per_class: int, side: int) -> list[bytes]:
    """``classes * per_class`` distinct PNGs, blob j of class j % classes: the class's colour
    under per-image noise, so the probes have something to find and the features differ."""
    rng = np.random.default_rng(0)
    colours = rng.integers(40, 216, (classes, 3))
    blobs = []
    for j in range(classes * per_class):
        noise = rng.normal(0, 40, (side, side, 3))
        pixels = np.clip(colours[j % classes] + noise, 0, 255).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, format="PNG")
        blobs.append(out.getvalue())
    return blobs


def large_folder(root: Path, n: int, classes: int, side: int, distinct: int) -> Path:
    folder = root / f"folder-{n}-{classes}c-{side}px"
    if not (folder / ".done").is_file():
        made = make_folder(folder, n, class_pngs(classes, distinct, side), classes=classes)
        (folder / ".done").write_text(json.dumps(made))
        print(f"made {folder}: {made}", flush=True)
    return folder


def timed_evaluate(run_dir: Path, folder: Path, train: int | None, test: int | None) -> dict:
    """`selfsup.evaluate` as a run's evaluation calls it: the folder indexed again, then the
    default protocols after pretraining; its wall seconds and eval.json's own account."""
    t0 = time.perf_counter()
    ev = selfsup.evaluate(run_dir, data=str(folder), protocols=["knn", "linear", "rankme",
                                                                "raw_knn"],
                          train_samples=train, test_samples=test)
    wall = time.perf_counter() - t0
    keep = ("eval_seconds", "seconds", "n_train", "n_test", "probe_train_samples",
            "probe_test_samples", "raw_knn_samples", "knn_top1", "linear_top1",
            "raw_pixels_knn_top1")
    out = {"wall_seconds": round(wall, 1)} | {key: ev[key] for key in keep if key in ev}
    print(f"evaluate, train_samples={train}, test_samples={test}: {out}", flush=True)
    return out


def large_eval(work: Path, a: argparse.Namespace) -> dict:
    folder = large_folder(work, a.large_n, a.large_classes, a.side, a.distinct)
    index = measure_index(folder)
    print(f"indexed: {index}", flush=True)
    run_dir = pretrained(work / "runs" / f"simclr-{folder.name}", str(folder), steps=a.steps)
    # as in `selfsup pretrain`, whose training indexed the folder first: evaluation's index
    # then reads the process's memo of checked files (data/folder.py) instead of every file
    load_source(str(folder))
    tag = f"{folder.name}-{a.steps}steps"
    bounds = [(DEFAULT_TRAIN_SAMPLES, DEFAULT_TEST_SAMPLES), (DEFAULT_TRAIN_SAMPLES, None)]
    bounds += [(n, DEFAULT_TEST_SAMPLES) for n in a.large_train_samples]
    bounds += [(None, None)] if a.large_whole else []
    runs = {f"{tr}/{te}": cached(work / "results" / f"large-{tag}-eval-{tr}-{te}.json",
                                 lambda tr=tr, te=te: timed_evaluate(run_dir, folder, tr, te))
            for tr, te in bounds}
    return {"folder": str(folder), "index": index, "evaluate": runs}


def cifar_tables(cost: dict, seconds: dict, a: argparse.Namespace, steps: int) -> None:
    whole = cost["scores"]["whole"][0]
    header = ["probe training split", "seeds", "kNN top-1 (%)", "Δ kNN", "linear top-1 (%)",
              "Δ linear", "raw-pixel kNN top-1 (%)", "eval seconds (seed 0)"]
    rows = []
    for key, runs in cost["scores"].items():
        n = cost["n_train"] if key == "whole" else int(key)
        cells = [f"{'whole: ' if key == 'whole' else 'sample of '}{n:,}", len(runs)]
        for probe in ("knn", "linear", "raw_knn"):
            values = [100 * r[probe] for r in runs]
            cells.append(mean_std(values))
            if probe != "raw_knn":
                cells.append(f"{statistics.mean(values) - 100 * whole[probe]:+.2f}")
        cells.append(seconds.get("None" if key == "whole" else key, {}).get("eval_seconds", ""))
        rows.append(cells)
    write_table(f"Evaluation on a stratified sample of the training split: CIFAR-10 folder, "
                f"simclr {a.budget}", header, rows,
                notes=f"one encoder (default backbone, {steps} steps of batch 256: a "
                 f"{a.budget} budget on this machine); probes on "
                 f"the {cost['n_train']:,}-image training split or a class-stratified sample "
                 f"of it, tested on all {cost['n_test']:,} test images; mean ± std over "
                 "sampling seeds; Δ against the whole split; eval seconds: evaluate_encoder "
                 "with the default protocols (knn, linear, rankme, raw_knn), features "
                 "included, raw-pixel cache off")


def large_table(large: dict, a: argparse.Namespace) -> None:
    header = ["step", "train_samples / test_samples", "probes fit on / scored on",
              "seconds (wall)", "of which eval.json's eval_seconds",
              "share of a 10-minute budget", "breakdown (s)"]
    index = large["index"]
    rows = [["index the folder, first time in a process (pretraining pays it before training)",
             "", "", index["seconds"], "",
             f"{100 * index['seconds'] / TRAIN_BUDGET_S:.1f}%", ""]]
    default = f"{DEFAULT_TRAIN_SAMPLES}/{DEFAULT_TEST_SAMPLES}"
    for key, ev in large["evaluate"].items():
        bounds = " / ".join("all" if n == "None" else n if not n.isdigit() else f"{int(n):,}"
                            for n in key.split("/"))
        rows.append(["selfsup.evaluate(run, data=folder) after pretraining, re-indexing included",
                     bounds + (" (default)" if key == default else ""),
                     f"{ev['n_train']:,} / {ev['n_test']:,}", ev["wall_seconds"],
                     ev["eval_seconds"], f"{100 * ev['wall_seconds'] / TRAIN_BUDGET_S:.1f}%",
                     ", ".join(f"{k} {v}" for k, v in ev["seconds"].items())])
    write_table(f"Evaluation after pretraining on {a.large_n:,} images, {a.side} px, "
                 f"{a.large_classes} classes: bounded by default (goal < "
                 f"{GOAL_SHARE * TRAIN_BUDGET_S / 60:.0f} min of a 10-minute run)", header,
                 rows, notes=f"generated folder ({a.distinct} distinct PNGs per class, "
                 "hard-linked); encoder: simclr, default backbone, "
                 f"{a.steps} steps (time does not depend on training quality); protocols knn, "
                 "linear, rankme, raw_knn; raw-pixel cache off; breakdown from eval.json "
                 "(features = train and test extraction)")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cifar", help="CIFAR-10 folder (train/, test/); leave out to skip (a)")
    p.add_argument("--work", default="/tmp/eval-sample", help="runs, folders and results")
    p.add_argument("--budget", default="3m", help="pretraining budget of the CIFAR-10 encoder")
    p.add_argument("--sizes", type=int, nargs="+", default=[5000, 10000, 20000])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--large-n", type=int, default=100_000, help="0: skip (b)")
    p.add_argument("--large-classes", type=int, default=200)
    p.add_argument("--side", type=int, default=64)
    p.add_argument("--distinct", type=int, default=20, help="distinct images per class")
    p.add_argument("--steps", type=int, default=20, help="pretraining steps on the folder")
    p.add_argument("--large-train-samples", type=int, nargs="*", default=[],
                   help="other training bounds to time on the large folder (default test bound)")
    p.add_argument("--no-large-whole", dest="large_whole", action="store_false",
                   help="skip timing the whole training split on the large folder")
    p.add_argument("--no-append", action="store_true", help="print only; leave RESULTS.md")
    a = p.parse_args(argv)
    work = Path(a.work)
    result: dict = {}
    if a.cifar:
        run_dir = pretrained(work / "runs" / f"simclr-cifar10-{a.budget}", a.cifar,
                             time_budget=a.budget)
        tag = f"{a.budget}-{'_'.join(map(str, a.sizes))}-s{'_'.join(map(str, a.seeds))}"
        result["cifar_cost"] = cached(work / "results" / f"cifar-cost-{tag}.json",
                                      lambda: accuracy_cost(run_dir, a.cifar, a.sizes, a.seeds))
        result["cifar_seconds"] = cached(
            work / "results" / f"cifar-seconds-{a.budget}-{'_'.join(map(str, a.sizes))}.json",
            lambda: eval_seconds(run_dir, a.cifar, [None, *a.sizes]))
    if a.large_n:
        result["large"] = large_eval(work, a)
    if not a.no_append:
        save_json("eval_sample", result)
        if a.cifar:
            steps = json.loads((run_dir / "encoder.json").read_text())["steps"]
            cifar_tables(result["cifar_cost"], result["cifar_seconds"], a, steps)
        if a.large_n:
            large_table(result["large"], a)
    return result


if __name__ == "__main__":
    main()
