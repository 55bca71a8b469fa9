"""selfsup.evaluate / `selfsup evaluate` on a finished run: every protocol, eval.json, and the
preprocessing match and override."""

import json

import numpy as np
import pytest
import torch

import selfsup
from selfsup.backbones import Preprocessing
from selfsup.cli import main
from selfsup.data import load_source
from selfsup.evaluate import PROTOCOLS, extract_features, parse_preprocessing
from selfsup.evaluate.products import get_product


def test_all_protocols_written_to_eval_json(digits_run):
    run_dir = digits_run.dir
    before = json.loads((run_dir / "eval.json").read_text())
    assert {"knn_top1", "linear_top1", "rankme", "raw_pixels_knn_top1"} <= set(before)
    assert before["linear"]["C"] in (0.01, 0.1, 1.0, 10.0)
    results = selfsup.evaluate(run_dir, protocols=["nb", "fewshot", "layers"])
    ev = json.loads((run_dir / "eval.json").read_text())
    # the earlier protocols' keys are kept; the new ones are added
    for key in ("knn_top1", "linear_top1", "rankme", "raw_pixels_knn_top1", "nb_top1",
                "fewshot", "layers"):
        assert key in ev, key
    assert ev["knn_top1"] == before["knn_top1"]
    assert ev["nb_top1"] == results["nb_top1"] > 0.3  # 10 classes: chance is 0.1
    for probe in ("linear", "nb"):
        rows = ev["fewshot"][probe]
        assert [r["fraction"] for r in rows] == [0.01, 0.05, 0.1, 0.25, 1.0]
        assert all({"mean", "std", "n_labels"} <= set(r) for r in rows)
        assert [len(r["runs"]) for r in rows] == [3, 3, 3, 3, 1]
    assert list(ev["layers"]) == ["stem", "layer1", "layer2", "layer3", "layer4", "projection"]
    assert ev["layers"]["layer4"]["knn_top1"] == pytest.approx(ev["knn_top1"], abs=0.05)


def test_unknown_protocol_lists_valid(digits_run):
    # every protocol an encoder takes: the suite's probes, finetune, prompt_seg, the table probes
    valid = get_product("encoder").protocols
    assert set(PROTOCOLS) <= set(valid)
    with pytest.raises(ValueError, match="valid: " + ", ".join(valid)):
        selfsup.evaluate(digits_run.dir, protocols=["knn", "svm"])


def test_parse_preprocessing():
    own = Preprocessing(28, 1, (0.29,), (0.35,))
    assert parse_preprocessing("size=32,mean=0.5,std=0.5", own) == Preprocessing(
        32, 1, (0.5,), (0.5,))
    assert parse_preprocessing("std=0.2", own) == Preprocessing(28, 1, (0.29,), (0.2,))
    assert parse_preprocessing("none", own, native_size=20) == Preprocessing(
        20, 1, (0.0,), (1.0,))
    rgb = Preprocessing(32, 3, (0.4, 0.4, 0.4), (0.2, 0.2, 0.2))
    assert parse_preprocessing("mean=0.1:0.2:0.3", rgb).mean == (0.1, 0.2, 0.3)
    for bad in ("size=abc", "colour=red", "mean=0.1:0.2", "resize=bicubic"):
        with pytest.raises(ValueError):
            parse_preprocessing(bad, rgb)


def test_own_preprocessing_applies_to_any_source(digits_run, tmp_path):
    # the same digits stored as 16-px RGB: evaluation brings them back to the encoder's own
    # 8-px grayscale input, so its kNN holds up
    source = load_source("digits")
    rgb = source.train.images.float().repeat(1, 3, 1, 1)
    big = torch.nn.functional.interpolate(rgb, size=(16, 16), mode="nearest").to(torch.uint8)
    path = tmp_path / "digits16.npz"
    np.savez(path, x=big.permute(0, 2, 3, 1).numpy(), y=source.train.labels)
    own = json.loads((digits_run.dir / "eval.json").read_text())["knn_top1"]
    other = selfsup.evaluate(digits_run.dir, data=str(path), protocols=["knn"])
    assert other["preprocessing"]["input_size"] == 8 and other["preprocessing"]["channels"] == 1
    assert other["knn_top1"] > own - 0.1
    assert other["written_to"].endswith("eval-digits16.npz.json")


def test_preprocessing_override_changes_features_and_is_kept_apart(digits_run):
    encoder = selfsup.load(digits_run.dir)
    split = load_source("digits").train
    own, _ = extract_features(encoder, split)
    same, _ = extract_features(encoder, split, preprocessing=encoder.preprocessing)
    other, _ = extract_features(encoder, split, preprocessing=parse_preprocessing(
        "none", encoder.preprocessing))
    assert np.array_equal(own, same) and not np.allclose(own, other)
    before = (digits_run.dir / "eval.json").read_text()
    out = selfsup.evaluate(digits_run.dir, protocols=["knn"], preprocessing="mean=0.9,std=0.1")
    assert out["preprocessing_overridden"] and tuple(out["preprocessing"]["mean"]) == (0.9,)
    assert (digits_run.dir / "eval.json").read_text() == before  # own results untouched
    assert json.loads((digits_run.dir / "eval-digits-mean=0.9_std=0.1.json").read_text())[
        "knn_top1"] == out["knn_top1"]


def test_cli_evaluate_errors_are_one_line(digits_run, capsys):
    assert main(["evaluate", str(digits_run.dir), "--protocol", "knn",
                 "--preprocessing", "size=big"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("selfsup: error:") and "Traceback" not in err
    assert main(["evaluate", str(digits_run.dir), "--protocol", "svm"]) == 2
