"""Label-free monitoring during pretraining: RankMe on a fixed probe subset, a collapse warning,
and RankMe-based checkpoint selection."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from ..collapse import CollapseCheck, embedding_std, rankme
from ..data import Split
from .trackers import log_row

log = logging.getLogger("selfsup")


def probe_images(split: Split, n: int = 2048, seed: int = 0) -> torch.Tensor:
    """A fixed random subset of a split's images, uint8 (n, C, H, W), the same on every call."""
    idx = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:n]
    if split.images is not None:
        return split.images[idx]
    if hasattr(split.dataset, "subset"):  # a stream (tar shards): read past the others
        items = list(split.dataset.subset(idx.sort().values.numpy()))
    else:
        items = [split.dataset[int(i)] for i in idx]
    return torch.stack([image for image, _ in (it for it in items if it is not None)])


class RankMeMonitor(L.Callback):
    """Logs RankMe and the embeddings' std of the encoder's features on a fixed probe subset
    (no augmentation, the encoder's own preprocessing) to ``metrics.jsonl``.

    It measures at every epoch end and when training ends (a time-budget run stops mid-epoch)
    and, when ``every_n_steps`` > 0, every that many steps too: one "epoch" of a large image folder
    can be hours. Each measurement writes ``{"step", "epoch", "rankme", "embedding_std"}``.
    A representation that falls below `CollapseCheck`'s thresholds gets one warning line when it
    collapses (and again only if it recovers and collapses anew). With ``best_path`` set, the
    checkpoint of the highest RankMe so far is written there: selection with no labels used
    (Garrido et al. 2023, sec. 5).
    """

    def __init__(self, images: torch.Tensor, metrics_path: str | Path, every_n_steps: int = 0,
                 best_path: str | Path | None = None, check: CollapseCheck | None = None,
                 batch_size: int = 512):
        self.images = images
        self.metrics_path = Path(metrics_path)
        self.every_n_steps = max(0, every_n_steps)
        self.best_path = Path(best_path) if best_path is not None else None
        self.check = check or CollapseCheck()
        self.batch_size = batch_size
        self.best: dict[str, Any] = {}
        self.collapsed = False
        self.history: list[dict[str, Any]] = []
        self._last_step = -1

    @torch.no_grad()
    def features(self, backbone: torch.nn.Module) -> torch.Tensor:
        was_training = backbone.training
        backbone.eval()
        device = next(backbone.parameters()).device
        out = []
        for i in range(0, len(self.images), self.batch_size):
            x = backbone.preprocessing(self.images[i : i + self.batch_size].to(device))
            out.append(backbone(x).float().cpu())
        backbone.train(was_training)
        return torch.cat(out)  # (n, D)

    def measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any] | None:
        step = trainer.global_step
        if step == self._last_step:
            return None  # an epoch that ended on an every-n-steps measurement
        self._last_step = step
        t0 = time.perf_counter()
        encoder = pl_module.method.export()
        z = self.features(encoder)
        row = {"step": step, "epoch": trainer.current_epoch, "rankme": round(rankme(z), 4),
               "embedding_std": float(f"{embedding_std(z):.6g}"),
               "monitor_s": round(time.perf_counter() - t0, 3)}
        self.history.append(row)
        reasons = self.check.reasons(row["rankme"], row["embedding_std"], z.shape[1],
                                     encoder.preprocessing.input_dim)
        if reasons and not self.collapsed and trainer.is_global_zero:
            log.warning("selfsup: representation collapse at step %d: %s. Try a lower learning "
                        "rate, a longer warmup or another method setting.", step,
                        "; ".join(reasons))
        self.collapsed = bool(reasons)
        row["collapsed"] = self.collapsed
        if trainer.is_global_zero:
            with self.metrics_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            # --logger: the row metrics.jsonl holds (a stand-in trainer may have no loggers)
            log_row(getattr(trainer, "loggers", ()), row, step)
        if self.best_path is not None and row["rankme"] > self.best.get("rankme", -1.0):
            self.best = {"step": step, "epoch": row["epoch"], "rankme": row["rankme"]}
            # every rank calls save_checkpoint (Lightning writes on rank 0 only); the features
            # are identical on every rank, so every rank takes the same decision
            trainer.save_checkpoint(self.best_path, weights_only=True)
            if trainer.is_global_zero:
                self.best_path.with_suffix(".json").write_text(json.dumps(self.best))
        return row

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self.measure(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.measure(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        # a run stopped mid-epoch (time budget, max steps) still gets its final measurement
        self.measure(trainer, pl_module)

    def state_dict(self) -> dict[str, Any]:
        # a resumed run must not overwrite best.ckpt with a lower RankMe than it already holds
        return {"best": dict(self.best), "collapsed": self.collapsed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = dict(state_dict.get("best", {}))
        self.collapsed = bool(state_dict.get("collapsed", False))
