"""A long-tailed Fashion-MNIST for the iSogCLR vs SimCLR check (issue 6).

Training class counts decay exponentially from 6000 (class 0) to 60 (class 9), 100:1, as in the
long-tailed CIFAR sets iSogCLR reports on (Qiu et al. 2023, Sec. 5); the test split stays the
full balanced 10k, so kNN and linear probes weigh every class alike.

    .venv/bin/python benchmarks/long_tail.py --out data/fashion-mnist-lt100.npz
    for s in 0 1 2; do for m in simclr isogclr; do
      .venv/bin/selfsup pretrain --method $m --data data/fashion-mnist-lt100.npz --seed $s \
          --no-progress --run-dir runs/lt100-$m-s$s; done; done
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from selfsup.data import load_source


def long_tail_counts(largest: int, classes: int, ratio: float) -> list[int]:
    """n_c = largest * ratio^(-c / (classes - 1)): ``largest`` down to ``largest / ratio``."""
    return [round(largest * ratio ** (-c / (classes - 1))) for c in range(classes)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--ratio", type=float, default=100.0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    source = load_source("fashion-mnist")
    x, y = source.train.images.numpy(), source.train.labels
    rng = np.random.default_rng(a.seed)
    counts = long_tail_counts(int(np.bincount(y).max()), 10, a.ratio)
    keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:n]
                                   for c, n in enumerate(counts)]))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(a.out, x=x[keep], y=y[keep], x_test=source.test.images.numpy(),
                        y_test=source.test.labels, classes=np.array(source.classes))
    print(f"{a.out}: {len(keep)} training images, per class {counts}")


if __name__ == "__main__":
    main()
