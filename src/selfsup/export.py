"""Export a run's encoder for serving without selfsup: ONNX or a torch.export ExportedProgram.

The exported graph takes **uint8 images (B, C, S, S), NCHW, already at the encoder's input
size** and returns its pooled features (B, dim) float32. The scaling to [0, 1] and the
mean/std standardization happen inside the graph, so a user needs no number from selfsup to
get its features right; only the resize to S x S (and the channel conversion) stays outside,
because it depends on the image library the user decodes with. ``FILE.json`` beside the export
records that contract: input name, dtype, layout and shape, the preprocessing (size, channels,
mean, std, resize rule) and what is left to do before calling the graph.

Both formats are captured once by ``torch.export.export`` with a dynamic batch axis. ONNX goes
through torch's dynamo exporter (``onnxscript``) at opset `ONNX_OPSET`; timm's attention
(``F.scaled_dot_product_attention``) is decomposed into MatMul/Softmax there, so ViTs need no
newer opset. Each export is run back (onnxruntime for ONNX when it is installed;
``torch.export.load`` for pt2) on a batch of another size and compared with the PyTorch encoder
before the file is put in place.
"""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .backbones.io import load_encoder
from .rundir import RunDir, atomic_write_text

FORMATS = ("onnx", "pt2")
SUFFIXES = {".onnx": "onnx", ".pt2": "pt2"}
# 18: the oldest opset torch's dynamo exporter targets; onnxruntime has run it since 1.14, and
# it holds everything the backbones need (LayerNormalization, Resize with antialias)
ONNX_OPSET = 18
TOLERANCE = 1e-4  # largest |exported - PyTorch| feature difference accepted
INPUT_NAME, OUTPUT_NAME = "images", "features"

RESIZE_HOW = {
    "resize_shorter_center_crop": "resize the shorter side to {s} px with bilinear antialiased "
    "interpolation, then take the central {s} x {s} square (Pillow, in one call: "
    "im.resize(({s}, {s}), Image.BILINEAR, box=the central square of side min(w, h)))",
    "resize_exact": "resize to {s} x {s} with bilinear antialiased interpolation",
}


class ExportError(ValueError):
    """An export cannot be made or does not reproduce the encoder; the message says which."""


