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


def table_block(title: str, header: list[str], rows: list[list], notes: str = "") -> list[str]:
    """A study's section: its heading, command, date, machine, notes and table."""
    lines = [f"## {title}\n", f"- command: `{command()}`",
             f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             f"- machine: {machine()}"]
    if notes:
        lines.append(f"- notes: {notes}")
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def append_table(title: str, header: list[str], rows: list[list], notes: str = "") -> None:
    with RESULTS.open("a") as f:
        f.write("\n" + "\n".join(table_block(title, header, rows, notes)) + "\n")


def write_table(title: str, header: list[str], rows: list[list], notes: str = "") -> None:
    """The study's current result: replaces the section headed ``## title`` from its heading to
    the end of its first table (prose after the table stays), or appends one where none is.

    RESULTS.md shows each study's current result once; a rerun appending a second table would
    leave readers to guess which one holds."""
    lines = RESULTS.read_text().split("\n")
    start = next((i for i, line in enumerate(lines) if line == f"## {title}"), None)
    if start is None:
        append_table(title, header, rows, notes)
        return
    end = start + 1
    while end < len(lines) and not lines[end].startswith("|") and not lines[end].startswith("## "):
        end += 1
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    block = table_block(title, header, rows, notes)
    RESULTS.write_text("\n".join(lines[:start] + block + lines[end:]))


def mean_std(values: list[float]) -> str:
    """"mean ± std" to two decimals; the mean alone for a single value."""
    std = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.2f}{std}"


class Ledger:
    """A long study's results, committed to git as one JSON line per stored result
    (``{"key", "result", "source"}``, key "<run directory's name>/<file>"). The run directories
    hold checkpoints (git-ignored, hundreds of MB) and are lost with a checkout, while a study of
    thirty-odd 30-minute runs spans several sittings and checkouts; its few numbers need not be
    lost with them. ``path=None`` keeps nothing."""

    def __init__(self, path: Path | None):
        self.path = path
        self.entries: dict[str, dict] = {}
        if path is not None and path.is_file():
            for line in path.read_text().splitlines():
                entry = json.loads(line)
                self.entries[entry["key"]] = entry["result"]

    @staticmethod
    def key(path: Path) -> str:
        return f"{path.parent.name}/{path.name}"

    def get(self, path: Path) -> dict | None:
        return self.entries.get(self.key(path))

    def put(self, path: Path, result: dict, source: str) -> None:
        if self.path is None or self.key(path) in self.entries:
            return
        self.entries[self.key(path)] = result
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps({"key": self.key(path), "result": result, "source": source})
                    + "\n")


def cached(path: Path, run: Callable[[], dict], ledger: Ledger | None = None) -> dict:
    """The result stored at ``path`` (or, when its run directory is gone, in ``ledger``), or
    ``run()``'s, stored there first: a sweep cut short keeps what it measured, and the same
    command later runs only what is missing. Every result read or computed here is also put in
    ``ledger``."""
    source = (f"put in the ledger by `{command()}` at "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    if path.is_file():
        print(f"reusing {path}", flush=True)
        result = json.loads(path.read_text())
    elif ledger is not None and ledger.get(path) is not None:
        print(f"reusing {ledger.key(path)} from {ledger.path}", flush=True)
        return ledger.get(path)
    else:
        result = run()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result))
    if ledger is not None:
        ledger.put(path, result, source)
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
