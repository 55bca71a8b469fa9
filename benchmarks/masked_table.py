"""The masked family (MAE, CAE, HPM, Uni4Eye, ... : ``--methods``; on vit_tiny, Selfie on its
ConvNet patch network) against SimCLR on vit_tiny and on resnet10w32, each judged by kNN,
linear, end-to-end fine-tuning at several label fractions (beside the same architecture trained
from scratch on the same labels), zero-shot segmentation by a prompt patch (mIoU on the
source's foreground masks) and training images/s
(issues 14 and 15). The papers' small-scale claims (HPM above MAE, CAE's linear probe above
MAE's, MixedAE above MAE) are read off the same runs and printed as seen, not seen or
inconclusive (the mean ± std intervals overlap).

One `selfsup pretrain` per (method, backbone, seed) into ``<root>/<method>-<backbone>-s<seed>``,
then `selfsup.finetune` on it. Every stage is kept and reused, so the study (hours on a 2-core
CPU) can be done over several sittings with the same command:
- a run directory with eval.json is reused; one with a checkpoint but no eval.json (cut short)
  is resumed from its last checkpoint (its time budget counts the time already spent);
- fine-tuning results are cached per run, one file per fraction, arm and seed
  (``finetune-<arm>-<labels>-<steps>-s<seed>.json``);
- every cached result (a run's summary.json, prompt-seg.json, fine-tuning files, the untrained
  bars) also goes into a ledger committed with the benchmarks
  (``benchmarks/ledger/masked-<data>-<budget>.jsonl`` for the default root): run directories
  are git-ignored and lost with a checkout, and a result found only in the ledger is read from
  it, not rerun.

Issue 14's table (each MAE run fine-tuned under its own seed, the scratch arms under 3):
    python benchmarks/masked_table.py --budget 30m --methods mae --ft-seed-per-run
Issue 15's (every masked method, 3 seeds, fine-tuning at 10% labels):
    python benchmarks/masked_table.py --budget 30m --labels 10%
Pretraining and probes only, fine-tuning left for a later sitting (``--ft-steps 0``):
    python benchmarks/masked_table.py --data digits --budget 2m --ft-steps 0 \
        --methods mae cae hpm selfie sit mixedae mmc uni4eye
A quick check (a few minutes, nothing appended):
    python benchmarks/masked_table.py --data digits --budget 20s --seeds 0 --ft-seeds 0 \
        --ft-steps 20 --root /tmp/masked-check --no-append
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import selfsup
from selfsup.methods.registry import get_method
from selfsup.rundir import RunDir

sys.path.insert(0, str(Path(__file__).parent))
from results_md import Ledger, append_table, cached, mean_std, pretrain_or_reuse  # noqa: E402


def images_per_s(run: RunDir) -> float | None:
    """The median training throughput of the run's logged steps (None if none was logged)."""
    rows = [json.loads(x) for x in run.metrics.read_text().splitlines()]
    rates = [r["images_per_s"] for r in rows if r.get("images_per_s")]
    return statistics.median(rates) if rates else None


def mean_int(values: list[float]) -> str:
    return f"{statistics.mean(values):.0f}" if values else ""


def on_disk(run_dir: Path) -> Path:
    """``run_dir``, for a result still to compute from its encoder; a clear error when the run
    directory is gone (another checkout) and only the ledger holds its other results."""
    if not RunDir(run_dir).weights.is_file():
        raise SystemExit(f"{run_dir}: a result this table needs is not in the ledger, and the "
                         "run's encoder is not on disk to compute it; delete the ledger's lines "
                         f"for {run_dir.name}/ to pretrain that run again")
    return run_dir


