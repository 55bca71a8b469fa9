"""Scale of input: indexing a generated folder of N small images (time, peak RSS), and memory
over a training epoch on a large folder (it should stay flat: bounded by the batch and the
DataLoader workers, not by the number of images).

The folder is cheap to make: one small PNG's bytes under many names (hard links where the file
system has them, at most 60,000 per inode; copies otherwise), ten class sub-folders of
sub-folders of 1,000 files. Indexing walks, stats and opens every file just the same; the
bytes it reads come from one page in the cache, so this measures the per-file cost of the
index, not the disk. Each measurement runs in a fresh process: indexing reports its own peak
RSS (getrusage), training is sampled from outside (proportional set size of the process and
its DataLoader workers, which share pages copied at fork, every second).

Example (the table in RESULTS.md; minutes, needs ~1.5 GB of disk for the folder's metadata):
    python benchmarks/index_scale.py                  # N = 1,000,000; epoch on 100,000
A quick check (seconds, nothing appended):
    python benchmarks/index_scale.py --n 2000 --train-n 2000 --no-append
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from results_md import append_table, save_json  # noqa: E402

CLASSES = 10
PER_FOLDER = 1000
MAX_LINKS = 60_000  # ext4 allows 65,000 names per inode
GOAL_SECONDS, GOAL_MB = 60, 1024


def tiny_png(side: int = 8) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def make_folder(root: Path, n: int, data: bytes | list[bytes], classes: int = CLASSES) -> dict:
    """``n`` images as root/classC/partP/NNNNNNN.png, image i in class i % ``classes`` and a
    copy of ``data`` (of ``data[i % len(data)]`` given several); how they were made."""
    blobs = root / ".blobs"
    blobs.mkdir(parents=True)
    many = [data] if isinstance(data, bytes) else data
    made: dict[int, tuple[Path, int]] = {}  # blob index -> (file, names it has)
    linked = True
    t0 = time.perf_counter()
    for i in range(n):
        cls, part = i % classes, i // (classes * PER_FOLDER)
        path = root / f"class{cls}" / f"part{part:04d}" / f"{i:07d}.png"
        if i % (classes * PER_FOLDER) < classes:
            path.parent.mkdir(parents=True, exist_ok=True)
        b = i % len(many)
        if linked and (b not in made or made[b][1] == MAX_LINKS):
            blob = blobs / f"{i:07d}.png"
            blob.write_bytes(many[b])
            made[b] = (blob, 0)
        if linked:
            try:
                os.link(made[b][0], path)
                made[b] = (made[b][0], made[b][1] + 1)
                continue
            except OSError:
                linked = False  # no hard links here: write copies
        path.write_bytes(many[b])
    return {"images": n, "seconds": round(time.perf_counter() - t0, 1), "hard_links": linked,
            "bytes_per_image": round(sum(map(len, many)) / len(many))}


def index_once(folder: str) -> None:
    """In a fresh process: index ``folder`` with the library's folder source; print JSON."""
    from selfsup.data import load_source

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB, after the imports
    t0 = time.perf_counter()
    source = load_source(folder)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": round(seconds, 1), "images": len(source.train),
                      "classes": len(source.classes or []), "peak_rss_mb": round(peak),
                      "imports_rss_mb": round(base), "index_rss_mb": round(peak - base)}))


