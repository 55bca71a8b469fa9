"""The learning guard: every method whose product is an encoder, trained for a pinned number of
steps on a small real source (digits), must end above its own untrained encoder under the same
probe, with its collapse monitor quiet. What it measures sets the word `selfsup methods` shows:

- ``ready``: kNN top-1 above the untrained encoder's by more than `MARGIN`, no collapse;
- ``collapses``: the collapse monitor (RankMe, embedding spread) fired during training;
- ``experimental``: trains without collapsing but does not clear its untrained encoder.

The untrained encoder is the one the run starts from: the same seed, backbone and build before
any step. An untrained network is already far above chance on digits (a ResNet's random
features reach kNN 0.65-0.9), so chance would pass a method that learns nothing.

tests/methods/test_methods.py runs it for every registered method (the methods' smoke test and
the guard are one training); CI runs it as its own step (`make guard`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from torch import nn

from .backbones.io import load_encoder
from .data import load_source
from .evaluate.suite import evaluate_encoder
from .methods import get_method
from .rundir import RunDir
from .train import PretrainConfig, pretrain_run
from .train.run import build_method

# a small real source per modality: digits' 1,797 images; for a table, satimage's 6,435 rows of
# 36 values (wine is separable by an untrained encoder's kNN: nothing left to show)
GUARD_DATA = {"image": "digits", "table": "satimage"}
# digits holds ~144 training images a class after the 20% holdout: k=200 would vote across
# classes, k=20 reads each image's own neighbourhood
GUARD_K = 20
MARGIN = 0.02  # kNN top-1 a trained encoder must gain over its untrained self (~7 of 360)
# the pinned budget: every method trains this many steps of this batch (4 epochs of digits)
GUARD_STEPS = 112
GUARD_BATCH = 64
# A 12-block, 192-wide ViT pretrains and embeds digits in ~90 s on a 2-core CPU without bf16;
# 2 blocks 96 wide with one-block decoders exercise the same code (the encoder, the decoders,
# the masking) in a seventh of that. Only the size changes: every method trains the same steps
# of the same batch.
NARROW = {"depth": 2, "dim": 96}
GUARD_SIZES: dict[str, dict[str, Any]] = {
    name: {"backbone_args": NARROW, "method_args": {"decoder_depth": 1}}
    for name in ("mae", "uni4eye", "hpm")}
GUARD_SIZES["cae"] = {"backbone_args": NARROW,
                      "method_args": {"decoder_depth": 1, "regressor_depth": 1}}
# SiT runs two views and a momentum teacher through the ViT at every step
GUARD_SIZES["sit"] = {"backbone_args": NARROW}
# MMC is SiT plus a projected patch-token distillation (teacher and student): 1 block
GUARD_SIZES["mmc"] = {"backbone_args": {**NARROW, "depth": 1}}
GUARD_SIZES["mixedae"] = {"backbone_args": {**NARROW, "depth": 1}}
# kymatio's scattering runs each filter in Python: 4 orientations instead of 8 (25 maps per
# channel, not 81) halve the time and keep every path (second order, adapter, rotation)
GUARD_SIZES["scatsimclr"] = {"backbone_args": {"L": 4}}


@dataclass
class GuardResult:
    method: str
    trained_knn: float
    untrained_knn: float
    collapsed: bool
    rankme: float
    steps: int
    status: str
    images_per_s: float = 0.0  # this machine's training speed, beside any wall time

    def explain(self) -> str:
        return (f"{self.method}: kNN@{GUARD_K} {100 * self.trained_knn:.1f}% after {self.steps} "
                f"steps vs {100 * self.untrained_knn:.1f}% untrained, RankMe {self.rankme:.1f}"
                f"{', collapsed' if self.collapsed else ''} -> {self.status}")


def guard_status(trained_knn: float, untrained_knn: float, collapsed: bool) -> str:
    if collapsed:
        return "collapses"
    return "ready" if trained_knn > untrained_knn + MARGIN else "experimental"


def knn(encoder: Any, source: Any) -> float:
    return evaluate_encoder(encoder, source, ("knn",), k=GUARD_K)["knn_top1"]


def untrained_encoder(config: PretrainConfig, source: Any) -> nn.Module:
    """The encoder a run of ``config`` starts from: built after the same seeding."""
    L.seed_everything(config.seed, workers=True, verbose=False)
    return build_method(config, source).export()


def run_guard(method: str, run_dir: str | Path, **options: Any) -> GuardResult:
    """Train ``method`` on its modality's guard source for the pinned budget (its size from
    `GUARD_SIZES`, ``options``: other `PretrainConfig` fields on top) and judge it against its
    untrained encoder."""
    options = {**GUARD_SIZES.get(method, {}), "steps": GUARD_STEPS, "batch_size": GUARD_BATCH,
               "precision": "32", "seed": 0,
               "log_every": 1, "rankme_every": 0, **options}
    if get_method(method).product != "encoder":
        raise ValueError(f"the guard judges encoders; {method} makes a "
                         f"{get_method(method).product}")
    data = GUARD_DATA[get_method(method).modalities[0]]
    config = PretrainConfig(method=method, data=data, run_dir=str(run_dir), **options)
    result = pretrain_run(config, progress=False)
    source = load_source(data)
    rows = [json.loads(x) for x in RunDir(run_dir).metrics.read_text().splitlines()]
    health = [r for r in rows if "rankme" in r]
    collapsed = any(r["collapsed"] for r in health)
    trained = knn(load_encoder(run_dir), source)
    before = knn(untrained_encoder(config, source), source)
    return GuardResult(method, trained, before, collapsed, health[-1]["rankme"] if health
                       else float("nan"), result.steps, guard_status(trained, before, collapsed),
                       result.images_per_s)


class GuardFailed(AssertionError):
    """A method does not stand where its registered status says."""


def hold_to_status(result: GuardResult, registered: str) -> None:
    """Raise `GuardFailed` unless the method stands where its registered status says.

    A ``ready`` method must measure ready: one that stops learning or collapses fails. One
    listed ``collapses`` must still collapse. One listed ``experimental`` fails once it
    collapses, or clears twice the margin without collapsing: a
    method that starts learning gets its word changed, while a gain at the margin itself, which
    another CPU's arithmetic may tip either way, does not flip the word back and forth."""
    gain = result.trained_knn - result.untrained_knn
    stands = {
        "ready": result.status == "ready",
        "collapses": result.collapsed,
        "experimental": not result.collapsed and gain <= 2 * MARGIN,
    }[registered]
    if not stands:
        raise GuardFailed(f"{result.explain()}, but it is registered {registered!r}: fix the "
                          f"method, or register it with status={result.status!r}")