def finetuned(run_dir: Path, labels: str, steps: int, seeds: list[int],
              scratch_seeds: list[int], layer_decay: float | None,
              ledger: Ledger | None = None) -> dict:
    """The run's fine-tuning rows (the pretrained arm under ``seeds``, the from-scratch arm
    under ``scratch_seeds``; [] skips it), one cached `selfsup.finetune` call per fraction, arm
    and seed, so a study cut short loses at most the fine-tuning run in progress (minutes of a
    ViT). ``layer_decay`` applies to the pretrained arm (the protocol's rule). Each call also
    rewrites the run's eval.json "finetune" entry with its own row only: this table, not that
    entry, holds the study."""
    rows, budget = [], None
    for label in labels.split(","):
        arms: dict[str, dict | None] = {}
        for arm, arm_seeds in (("pretrained", seeds), ("scratch", scratch_seeds)):
            decay = f"-ld{layer_decay:g}" if layer_decay and arm == "pretrained" else ""
            name = f"finetune-{arm}-{label.strip('% ')}-{steps}{decay}-s{{}}.json"
            results = [cached(run_dir / name.format(s),
                              lambda s=s, arm=arm, label=label: selfsup.finetune(
                                  on_disk(run_dir), labels=label, seeds=(s,), steps=steps,
                                  layer_decay=layer_decay if arm == "pretrained" else None,
                                  baseline=arm == "scratch", pretrained=arm == "pretrained",
                                  progress=True), ledger)
                       for s in arm_seeds]
            runs = [r["rows"][0][arm]["runs"][0] for r in results]
            # population std over seeds, as selfsup.finetune reports it
            arms[arm] = ({"mean": statistics.mean(runs), "std": statistics.pstdev(runs),
                          "runs": runs} if runs else None)
            if results:
                budget, first = results[0]["budget"], results[0]["rows"][0]
        rows.append({"fraction": first["fraction"], "n_labels": first["n_labels"], **arms})
    return {"rows": rows, "budget": budget}


def summary(run_dir: Path) -> dict:
    """What the table reads of a finished run's own files."""
    run = RunDir(run_dir)
    ev = json.loads(run.eval.read_text())
    meta = json.loads(run.meta.read_text())
    return {"method": meta["method"], "backbone": meta["backbone"]["name"],
            "steps": meta["steps"], "knn": ev["knn_top1"], "linear": ev["linear_top1"],
            "rankme": ev.get("rankme"), "images_per_s": images_per_s(run)}


def record(run_dir: Path, pretrain: Callable[[], Path], labels: str, ft_seeds: list[int],
           scratch_seeds: list[int], ft_steps: int, layer_decay: float | None, data: str,
           ledger: Ledger | None = None) -> dict:
    """One run's row: ``pretrain()`` (pretrain, resume or reuse ``run_dir``) runs only when
    neither the run directory nor the ledger has the run's summary."""
    s = cached(run_dir / "summary.json", lambda: summary(pretrain()), ledger)
    vit = s["backbone"].startswith("vit")
    seg = cached(run_dir / "prompt-seg.json", lambda: selfsup.evaluate(
        on_disk(run_dir), data=data, protocols=["prompt_seg"])["prompt_seg"],
        ledger) if vit else None
    ft = (finetuned(run_dir, labels, ft_steps, ft_seeds, scratch_seeds,
                    layer_decay if vit else None, ledger) if ft_steps
          else {"rows": [], "budget": None})
    return {"run_dir": str(run_dir), **s, "finetune": ft["rows"], "ft_budget": ft["budget"],
            "prompt_miou": seg["miou"] if seg else None}


def untrained(root: Path, method: str, backbone: str, seed: int, data: str,
              ledger: Ledger | None = None) -> dict:
    """kNN and linear top-1 of the encoder a run of ``method`` starts from (its seed, its build,
    no step): the bar its pretraining must clear, since an untrained ViT is far above chance on
    small images (tests/conftest.py's ``untrained_knn`` is the same bar in the smoke tests)."""
    def measure() -> dict:
        import lightning as L

        from selfsup.data.sources import load_source
        from selfsup.evaluate.suite import evaluate_encoder
        from selfsup.train.config import PretrainConfig
        from selfsup.train.run import build_method

        source = load_source(data)
        L.seed_everything(seed, workers=True, verbose=False)
        built = build_method(PretrainConfig(method=method, data=data, backbone=backbone,
                                            seed=seed), source)
        ev = evaluate_encoder(built.export(), source, ("knn", "linear"))
        return {"knn": ev["knn_top1"], "linear": ev["linear_top1"],
                "pool": built.backbone.config.get("pool")}
    return cached(root / f"untrained-{method}-{backbone}-s{seed}.json", measure, ledger)


