"""The raw-input kNN baseline is remembered by the content it was computed on."""

import json

import numpy as np
import pytest

from selfsup.evaluate import baseline_cache
from selfsup.evaluate.baseline_cache import cached_knn, content_key
from selfsup.evaluate.probes import knn_accuracy


def data(seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(40, 6)).astype(np.float32), rng.integers(0, 3, 40),
            rng.normal(size=(10, 6)).astype(np.float32), rng.integers(0, 3, 10))


def test_a_second_call_reads_the_first_ones_result(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFSUP_CACHE", str(tmp_path))
    x, y, qx, qy = data()
    top1, hit = cached_knn(x, y, qx, qy, 5, 0.1)
    assert not hit and top1 == knn_accuracy(x, y, qx, qy, 5, 0.1)
    [written] = (tmp_path / "raw_knn").glob("*.json")
    assert json.loads(written.read_text()) == {"top1": top1, "n_train": 40, "n_test": 10,
                                               "k": 5, "temperature": 0.1}

    def never(*args):
        raise AssertionError("the kNN ran again")

    monkeypatch.setattr(baseline_cache, "knn_accuracy", never)
    # copies of the same content: the key is the bytes, not the objects
    assert cached_knn(x.copy(), y.copy(), qx.copy(), qy.copy(), 5, 0.1) == (top1, True)


@pytest.mark.parametrize("change", ["labels", "pixels", "k", "temperature", "dtype"])
def test_any_change_of_the_inputs_is_another_key(change):
    x, y, qx, qy = data()
    key = content_key([x, y, qx, qy], 5, 0.1)
    k, t = 5, 0.1
    if change == "labels":
        y = y.copy()
        y[0] = (y[0] + 1) % 3
    elif change == "pixels":
        x = x.copy()
        x[3, 2] += 1e-3
    elif change == "k":
        k = 6
    elif change == "temperature":
        t = 0.07
    else:
        x = x.astype(np.float64)
    assert content_key([x, y, qx, qy], k, t) != key


def test_off_computes_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFSUP_CACHE", "off")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    x, y, qx, qy = data()
    assert cached_knn(x, y, qx, qy, 5, 0.1) == (knn_accuracy(x, y, qx, qy, 5, 0.1), False)
    assert cached_knn(x, y, qx, qy, 5, 0.1)[1] is False
    assert not any(tmp_path.rglob("*.json"))


def test_a_damaged_entry_is_computed_again(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFSUP_CACHE", str(tmp_path))
    x, y, qx, qy = data()
    top1, _ = cached_knn(x, y, qx, qy, 5, 0.1)
    [written] = (tmp_path / "raw_knn").glob("*.json")
    written.write_text('{"top1": ')  # cut short
    assert cached_knn(x, y, qx, qy, 5, 0.1) == (top1, False)
    assert cached_knn(x, y, qx, qy, 5, 0.1) == (top1, True)  # and written whole again


def test_a_second_evaluation_says_its_baseline_was_read(tmp_path, monkeypatch):
    import torch

    from selfsup.backbones import build_backbone
    from selfsup.data import load_source
    from selfsup.evaluate.suite import evaluate_encoder

    monkeypatch.setenv("SELFSUP_CACHE", str(tmp_path))
    digits = load_source("digits")
    torch.manual_seed(0)
    encoder = build_backbone("resnet10w32", channels=1, input_size=digits.image_size,
                             mean=(0.5,), std=(0.25,))
    first = evaluate_encoder(encoder, digits, ("knn", "raw_knn"))
    again = evaluate_encoder(encoder, digits, ("knn", "raw_knn"))
    assert "raw_knn_cached" not in first and again["raw_knn_cached"] is True
    assert again["raw_pixels_knn_top1"] == first["raw_pixels_knn_top1"]
