"""A trained method rebuilt from its run directory: its heads (projector, decoder) are not in
the exported encoder, but the layers probe and the report read them."""

from __future__ import annotations

import json

import yaml
from torch import nn

from ..data.spec import DataSpec
from ..rundir import RunDir, load_checkpoint_safely
from .base import Method
from .registry import get_method


def saved_method(run_dir: str, encoder: nn.Module) -> Method | None:
    """The run's method around ``encoder``, its other weights filled from the checkpoint the
    encoder came from (``best.ckpt`` when it was selected by RankMe, else ``last.ckpt``), loaded
    with ``weights_only=True``; in eval mode. None when the run kept no checkpoint."""
    run = RunDir(run_dir)
    cfg = yaml.safe_load(run.config.read_text())
    meta = json.loads(run.meta.read_text())
    ckpt = run.checkpoint_of_export(meta.get("selected_by"))
    if not ckpt.is_file():
        return None
    resolved = cfg.get("resolved", {})
    args = dict(resolved.get("method_args", cfg.get("method_args", {})))
    num_samples = args.pop("num_samples", 0)  # runs from before DataSpec kept it here
    pre = encoder.preprocessing
    data = (DataSpec.from_dict(resolved["data"]) if "data" in resolved else
            DataSpec("image", (pre.channels, pre.input_size, pre.input_size), num_samples))
    # the views hold no weights and are not needed here: a placeholder stands in
    method = get_method(cfg["method"])(encoder, nn.Identity(), data, **args)
    state = load_checkpoint_safely(ckpt)["state_dict"]
    prefix = "method."
    # the views' buffers (kornia's parameter generators) stay behind with the views
    own = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)
           and not k.startswith((prefix + "backbone.", prefix + "views."))}
    # the encoder keeps the exported weights; everything else comes from the checkpoint
    missing = [k for k in method.state_dict() if k not in own and not k.startswith("backbone.")]
    method.load_state_dict({**{f"backbone.{k}": v for k, v in encoder.state_dict().items()},
                            **own}, strict=not missing)
    return method.eval()