def measure_index(folder: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--index-only", str(folder)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (DataLoader workers), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def memory_mb(pid: int) -> tuple[float, float, int]:
    """(PSS of the process tree, RSS of ``pid`` alone, processes) in MiB."""
    pss, rss, n = 0.0, 0.0, 0
    for p in tree(pid):
        try:
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
        except OSError:
            continue
        fields = {ln.split(":")[0]: float(ln.split()[1]) for ln in rollup.splitlines()[1:]
                  if ln.split(":")[0] in ("Rss", "Pss")}
        pss += fields.get("Pss", fields.get("Rss", 0.0)) / 1024
        rss += fields.get("Rss", 0.0) / 1024 if p == pid else 0.0
        n += 1
    return pss, rss, n


def measure_epoch(folder: Path, run_dir: Path, batch_size: int, workers: int | None) -> dict:
    """One epoch of the default pretraining on ``folder``; memory sampled every second."""
    config = run_dir.parent / "epoch.yaml"
    config.write_text(json.dumps({"rankme_samples": 0, "checkpoint_every_s": 1e9,
                                  **({"num_workers": workers} if workers is not None else {})}))
    cmd = [sys.executable, "-m", "selfsup.cli", "pretrain", "--data", str(folder), "--epochs",
           "1", "--batch-size", str(batch_size), "--run-dir", str(run_dir), "--config",
           str(config), "--no-progress", "--no-eval"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples: list[tuple[float, float, float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        t0 = time.perf_counter()
        while not stop.wait(1.0):
            samples.append((time.perf_counter() - t0, *memory_mb(proc.pid)))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    _, err = proc.communicate()
    stop.set()
    thread.join()
    if proc.returncode != 0:
        raise SystemExit(f"pretraining failed:\n{err[-3000:]}")
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = max(r["step"] for r in rows if "step" in r)
    # training proper: the samples with every worker up (the most processes seen)
    most = max(s[3] for s in samples) if samples else 0
    train = [s for s in samples if s[3] == most] or samples
    quarter = max(1, len(train) // 4)
    first = float(np.median([s[1] for s in train[:quarter]]))
    last = float(np.median([s[1] for s in train[-quarter:]]))
    return {"steps": steps, "seconds": round(train[-1][0], 1) if train else 0.0,
            "processes": most, "pss_first_quarter_mb": round(first),
            "pss_last_quarter_mb": round(last), "pss_peak_mb": round(max(s[1] for s in train)),
            "main_rss_peak_mb": round(max(s[2] for s in train)), "samples": len(train)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1_000_000, help="images to index")
    p.add_argument("--train-n", type=int, default=100_000,
                   help="images in the folder trained on for one epoch (0: skip)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--num-workers", type=int, help="DataLoader workers (default: the CLI's)")
    p.add_argument("--dir", help="where the folders go (default: a temporary folder, removed)")
    p.add_argument("--index-only", metavar="FOLDER", help=argparse.SUPPRESS)
    p.add_argument("--no-append", action="store_true", help="print only; leave RESULTS.md")
    a = p.parse_args(argv)
    if a.index_only:
        index_once(a.index_only)
        return {}
    root = Path(a.dir or tempfile.mkdtemp(prefix="index-scale-"))
    try:
        data = tiny_png()
        made = make_folder(root / "index", a.n, data)
        print(f"made {a.n} images in {made['seconds']} s (hard links: {made['hard_links']})",
              flush=True)
        index = measure_index(root / "index")
        print(f"indexed {index['images']} in {index['seconds']} s, peak RSS "
              f"{index['peak_rss_mb']} MiB ({index['index_rss_mb']} over the imports)",
              flush=True)
        epoch = {}
        if a.train_n:
            shutil.rmtree(root / "index")  # free the metadata before training
            make_folder(root / "train", a.train_n, data)
            epoch = measure_epoch(root / "train", root / "run", a.batch_size, a.num_workers)
            print(f"epoch on {a.train_n}: {epoch}", flush=True)
    finally:
        if not a.dir:
            shutil.rmtree(root, ignore_errors=True)
    result = {"n": a.n, "make": made, "index": index, "train_n": a.train_n, "epoch": epoch}
    if not a.no_append:
        save_json("index_scale", result)
        header = ["measure", "images", "seconds", "peak memory (MiB)", "goal"]
        rows = [["index a folder (load_source)", index["images"], index["seconds"],
                 f"{index['peak_rss_mb']} RSS ({index['index_rss_mb']} over imports)",
                 f"< {GOAL_SECONDS} s, < {GOAL_MB} MiB"]]
        if epoch:
            rows.append([f"one epoch, batch {a.batch_size}, {epoch['processes'] - 1} workers",
                         a.train_n, epoch["seconds"],
                         f"PSS first/last quarter {epoch['pss_first_quarter_mb']}/"
                         f"{epoch['pss_last_quarter_mb']}, peak {epoch['pss_peak_mb']}",
                         "flat"])
        append_table(f"Scale of input: indexing {a.n:,} small images, an epoch on "
                     f"{a.train_n:,}", header, rows,
                     notes=f"one {len(data)}-byte 8x8 PNG under every name (hard links: "
                     f"{made['hard_links']}), 10 class folders; PSS sums the main process "
                     "and its DataLoader workers, sampled every second")
    return result


if __name__ == "__main__":
    main()
