"""What a preprocessing mismatch costs: kNN (and optionally linear) top-1 of one run's encoder
when evaluation resizes or normalizes differently from pretraining.

Example (the table in RESULTS.md):
    python benchmarks/preprocessing_mismatch.py runs/simclr-fashion-mnist-20261127-101500
Each setting is a `selfsup evaluate RUN --preprocessing SPEC` override; "own" is the encoder's
own preprocessing (what selfsup always applies unless told otherwise).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from results_md import append_table, save_json  # noqa: E402

import selfsup  # noqa: E402


def settings_for(pre) -> list[tuple[str, str | None]]:
    """(description, --preprocessing spec) pairs around the encoder's own preprocessing."""
    s = pre.input_size
    return [
        ("own preprocessing", None),
        ("no normalization (pixels in [0, 1])", "mean=0,std=1"),
        ("normalized with 0.5 / 0.5", "mean=0.5,std=0.5"),
        ("normalized with ImageNet's mean/std", "mean=0.485,std=0.229"),
        (f"resized to {round(0.75 * s)} px", f"size={round(0.75 * s)}"),
        (f"resized to {round(1.5 * s)} px", f"size={round(1.5 * s)}"),
        (f"resized to {2 * s} px", f"size={2 * s}"),
        ("none (source size, no normalization)", "none"),
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir")
    p.add_argument("--data", help="default: the run's own data")
    p.add_argument("--protocol", default="knn", help="knn or knn,linear")
    p.add_argument("--no-append", action="store_true", help="print only; leave RESULTS.md alone")
    a = p.parse_args()
    protocols = a.protocol.split(",")
    pre = selfsup.load(a.run_dir).preprocessing
    rows, records, own = [], [], None
    for label, spec in settings_for(pre):
        ev = selfsup.evaluate(a.run_dir, data=a.data, protocols=protocols, preprocessing=spec)
        used = ev["preprocessing"]
        own = own if own is not None else ev["knn_top1"]
        row = [label, f"`{spec}`" if spec else "–", used["input_size"],
               "/".join(f"{v:.3g}" for v in used["mean"]),
               "/".join(f"{v:.3g}" for v in used["std"]), f"{100 * ev['knn_top1']:.2f}",
               f"{100 * (ev['knn_top1'] - own):+.2f}"]
        if "linear" in protocols:
            row.append(f"{100 * ev['linear_top1']:.2f}")
        rows.append(row)
        records.append({"setting": label, "spec": spec, "eval": ev})
        print(" | ".join(str(c) for c in row), flush=True)
    save_json("preprocessing-mismatch", records)
    if not a.no_append:
        header = ["evaluation preprocessing", "--preprocessing", "input px", "mean", "std",
                  "kNN top-1 %", "Δ vs own"] + (["linear top-1 %"] if "linear" in protocols
                                                  else [])
        append_table(f"Preprocessing mismatch: {Path(a.run_dir).name}", header, rows,
                     "one encoder, evaluated with its own preprocessing and with overrides; "
                     "kNN k=200, T=0.1 on the run's own train/test split")


if __name__ == "__main__":
    main()
