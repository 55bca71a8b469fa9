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
from selfsup.evaluate import PROTOCOLS, extract_features, parse_preprocessing, suite
from selfsup.evaluate.products import get_product
from selfsup.train import ConfigError


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


class FlatDigits(torch.nn.Module):
    """A fixed random projection of the 8x8 digits: an encoder with no training to wait for."""

    preprocessing = Preprocessing(8, 1, (0.5,), (0.25,))

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(64, 16)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_probes_fit_on_a_stratified_fixed_sample_recorded_in_the_results(monkeypatch):
    digits = load_source("digits")  # 1797 images; the 80% the probes fit on: 1437
    whole, _, _ = suite.train_test(digits)
    sample = suite.probe_sample(whole, 300)
    expected = np.bincount(whole.labels) * 300 / len(whole)
    assert len(sample) == 300 and np.all(np.abs(np.bincount(sample.labels) - expected) < 1)
    assert torch.equal(sample.images, suite.probe_sample(whole, 300).images)  # seeded
    raw_train_labels = []  # the raw-pixel baseline fits on the same sample as the probes
    real_raw_pixels = suite.raw_pixels
    monkeypatch.setattr(suite, "raw_pixels", lambda split, size=None: (
        raw_train_labels.append(split.labels), real_raw_pixels(split, size))[1])
    monkeypatch.setenv("SELFSUP_CACHE", "off")
    out = suite.evaluate_encoder(FlatDigits(), digits, ["knn", "linear", "raw_knn"],
                                 train_samples=300)
    assert out["n_train"] == 300 and out["n_test"] == 360 and "probe_test_samples" not in out
    assert out["probe_train_samples"] == {"used": 300, "of": 1437}
    assert np.array_equal(raw_train_labels[0], sample.labels)
    assert "raw_knn_samples" not in out  # the byte cap stays a further cap, not reached here
    again = suite.evaluate_encoder(FlatDigits(), digits, ["knn", "linear"], train_samples=300)
    assert (again["knn_top1"], again["linear_top1"]) == (out["knn_top1"], out["linear_top1"])


def test_the_test_split_is_bounded_the_same_way():
    out = suite.evaluate_encoder(FlatDigits(), load_source("digits"), ["knn", "rankme"],
                                 test_samples=100)
    assert out["n_test"] == 100 and out["probe_test_samples"] == {"used": 100, "of": 360}
    assert out["n_train"] == 1437 and "probe_train_samples" not in out
    assert out["rankme"] > 1  # measured on the sampled test features


@pytest.mark.parametrize("samples", [None, 0, 1437, 5000])
def test_the_whole_splits_when_asked_or_under_the_bound(samples):
    out = suite.evaluate_encoder(FlatDigits(), load_source("digits"), ["knn"],
                                 train_samples=samples, test_samples=samples)
    assert (out["n_train"], out["n_test"]) == (1437, 360)
    assert "probe_train_samples" not in out and "probe_test_samples" not in out
    default = suite.evaluate_encoder(FlatDigits(), load_source("digits"), ["knn"])
    assert (default["n_train"], default["n_test"]) == (1437, 360)  # under the default bounds


def test_the_automatic_bound_holds_a_number_of_input_values(monkeypatch):
    # the real bound keeps all of Fashion-MNIST (60,000 x 784) and CIFAR-10 (50,000 x 3,072)
    assert max(60_000 * 784, 50_000 * 3 * 32 * 32) < suite.PROBE_TRAIN_VALUES == 160_000_000
    # "auto": as many training images as hold PROBE_TRAIN_VALUES values; digits' are 8x8 = 64
    monkeypatch.setattr(suite, "PROBE_TRAIN_VALUES", 64 * 400)
    out = suite.evaluate_encoder(FlatDigits(), load_source("digits"), ["knn"])
    assert out["probe_train_samples"] == {"used": 400, "of": 1437}


def test_pretrain_passes_its_evaluation_bounds(tmp_path):
    run = selfsup.pretrain("simclr", "digits", steps=2, batch_size=64, precision="32",
                           backbone="resnet10w32", run_dir=str(tmp_path / "run"), report=False,
                           eval_protocols=["knn"], eval_train_samples=300, eval_test_samples=0)
    assert run.eval["probe_train_samples"] == {"used": 300, "of": 1437}
    assert run.eval["n_test"] == 360
    with pytest.raises(ConfigError, match="eval_train_samples"):
        selfsup.pretrain("simclr", "digits", steps=2, eval_train_samples=-1,
                         run_dir=str(tmp_path / "bad"))


def test_the_default_bound_reaches_the_public_evaluate(monkeypatch):
    seen = []
    real = suite.evaluate_encoder
    monkeypatch.setattr(selfsup.api, "evaluate_encoder", lambda *a, **kw: (
        seen.append((kw["train_samples"], kw["test_samples"])), real(*a, **kw))[1])
    selfsup.evaluate(FlatDigits(), data="digits", protocols=["knn"])
    out = selfsup.evaluate(FlatDigits(), data="digits", protocols=["knn"], train_samples=200,
                           test_samples=50)
    assert seen == [(suite.DEFAULT_TRAIN_SAMPLES, suite.DEFAULT_TEST_SAMPLES), (200, 50)]
    assert out["probe_train_samples"] == {"used": 200, "of": 1437}
    assert out["probe_test_samples"] == {"used": 50, "of": 360}


def test_the_report_samples_the_features_of_the_bounded_evaluation(digits_run, monkeypatch):
    from selfsup.evaluate.features import remembering
    from selfsup.report import page

    monkeypatch.setattr(page, "DEFAULT_TRAIN_SAMPLES", 500)
    monkeypatch.setattr(page, "DEFAULT_TEST_SAMPLES", 200)
    with remembering():  # as after `selfsup.pretrain`: evaluation, then the report
        selfsup.evaluate(selfsup.load(digits_run.dir), data="digits", protocols=["knn"],
                         train_samples=500, test_samples=200)
        monkeypatch.setattr(page, "extract_features",
                            lambda *a, **k: pytest.fail("the report embedded images again"))
        assert set(page.embedding_figures(digits_run.dir, None, "pca")) == {"map", "neighbours"}