def table(records: list[dict], bars: dict[str, list[dict]]) -> tuple[list[str], list[list]]:
    fractions = [r["fraction"] for r in records[0]["finetune"]]  # [] without fine-tuning
    header = ["model", "runs", "pretraining steps", "images/s", "kNN %", "linear %",
              "prompt mIoU %"]
    header += [f"fine-tuned at {100 * f:g}% %" for f in fractions]
    header += ["RankMe"]  # of the exported encoder's features at the end (eval.json's)
    rows, scratch = [], {}
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        groups.setdefault((r["method"], r["backbone"]), []).append(r)
    for (method, backbone), rs in groups.items():
        # each run's fine-tuning mean over its seeds; then mean ± std over pretraining seeds
        ft = [mean_std([100 * x["finetune"][i]["pretrained"]["mean"] for x in rs])
              if len(rs) > 1 else mean_std([100 * v for v in rs[0]["finetune"][i]["pretrained"]
                                             ["runs"]]) for i in range(len(fractions))]
        steps = sum(x["steps"] for x in rs) / len(rs)
        seg = (mean_std([100 * x["prompt_miou"] for x in rs]) if rs[0]["prompt_miou"]
               is not None else "")
        ranks = [x["rankme"] for x in rs if x.get("rankme") is not None]
        rank = mean_std(ranks) if ranks else ""
        rows.append([f"{method} {backbone}", len(rs), f"{steps:.0f}",
                     mean_int([x["images_per_s"] for x in rs if x["images_per_s"]]),
                     mean_std([100 * x["knn"] for x in rs]),
                     mean_std([100 * x["linear"] for x in rs]), seg, *ft, rank])
        with_base = [x for x in rs if x["finetune"] and x["finetune"][0]["scratch"]]
        if with_base:
            scratch[backbone] = with_base[0]
    for name, us in bars.items():
        rows.append([name, len(us), "0", "", mean_std([100 * u["knn"] for u in us]),
                     mean_std([100 * u["linear"] for u in us]), "", *[""] * len(fractions),
                     ""])
    for backbone, x in scratch.items():
        cells = [mean_std([100 * v for v in x["finetune"][i]["scratch"]["runs"]])
                 for i in range(len(fractions))]
        rows.append([f"from scratch {backbone}", len(x["finetune"][0]["scratch"]["runs"]),
                     "", "", "", "", "", *cells, ""])
    return header, rows


# (claim, method, metric) read against MAE on the same backbone: the papers' small-scale claims
CLAIMS = (("HPM fine-tunes above MAE (Wang et al. 2023)", "hpm", "finetune"),
          ("HPM probes above MAE (kNN)", "hpm", "knn"),
          ("CAE's encoder probes linearly above MAE's (Chen et al. 2022)", "cae", "linear"),
          ("MixedAE fine-tunes above MAE (Chen et al. 2023)", "mixedae", "finetune"))


def claims(records: list[dict]) -> tuple[list[str], list[list]]:
    """Each claim whose method ran: both means ± std and seen / not seen / inconclusive."""
    def values(method: str, metric: str) -> list[float]:
        rs = [r for r in records if r["method"] == method and r["backbone"].startswith("vit")]
        if metric == "finetune":  # the smallest label fraction, the papers' regime
            return [100 * r["finetune"][0]["pretrained"]["mean"] for r in rs if r["finetune"]]
        return [100 * r[metric] for r in rs]

    rows = []
    for claim, method, metric in CLAIMS:
        ours, mae = values(method, metric), values("mae", metric)
        if not ours or not mae:
            continue
        gap = statistics.mean(ours) - statistics.mean(mae)
        spread = sum(statistics.stdev(v) if len(v) > 1 else 0.0 for v in (ours, mae))
        verdict = "seen" if gap > spread else "not seen" if gap <= 0 else "inconclusive"
        rows.append([claim, mean_std(ours), mean_std(mae), f"{gap:+.2f}", verdict])
    return ["claim", "method %", "MAE %", "difference", "verdict"], rows


