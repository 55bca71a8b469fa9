"""An exponential moving average of the exported encoder's weights (``--ema DECAY``).

After every optimizer step t the average moves towards the trained (online) weights::

    theta_ema <- decay * theta_ema + (1 - decay) * theta_t,    theta_ema = theta_1 at the first

over parameters and buffers (batch-norm statistics), the Polyak averaging that BYOL's target
network and timm's ``ModelEmaV2`` use. The averaging is torch's own
(``torch.optim.swa_utils.AveragedModel`` with ``get_ema_multi_avg_fn``). Only the encoder is
averaged: heads and teachers are not exported, so averaging them would be cost for nothing.

Lightning's ``EMAWeightAveraging`` averages the whole LightningModule and swaps the average into
every checkpoint's ``state_dict``, which would turn resume, ``--init-from`` and the layers probe
into readers of averaged heads; this callback keeps the average in its own checkpoint state
instead, so last.ckpt still resumes the online model exactly.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class EncoderEMA(L.Callback):
    """Keeps ``AveragedModel(encoder)`` up to date after each optimizer step; its state travels
    in every checkpoint (``state_dict``) so a resumed run continues the same average."""

    def __init__(self, encoder: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be in (0, 1), got {decay}")
        self.encoder, self.decay = encoder, decay
        self.average = AveragedModel(encoder, multi_avg_fn=get_ema_multi_avg_fn(decay),
                                     use_buffers=True)
        self.updated_at = 0  # the optimizer step the average last saw

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.average.to(pl_module.device)  # the copy was made before Lightning moved the model

    @torch.no_grad()
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step > self.updated_at:  # once per optimizer step
            self.average.update_parameters(self.encoder)
            self.updated_at = trainer.global_step

    def averaged(self) -> nn.Module:
        """The averaged encoder (the same class as the online one, ``.preprocessing`` and all);
        the online weights when no step has been taken."""
        return self.average.module if int(self.average.n_averaged) else self.encoder

    def state_dict(self) -> dict[str, Any]:
        return {"average": self.average.state_dict(), "updated_at": self.updated_at,
                "decay": self.decay}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.average.load_state_dict(state_dict["average"])
        self.updated_at = int(state_dict["updated_at"])
