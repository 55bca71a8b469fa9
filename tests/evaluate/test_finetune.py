import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from selfsup.backbones.preprocessing import Preprocessing
from selfsup.data import Split, load_source, stratified_holdout
from selfsup.evaluate.finetune import (
    balanced_subset,
    finetune_once,
    finetune_param_groups,
    finetune_protocol,
    parse_fractions,
    warmup_cosine,
)


def _digits_pre() -> Preprocessing:
    return Preprocessing(8, 1, (0.5,), (0.25,))


class TinyConv(nn.Module):
    """Two convolutions on 8x8 digits, flattened: (B, 1, 8, 8) -> (B, 512). No lr layers."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                                 nn.Flatten())
        self.dim = 32 * 4 * 4
        self.preprocessing = _digits_pre()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ThreeLayers(nn.Module):
    """Three linear layers with the ViT-style lr-layer interface: ids 0, 1, 2 of 3."""

    num_lr_layers = 3

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(64, 32), nn.Linear(32, 32), nn.Linear(32, 32)])
        self.pos = nn.Parameter(torch.zeros(2, 32))  # stands in for a ViT's pos_embed
        self.dim = 32
        self.preprocessing = _digits_pre()

    def lr_layer_id(self, name: str) -> int:
        return int(name.split(".")[1]) if name.startswith("layers.") else 0

    def no_weight_decay(self) -> set[str]:
        return {"pos"}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)  # (B, 64)
        for layer in self.layers:
            h = torch.relu(layer(h))
        return h + self.pos.sum(0)  # (B, 32)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # the CPU is shared: one intra-op thread keeps these tests from fighting other work
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits() -> tuple[Split, Split]:
    return stratified_holdout(load_source("digits").train, fraction=0.2, seed=0)


class FlakyFolder(Dataset):
    """A folder-like dataset over in-memory digits where every 7th file fails to decode."""

    def __init__(self, split: Split):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        return None if i % 7 == 3 else (self.split.images[i], int(self.split.labels[i]))


def test_balanced_subset_keeps_each_class_share():
    y = np.array([0] * 100 + [1] * 50 + [2] * 20 + [-1] * 30)
    idx = balanced_subset(y, 0.1, seed=0)
    assert np.bincount(y[idx]).tolist() == [10, 5, 2]
    assert np.all(np.diff(idx) > 0)  # sorted, distinct
    # 0.25 * 50 = 12.5 rounds half up
    assert np.bincount(y[balanced_subset(y, 0.25, seed=0)]).tolist() == [25, 13, 5]
    full = balanced_subset(y, 1.0, seed=5)
    assert np.array_equal(full, np.flatnonzero(y >= 0))  # every labelled sample, no -1
    assert np.array_equal(balanced_subset(y, 0.1, 2), balanced_subset(y, 0.1, 2))
    assert not np.array_equal(balanced_subset(y, 0.1, 0), balanced_subset(y, 0.1, 1))
    # the smallest fraction the error names does work
    assert np.bincount(y[balanced_subset(y, 0.5 / 20, seed=0)]).tolist() == [3, 1, 1]


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_balanced_subset_rejects_fraction_out_of_range(fraction):
    with pytest.raises(ValueError, match=r"label fraction must be in \(0, 1\]"):
        balanced_subset(np.array([0, 1, 0, 1]), fraction, seed=0)


def test_balanced_subset_names_the_class_left_empty():
    y = np.array([0] * 100 + [1] * 10 + [2] * 40)
    with pytest.raises(ValueError) as err:
        balanced_subset(y, 0.01, seed=0)
    msg = str(err.value)
    assert "\n" not in msg
    assert "class 1 with 0 samples" in msg and "it has 10" in msg
    assert "0.05 (5.00%)" in msg


@pytest.mark.parametrize("labels", [None, np.full(20, -1)])
def test_balanced_subset_refuses_unlabeled_data(labels):
    with pytest.raises(ValueError, match="needs labels"):
        balanced_subset(labels, 0.5, seed=0)


def test_parse_fractions():
    assert parse_fractions("1%,10%,100%") == (0.01, 0.1, 1.0)
    assert parse_fractions("0.1") == (0.1,)
    assert parse_fractions(" 5% , 0.5,1") == (0.05, 0.5, 1.0)
    with pytest.raises(ValueError, match=r"'0%' must be above 0% and at most 100%"):
        parse_fractions("0%")
    with pytest.raises(ValueError, match=r"'150%' must be above 0% and at most 100%"):
        parse_fractions("1%,150%")
    with pytest.raises(ValueError, match=r"'abc' is not a number.*1%,10%,100%"):
        parse_fractions("abc")
    with pytest.raises(ValueError, match=r"did you mean 10%\?"):
        parse_fractions("10")
    with pytest.raises(ValueError, match="not a number"):
        parse_fractions("")


def test_warmup_cosine():
    assert warmup_cosine(0, 100, 10) == pytest.approx(0.1)
    assert warmup_cosine(9, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine(10, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine(55, 100, 10) == pytest.approx(0.5)
    assert warmup_cosine(100, 100, 10) == pytest.approx(0.0, abs=1e-12)


def test_layer_decay_param_groups():
    enc, head = ThreeLayers(), nn.Linear(32, 10)
    groups = finetune_param_groups(enc, head, lr=1.0, weight_decay=0.05, layer_decay=0.5)
    by_name = {n: (g["lr"], g["weight_decay"]) for g in groups for n in g["names"]}
    # lr * 0.5 ** (3 - layer_id); the head gets the full lr; no decay on 1-d or listed params
    assert by_name == {
        "pos": (0.125, 0.0),
        "layers.0.weight": (0.125, 0.05), "layers.0.bias": (0.125, 0.0),
        "layers.1.weight": (0.25, 0.05), "layers.1.bias": (0.25, 0.0),
        "layers.2.weight": (0.5, 0.05), "layers.2.bias": (0.5, 0.0),
        "head.weight": (1.0, 0.05), "head.bias": (1.0, 0.0),
    }
    n_params = sum(len(g["params"]) for g in groups)
    assert n_params == len(list(enc.parameters())) + 2
    plain = finetune_param_groups(enc, head, lr=1.0, weight_decay=0.05)
    assert {g["lr"] for g in plain} == {1.0}


def test_layer_decay_needs_layers(digits):
    train, test = digits
    with pytest.raises(ValueError, match=r"layer_decay needs a backbone with layers \(a ViT\)"):
        finetune_once(TinyConv(), train, test, np.arange(32), steps=1, lr=1e-3,
                      layer_decay=0.75, seed=0, bf16=False)


def test_finetune_beats_chance_and_leaves_the_caller_encoder_alone(digits):
    train, test = digits
    torch.manual_seed(0)
    enc = TinyConv().eval()
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    rng_before = torch.get_rng_state()
    idx = balanced_subset(train.labels, 0.5, seed=0)
    top1 = finetune_once(enc, train, test, idx, steps=40, batch_size=64, lr=3e-3, seed=0,
                         bf16=False)
    assert top1 > 0.5  # 10 classes: chance is 0.1
    assert all(torch.equal(before[k], v) for k, v in enc.state_dict().items())
    assert not enc.training
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's random state too
    again = finetune_once(enc, train, test, idx, steps=40, batch_size=64, lr=3e-3, seed=0,
                          bf16=False)
    assert again == top1


def test_finetune_with_layer_decay_bf16_and_undecodable_files(digits):
    train, test = digits
    folder = Split(FlakyFolder(train), train.labels)  # images None: read item by item
    folder_test = Split(FlakyFolder(test), test.labels)
    top1 = finetune_once(ThreeLayers(), folder, folder_test, np.arange(len(train)), steps=15,
                         batch_size=64, lr=3e-3, layer_decay=0.5, seed=1, bf16=True)
    assert 0.0 <= top1 <= 1.0


def test_finetune_protocol_pairs_pretrained_and_scratch(digits):
    train, test = digits
    built: list[nn.Module] = []

    def scratch() -> nn.Module:
        built.append(TinyConv())
        return built[-1]

    torch.manual_seed(0)
    messages: list[str] = []
    out = finetune_protocol(TinyConv(), scratch, train, test, fractions=(0.1, 1.0), seeds=(0, 1),
                            steps=3, batch_size=32, progress=messages.append)
    assert set(out) == {"budget", "fractions", "seeds", "rows", "seconds"}
    assert {"steps", "batch_size", "lr", "layer_decay", "augmentation"} <= set(out["budget"])
    assert out["budget"]["steps"] == 3 and out["budget"]["lr"] == pytest.approx(2e-3 * 32 / 256)
    counts = np.bincount(train.labels)
    assert [r["n_labels"] for r in out["rows"]] == [
        int(np.floor(0.1 * counts + 0.5).sum()), len(train)]
    for row in out["rows"]:
        assert set(row) == {"fraction", "n_labels", "pretrained", "scratch", "gain"}
        for arm in ("pretrained", "scratch"):
            assert set(row[arm]) == {"mean", "std", "runs"} and len(row[arm]["runs"]) == 2
            assert row[arm]["mean"] == pytest.approx(np.mean(row[arm]["runs"]))
            assert row[arm]["std"] == pytest.approx(np.std(row[arm]["runs"]))  # ddof=0
        assert row["gain"] == pytest.approx(row["pretrained"]["mean"] - row["scratch"]["mean"])
    # one fresh model per run, never reused
    assert len(built) == 4 and len({id(m) for m in built}) == 4
    assert len(messages) == 4 and messages[0].startswith("finetune 10%")


def test_finetune_protocol_checks_layer_decay_before_any_run(digits):
    train, test = digits
    calls = []
    with pytest.raises(ValueError, match="layer_decay needs a backbone with layers"):
        finetune_protocol(TinyConv(), lambda: calls.append(1) or TinyConv(), train, test,
                          steps=1, layer_decay=0.75)
    assert calls == []


def test_finetune_protocol_scratch_only_and_neither(digits):
    train, test = digits
    torch.manual_seed(0)
    out = finetune_protocol(TinyConv(), TinyConv, train, test, fractions=(0.5,), seeds=(0,),
                            steps=3, batch_size=32, pretrained=False)
    (row,) = out["rows"]
    assert row["pretrained"] is None and row["gain"] is None
    assert len(row["scratch"]["runs"]) == 1 and 0.0 <= row["scratch"]["mean"] <= 1.0
    with pytest.raises(ValueError, match="both the pretrained and the scratch arm are off"):
        finetune_protocol(TinyConv(), None, train, test, steps=1, pretrained=False)


def test_finetune_protocol_scratch_arm_is_fixed_by_its_seed(digits):
    """One call per (fraction, seed), as a study resumed over sittings runs them, gives the
    scratch arm the same result as one call over every seed: its init follows the seed, not
    whatever drew from the global generator before."""
    train, test = digits
    kw = dict(fractions=(0.5,), steps=2, batch_size=32, pretrained=False)
    torch.manual_seed(0)
    both = finetune_protocol(TinyConv(), TinyConv, train, test, seeds=(0, 1), **kw)
    torch.manual_seed(123)
    torch.rand(7)
    alone = finetune_protocol(TinyConv(), TinyConv, train, test, seeds=(1,), **kw)
    assert alone["rows"][0]["scratch"]["runs"] == [both["rows"][0]["scratch"]["runs"][1]]