def runs(methods: list[str], seeds: list[int], simclr_backbones: list[str],
         simclr_seed: int) -> list[tuple[str, str, int]]:
    """The study's (method, backbone, seed) runs in order: each masked method on its recipe's
    backbone (vit_tiny, but Selfie's product is its paper's ConvNet patch network, and a 7 px
    patch of Fashion-MNIST cannot feed a ViT), then SimCLR once per ``simclr_backbones``."""
    plan = [(m, get_method(m).recipe.backbone, s) for m in methods for s in seeds]
    return plan + [("simclr", b, simclr_seed) for b in simclr_backbones]


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--budget", default="30m", help="pretraining time per run (default 30m)")
    p.add_argument("--methods", nargs="+", default=["mae", "cae", "hpm", "uni4eye"],
                   help="masked methods, each on its recipe's backbone: vit_tiny, Selfie's patch "
                   "network resnet8w32 (default: mae cae hpm uni4eye)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--simclr-seed", type=int, default=0)
    p.add_argument("--simclr-backbones", nargs="*", default=["vit_tiny", "resnet10w32"],
                   help="SimCLR beside the masked family, one run per backbone (none: no row)")
    p.add_argument("--labels", default="1%,10%,100%")
    p.add_argument("--ft-seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="fine-tuning seeds (label subset, head, batch order) of every run")
    p.add_argument("--ft-seed-per-run", action="store_true",
                   help="instead: each run fine-tunes once, under its own pretraining seed")
    p.add_argument("--scratch-seeds", type=int, nargs="+",
                   help="seeds of the from-scratch arm, trained once per backbone (default: "
                   "--ft-seeds, or --seeds with --ft-seed-per-run)")
    p.add_argument("--ft-steps", type=int, default=300)
    p.add_argument("--layer-decay", type=float,
                   help="layer-wise lr decay of the ViTs' pretrained arm (MAE's recipe: 0.75)")
    p.add_argument("--root", help="default: runs/masked/<data>-<budget>")
    p.add_argument("--ledger", help="default: benchmarks/ledger/masked-<data>-<budget>.jsonl "
                   "with the default root, none with --root")
    p.add_argument("--no-append", action="store_true", help="print only; leave RESULTS.md alone")
    a = p.parse_args(argv)
    root = Path(a.root or f"runs/masked/{Path(a.data).stem}-{a.budget}")
    root.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(Path(a.ledger) if a.ledger else None if a.root
                    else Path(__file__).with_name("ledger") / f"masked-{root.name}.jsonl")
    plan = runs(a.methods, a.seeds, a.simclr_backbones, a.simclr_seed)
    own = {m: b for m, b, _ in plan[:len(a.methods) * len(a.seeds)]}  # each method's backbone
    scratch_seeds = a.scratch_seeds or (a.seeds if a.ft_seed_per_run else a.ft_seeds)
    records, has_baseline = [], set()
    for method, backbone, seed in plan:
        run_dir = root / f"{method}-{backbone}-s{seed}"
        def pretrain(run_dir=run_dir, method=method, backbone=backbone, seed=seed) -> Path:
            return pretrain_or_reuse(run_dir, "eval", method=method, data=a.data,
                                     backbone=backbone, time_budget=a.budget, seed=seed,
                                     progress=False)

        # the from-scratch arm depends only on the architecture: the first run of each backbone
        # trains it
        records.append(record(run_dir, pretrain, a.labels,
                              [seed] if a.ft_seed_per_run else a.ft_seeds,
                              [] if backbone in has_baseline else scratch_seeds, a.ft_steps,
                              a.layer_decay, data=a.data, ledger=ledger))
        has_baseline.add(backbone)
        print({k: v for k, v in records[-1].items() if k != "finetune"}, flush=True)
    # the untrained encoders the runs start from: MAE's build (mean of the patch tokens, as
    # every pixel reconstructor here), SimCLR's on the same ViT (CLS) and on the ResNet
    bars = {f"untrained {backbone} ({build})": [untrained(root, method, backbone, s, a.data,
                                                          ledger) for s in a.seeds]
            for method, backbone, build in (("mae", "vit_tiny", "mean of patch tokens"),
                                            ("simclr", "vit_tiny", "CLS"),
                                            ("simclr", "resnet10w32", "pooled"),
                                            *((m, b, "pooled") for m, b in own.items()
                                              if not b.startswith("vit")))
            if method == "mae" or backbone in a.simclr_backbones or method in own}
    header, rows = table(records, bars)
    claim_header, claim_rows = claims(records)
    for row in [header, *rows, claim_header, *claim_rows]:
        print(" | ".join(str(c) for c in row))
    if not a.no_append:
        b = records[0]["ft_budget"]
        ft = (f"fine-tuning: {b['steps']} steps of batch {b['batch_size']}, lr {b['lr']:g}, "
              f"{b['augmentation']}, ViT layer decay {a.layer_decay}, seeds "
              f"{'= each run its own' if a.ft_seed_per_run else a.ft_seeds}, from scratch "
              f"{scratch_seeds}" if b else
              "fine-tuning not run (--ft-steps 0)")
        append_table(f"Masked image modelling: {a.data}, {a.budget} of pretraining per run, CPU",
                     header, rows,
                     f"{ft}; untrained rows: the encoder each method's runs start from, same "
                     f"seeds, no step; mean ± std (sample "
                     "std) over pretraining seeds or fine-tuning seeds (one run); the "
                     f"scratch rows pool every run's scratch arm of that backbone; prompt mIoU "
                     f"on the first images of {a.data} with its foreground masks; runs in "
                     f"{root}")
        if claim_rows:
            append_table(f"Masked image modelling claims: {a.data}, {a.budget} per run, CPU",
                         claim_header, claim_rows,
                         "seen: the mean gap exceeds the two stds summed; not seen: the method "
                         "is at or below MAE; inconclusive otherwise")
    return records


if __name__ == "__main__":
    main()
