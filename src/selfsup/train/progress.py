"""The live progress bar: epoch, step, loss, learning rate, images/s."""

from __future__ import annotations

from lightning.pytorch.callbacks import RichProgressBar


class PretrainProgressBar(RichProgressBar):
    """Lightning's rich bar, with numbers formatted for pretraining.

    Lightning prints every metric with three decimals, which shows an AdamW learning rate of
    2e-3 as 0.002 and its decay as 0.000; a time-budget run has no epoch count to show.
    """

    def get_metrics(self, trainer, pl_module) -> dict:
        m = super().get_metrics(trainer, pl_module)
        out = {}
        if "loss" in m:
            out["loss"] = f"{float(m['loss']):.3f}"
        out["lr"] = f"{pl_module.current_lr():.2e}"
        out["img/s"] = f"{pl_module.images_per_s:.0f}"
        return out

    def _get_train_description(self, current_epoch: int) -> str:
        if self.trainer.max_epochs is None or self.trainer.max_epochs < 0:
            return f"Epoch {current_epoch}"
        return super()._get_train_description(current_epoch)
