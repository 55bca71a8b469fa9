"""Appending a benchmark's table to benchmarks/RESULTS.md with its command, date and machine."""

from __future__ import annotations

import json
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
OUT = Path(__file__).with_name("out")


def machine() -> str:
    import torch

    model = platform.processor() or "unknown CPU"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import os

    # the same model name has come with and without AVX-512/bf16 on different days, and bf16
    # autocast is the default only where the CPU has it: name what this one has
    flags = ""
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags", 2)[1].split("\n", 1)[0]
    except (OSError, IndexError):
        pass
    isa = [x for x in ("avx512f", "avx512_bf16", "amx_bf16") if f" {x}" in flags]
    isa = ", ".join(isa) if isa else "AVX2 only" if " avx2" in flags else "ISA unknown"
    from selfsup.hardware import has_bf16

    return (f"{model}, {os.cpu_count()} cores ({isa}; bf16 autocast "
            f"{'on' if has_bf16() else 'off'}), torch {torch.__version__}")


def command() -> str:
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def append_table(title: str, header: list[str], rows: list[list], notes: str = "") -> None:
    lines = [f"\n## {title}\n", f"- command: `{command()}`",
             f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             f"- machine: {machine()}"]
    if notes:
        lines.append(f"- notes: {notes}")
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    with RESULTS.open("a") as f:
        f.write("\n".join(lines) + "\n")


def mean_std(values: list[float]) -> str:
    """"mean ± std" to two decimals; the mean alone for a single value."""
    std = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.2f}{std}"


def cached(path: Path, run: Callable[[], dict]) -> dict:
    """The result stored at ``path``, or ``run()``'s, stored there first: a sweep cut short
    keeps what it measured, and the same command later runs only what is missing."""
    if path.is_file():
        print(f"reusing {path}", flush=True)
        return json.loads(path.read_text())
    result = run()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))
    return result


def save_json(name: str, payload) -> Path:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path


def pretrain_or_reuse(run_dir: Path, done: str, **options) -> Path:
    """One run of a study: reused when its file ``done`` (a `RunDir` attribute: "weights",
    "eval") exists, resumed from its checkpoint when it was cut short, else pretrained with
    ``options`` (`selfsup.pretrain`'s) into ``run_dir``."""
    import selfsup
    from selfsup.rundir import RunDir

    run = RunDir(run_dir)
    if getattr(run, done).is_file():
        print(f"reusing {run.path}", flush=True)
    elif run.last.is_file():
        print(f"resuming {run.path}", flush=True)
        selfsup.pretrain(resume=str(run.path),
                         **{k: options[k] for k in ("progress", "evaluate_after") if k in options})
    else:
        selfsup.pretrain(run_dir=str(run.path), **options)
    return run.path