class ServingEncoder(nn.Module):
    """An encoder with its normalization inside: uint8 (B, C, S, S) -> features (B, dim).

    The same operations, in the same order, as `Preprocessing` on an image already at S x S
    (``x.float() / 255``, then ``(x - mean) / std``), so the export reproduces selfsup's own
    features, not an approximation of them.
    """

    def __init__(self, encoder: nn.Module):
        super().__init__()
        pre = encoder.preprocessing
        self.encoder = encoder
        self.register_buffer("mean", torch.tensor(pre.mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(pre.std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0  # (B, C, S, S)
        return self.encoder((x - self.mean) / self.std)  # (B, dim)


@dataclass
class Exported:
    """What `export_encoder` wrote, and how far the export's features were from PyTorch's."""

    path: Path
    meta_path: Path
    format: str
    max_abs_diff: float | None  # against the PyTorch encoder; None where not checked


def export_format(out: str | Path, format: str | None) -> str:
    """The format asked for, else the one ``out``'s suffix names."""
    if format is None:
        format = SUFFIXES.get(Path(out).suffix.lower())
        if format is None:
            raise ExportError(f"cannot tell the format of {out}: give --format "
                              f"{'|'.join(FORMATS)} or a .onnx/.pt2 file name")
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; valid: {', '.join(FORMATS)}")
    if format == "pt2" and Path(out).suffix != ".pt2":
        raise ExportError(f"torch.export.load reads only files ending in .pt2; name the output "
                          f"{Path(out).with_suffix('.pt2')}")
    return format


def capture(model: ServingEncoder, example: torch.Tensor) -> torch.export.ExportedProgram:
    """``torch.export`` with the batch axis dynamic (1 and up)."""
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    with torch.no_grad():
        return torch.export.export(model, (example,), dynamic_shapes={INPUT_NAME: {0: batch}})


def export_encoder(run_dir: str | Path, out: str | Path, format: str | None = None
                   ) -> Exported:
    """Export the encoder of ``run_dir`` to ``out`` (``onnx`` or ``pt2``; by default from its
    suffix) and write ``out + ".json"``, the preprocessing and input contract beside it."""
    format = export_format(out, format)
    if format == "onnx":
        for module in ("onnx", "onnxscript"):
            if importlib.util.find_spec(module) is None:
                raise ExportError(f"ONNX export needs the {module} package: pip install onnx "
                                  "onnxscript (or pip install 'selfsup[export]')")
    out = Path(out)
    encoder = load_encoder(run_dir).float().cpu()
    model = ServingEncoder(encoder).eval()
    pre = encoder.preprocessing
    shape = (pre.channels, pre.input_size, pre.input_size)
    gen = torch.Generator().manual_seed(0)
    example = torch.randint(0, 256, (2, *shape), dtype=torch.uint8, generator=gen)
    check = torch.randint(0, 256, (3, *shape), dtype=torch.uint8, generator=gen)
    with torch.no_grad():
        expected = model(check)
    try:
        program = capture(model, example)
    except Exception as e:  # an op torch.export cannot trace: one line, not its traceback
        raise ExportError(f"torch.export cannot capture the encoder of {run_dir} "
                          f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
                          ) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")  # .pt2 kept: torch.export wants it
    try:
        if format == "pt2":
            with warnings.catch_warnings():
                # a channels_last ResNet's weights are strided views of whole tensors; the
                # archive stores them whole and loads them back exactly (the check below)
                warnings.filterwarnings("ignore", message=".*No complete tensor found.*")
                torch.export.save(program, tmp)
            with torch.no_grad():
                got = torch.export.load(tmp).module()(check)
            diff = float((got - expected).abs().max())
        else:
            diff = write_onnx(program, tmp, check, expected)
        if diff is not None and not diff <= TOLERANCE:
            raise ExportError(f"the {format} export of {run_dir} differs from the PyTorch "
                              f"encoder by {diff:.3g} (more than {TOLERANCE}); not written")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    meta_path = out.with_name(out.name + ".json")
    meta = serving_record(run_dir, encoder, out, format, diff)
    atomic_write_text(meta_path, json.dumps(meta, indent=2))
    return Exported(out, meta_path, format, diff)


def write_onnx(program: torch.export.ExportedProgram, path: Path, check: torch.Tensor,
               expected: torch.Tensor) -> float | None:
    """Write the program as one self-contained ONNX file and, where onnxruntime is installed,
    return its largest difference from ``expected`` on ``check``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on its own internals
            onnx_program = torch.onnx.export(program, f=None, input_names=[INPUT_NAME],
                                             output_names=[OUTPUT_NAME],
                                             opset_version=ONNX_OPSET, dynamo=True,
                                             verbose=False)
    except Exception as e:  # an op without an ONNX translation at this opset
        first = str(e).splitlines()[0] if str(e) else ""
        raise ExportError(f"ONNX export (opset {ONNX_OPSET}) failed: {type(e).__name__}: "
                          f"{first}; --format pt2 keeps every op") from None
    # one file (weights inside) is what a serving user copies; protobuf's 2 GiB limit is far
    # above the largest backbone here (resnet50: 94 MB)
    onnx_program.save(str(path), external_data=False)
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: check.numpy()})[0]
    return float((torch.from_numpy(got) - expected).abs().max())


def serving_record(run_dir: str | Path, encoder: nn.Module, out: Path, format: str,
                   diff: float | None) -> dict[str, Any]:
    """What ``FILE.json`` says: everything a user without selfsup needs to feed the graph."""
    pre = encoder.preprocessing
    s, c = pre.input_size, pre.channels
    meta = json.loads(RunDir(run_dir).meta.read_text())
    return {
        "file": out.name,
        "format": format,
        **({"onnx_opset": ONNX_OPSET} if format == "onnx" else {}),
        "input": {"name": INPUT_NAME, "dtype": "uint8", "layout": "NCHW",
                  "shape": ["batch", c, s, s], "range": [0, 255]},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", encoder.dim]},
        "preprocessing": pre.to_dict(),
        "in_graph": "x = images / 255; x = (x - mean) / std (mean and std per channel, above)",
        "before_graph": [
            f"decode to {'grayscale (Pillow mode L)' if c == 1 else 'RGB'}, 8 bits per channel",
            RESIZE_HOW[pre.resize_rule].format(s=s),
            f"stack as uint8 (batch, {c}, {s}, {s}): channels first",
        ],
        "backbone": meta.get("backbone"),
        "run": str(run_dir),
        "steps": meta.get("steps"),
        "checked_max_abs_diff": diff,
        "torch": torch.__version__,
    }
