import numpy as np
import torch

import selfsup
from selfsup.data import load_source
from selfsup.evaluate import layer_features, layer_probes, load_projector
from selfsup.evaluate.features import extract_features
from selfsup.rundir import load_checkpoint_safely

STAGES = ["stem", "layer1", "layer2", "layer3", "layer4"]


def test_layer_features_one_entry_per_stage_and_projection(digits_run):
    encoder = selfsup.load(digits_run.dir)
    projector = load_projector(digits_run.dir, encoder)
    split = load_source("digits").train
    feats, labels = layer_features(encoder, split, projector)
    assert list(feats) == [*STAGES, "projection"]
    width = 32  # resnet10w32
    assert [feats[s].shape[1] for s in STAGES] == [width, width, 2 * width, 4 * width, 8 * width]
    assert feats["projection"].shape == (len(split), 128)  # SimCLR's projector output
    # the last stage, pooled, is exactly what the encoder itself returns
    own, own_labels = extract_features(encoder, split)
    np.testing.assert_allclose(feats["layer4"], own, rtol=1e-5, atol=1e-5)
    assert np.array_equal(labels, own_labels)


def test_projector_is_the_checkpoints(digits_run):
    encoder = selfsup.load(digits_run.dir)
    projector = load_projector(digits_run.dir, encoder)
    state = load_checkpoint_safely(digits_run.dir / "checkpoints" / "best.ckpt")["state_dict"]
    for k, v in projector.state_dict().items():
        assert torch.equal(v, state["method.projector." + k]), k
    assert not projector.training


def test_layer_probes_known_answers():
    # layer "good" separates 3 classes, layer "noise" carries nothing
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 60)
    centers = rng.normal(size=(3, 10)) * 4
    good = centers[y] + 0.3 * rng.normal(size=(180, 10))
    noise = rng.normal(size=(180, 10))
    train = {"good": good[::2], "noise": noise[::2]}
    test = {"good": good[1::2], "noise": noise[1::2]}
    out = layer_probes(train, y[::2], test, y[1::2], k=10)
    assert list(out) == ["good", "noise"]
    assert all(out["good"][p] > 0.97 for p in ("knn_top1", "linear_top1", "nb_top1"))
    assert all(out["noise"][p] < 0.6 for p in ("knn_top1", "linear_top1", "nb_top1"))
    assert out["good"]["dim"] == 10
    # above max_train the same stratified subset is used for every layer
    small = layer_probes(train, y[::2], test, y[1::2], k=10, max_train=30)
    assert small["good"]["linear_top1"] > 0.9
