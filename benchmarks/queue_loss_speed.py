"""Forward + backward time of the queue losses alone: MoCo's InfoNCE, MoCHi as `selfsup` runs it
(synthetic negatives scored in closed form) and MoCHi with the synthetic negatives spelled out as
(B, s + s', D) vectors (`mix_hard_negatives`, the tests' reference). Same inputs and random
choices for both MoCHi forms; the three alternate, median of the rounds.

    python benchmarks/queue_loss_speed.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from results_md import append_table, save_json  # noqa: E402

from selfsup.objectives import MoCHi, QueueInfoNCE  # noqa: E402
from selfsup.objectives.queue_contrastive import mix_hard_negatives  # noqa: E402


def spelled_out(loss: MoCHi, q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor,
                generator: torch.Generator) -> torch.Tensor:
    """MoCHi's loss with its synthetic negatives built as vectors, then contracted with q."""

    def extra(q, queue, sims):  # (B, s + s')
        vectors = mix_hard_negatives(q, queue, loss.n_hard, loss.n_mixed, loss.n_query_mixed,
                                     generator).vectors
        return torch.einsum("bd,bsd->bs", q, vectors)

    return loss.queue_loss(q, k, queue, extra)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--queue", type=int, default=4096)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--no-record", action="store_true")
    a = p.parse_args(argv)
    gen = torch.Generator().manual_seed(0)
    q0, k, queue = (torch.randn(n, a.dim, generator=gen) for n in (a.batch, a.batch, a.queue))
    mochi = MoCHi(0.2)  # the method's defaults: N = 256, s = 256, s' = 64
    contenders = {"moco (QueueInfoNCE)": lambda q: QueueInfoNCE(0.2)(q, k, queue),
                  "mochi, closed form (selfsup)": lambda q: mochi(
                      q, k, queue, torch.Generator().manual_seed(1)),
                  "mochi, spelled-out vectors": lambda q: spelled_out(
                      mochi, q, k, queue, torch.Generator().manual_seed(1))}
    grads = {}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(a.rounds):
        for name, loss in contenders.items():
            for i in range(a.iters + 2):  # two warm-up iterations per round
                if i == 2:
                    t0 = time.perf_counter()
                q = q0.clone().requires_grad_()
                loss(q).backward()
            times[name].append((time.perf_counter() - t0) / a.iters * 1e3)
            grads[name] = q.grad
    names = list(contenders)
    drift = (grads[names[1]] - grads[names[2]]).abs().max().item()
    rows = [[name, f"{statistics.median(ms):.1f}",
             f"{statistics.median(ms) / statistics.median(times[names[0]]):.1f}x"]
            for name, ms in times.items()]
    for row in rows:
        print(" | ".join(row))
    print(f"max |gradient difference| between the two MoCHi forms: {drift:.1e}")
    if not a.no_record:
        save_json("queue-loss-speed", {"times_ms": times, "max_grad_diff": drift})
        append_table(f"Queue losses alone: forward + backward, B={a.batch}, K={a.queue}, "
                     f"D={a.dim}, CPU", ["loss", "ms (median)", "vs MoCo"], rows,
                     f"MoCHi N=256, s=256, s'=64 (the method's defaults), fp32; the two MoCHi "
                     f"forms' gradients differ by at most {drift:.1e}")
    return times


if __name__ == "__main__":
    main()
