"""Export for serving: the ONNX and torch.export files give the PyTorch encoder's features on
real images (digits) from uint8 input, and FILE.json records the preprocessing."""

from __future__ import annotations

import json

import pytest
import torch

from selfsup.backbones import Preprocessing, build_backbone
from selfsup.backbones.io import load_encoder, save_encoder
from selfsup.cli import EXIT_OK, EXIT_USAGE, main
from selfsup.data import load_source
from selfsup.export import ExportError, export_encoder

TOL = 1e-4


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """32 real images, uint8 (32, 1, 8, 8), already at the encoders' input size."""
    return load_source("digits").train.images[:32]


def _run(tmp_path, backbone: str, **config):
    """A run directory holding only what the export reads: encoder.safetensors + .json."""
    torch.manual_seed(0)
    encoder = build_backbone(backbone, channels=1, input_size=8, mean=(0.3,), std=(0.35,),
                             **config)
    with torch.no_grad():  # away from the freshly initialized statistics, as a trained net is
        for m in encoder.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    run = tmp_path / backbone
    save_encoder(encoder, run, {"method": "simclr", "steps": 7})
    return run


def _reference(run, images: torch.Tensor) -> torch.Tensor:
    encoder = load_encoder(run)
    with torch.no_grad():
        return encoder(encoder.preprocessing(images))  # selfsup's own path: (B, dim)


@pytest.mark.parametrize("backbone,config", [
    ("resnet10w32", {}),
    # two blocks: the same timm attention and ops as twelve, at a sixth of the export time
    ("vit_tiny", {"depth": 2}),
    ("vit_tiny", {}),  # all 12 blocks, ~30 s: the exported default MAE encoder itself
], ids=["resnet10w32", "vit_tiny-depth2", "vit_tiny"])
def test_onnx_and_pt2_exports_give_the_encoders_features(tmp_path, digits, backbone, config):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    run = _run(tmp_path, backbone, **config)
    expected = _reference(run, digits)

    onnx = export_encoder(run, tmp_path / "encoder.onnx")
    assert onnx.format == "onnx" and onnx.max_abs_diff <= TOL
    session = ort.InferenceSession(str(onnx.path), providers=["CPUExecutionProvider"])
    for batch in (digits, digits[:1]):  # the batch axis is dynamic
        [got] = session.run(None, {"images": batch.numpy()})
        torch.testing.assert_close(torch.from_numpy(got), expected[: len(batch)], rtol=TOL,
                                   atol=TOL)

    pt2 = export_encoder(run, tmp_path / "encoder.pt2")
    program = torch.export.load(str(pt2.path)).module()
    with torch.no_grad():
        for batch in (digits, digits[:5]):
            torch.testing.assert_close(program(batch), expected[: len(batch)], rtol=TOL,
                                       atol=TOL)

    meta = json.loads((tmp_path / "encoder.onnx.json").read_text())
    encoder = load_encoder(run)
    assert meta["input"] == {"name": "images", "dtype": "uint8", "layout": "NCHW",
                             "shape": ["batch", 1, 8, 8], "range": [0, 255]}
    assert meta["output"]["shape"] == ["batch", encoder.dim]
    assert Preprocessing.from_dict(meta["preprocessing"]) == encoder.preprocessing
    assert meta["backbone"]["name"] == backbone and meta["onnx_opset"] >= 18
    assert (tmp_path / "encoder.pt2.json").is_file()
    assert not list(tmp_path.glob(".*.tmp*")) and not list(tmp_path.glob("*.data"))


def test_export_command_and_its_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["export", "--help"])
    assert e.value.code == 0 and "example" in capsys.readouterr().out
    run = _run(tmp_path, "resnet10w32")
    out = tmp_path / "served" / "enc.pt2"
    assert main(["export", str(run), "--out", str(out)]) == EXIT_OK  # format from the suffix
    assert out.is_file() and (tmp_path / "served" / "enc.pt2.json").is_file()
    capsys.readouterr()
    assert main(["export", str(run), "--out", str(tmp_path / "enc.bin")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--format onnx|pt2" in err and err.count("\n") == 1
    assert main(["export", str(tmp_path / "nope"), "--out", str(out)]) == EXIT_USAGE
    assert "not found" in capsys.readouterr().err
    with pytest.raises(ExportError, match="valid: onnx, pt2"):
        export_encoder(run, out, format="tflite")
    with pytest.raises(ExportError, match=r"ending in \.pt2"):
        export_encoder(run, tmp_path / "enc.bin", format="pt2")
