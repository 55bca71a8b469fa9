"""The learning guard fails on the two planted cases it exists for: an encoder that never
changes, and one whose representation collapses."""

import pytest
import torch
from torch import nn

from selfsup.guard import GuardFailed, GuardResult, guard_status, hold_to_status, run_guard
from selfsup.methods import METHODS, Method
from selfsup.methods.base import Recipe
from selfsup.methods.registry import register


class Frozen(Method):
    """Trains a parameter of its own and never touches the encoder: a method that learns
    nothing, whose loss still falls."""

    def __init__(self, backbone, views, data):
        super().__init__(backbone, views, data)
        self.offset = nn.Parameter(torch.ones(8))

    def training_loss(self, batch):
        return {"loss": self.offset.pow(2).sum()}


class Collapsing(Method):
    """Regresses every image's embedding onto one constant vector: the constant representation
    (rank one, no spread) the collapse monitor exists to catch."""

    recipe = Recipe(optimizer="adamw", lr=5e-2, weight_decay=0.0)

    def training_loss(self, batch):
        z = self.encode(self.views(batch.inputs)[0])  # (B, D)
        return {"loss": (z - 1).pow(2).mean()}


@pytest.fixture
def planted():
    names = {"planted_frozen": Frozen, "planted_collapse": Collapsing}
    for name, cls in names.items():
        register(name, family="planted", paper="a test's planted case")(cls)
    yield
    for name in names:
        METHODS.pop(name)


def test_status_words():
    assert guard_status(0.80, 0.70, collapsed=False) == "ready"
    assert guard_status(0.71, 0.70, collapsed=False) == "experimental"  # within the margin
    assert guard_status(0.95, 0.70, collapsed=True) == "collapses"
    with pytest.raises(ValueError, match="status 'done'"):
        register("x", family="f", paper="p", status="done")


def measured(trained: float, untrained: float = 0.80, collapsed: bool = False) -> GuardResult:
    return GuardResult("m", trained, untrained, collapsed, 40.0, 112,
                       guard_status(trained, untrained, collapsed))


def test_each_status_holds_its_method_to_its_word():
    hold_to_status(measured(0.85), "ready")
    for fails in (measured(0.81), measured(0.95, collapsed=True)):
        with pytest.raises(GuardFailed):
            hold_to_status(fails, "ready")
    hold_to_status(measured(0.95, collapsed=True), "collapses")
    with pytest.raises(GuardFailed, match="status='experimental'"):
        hold_to_status(measured(0.80), "collapses")  # no longer collapses
    # experimental stands until the gain clears twice the margin: a gain at the margin, which
    # another CPU may tip either way, does not flip it
    hold_to_status(measured(0.815), "experimental")
    hold_to_status(measured(0.83), "experimental")
    with pytest.raises(GuardFailed, match="status='ready'"):
        hold_to_status(measured(0.85), "experimental")
    with pytest.raises(GuardFailed, match="status='collapses'"):
        hold_to_status(measured(0.80, collapsed=True), "experimental")


def test_guard_fails_on_a_frozen_encoder(planted, tmp_path):
    result = run_guard("planted_frozen", tmp_path / "frozen", backbone="resnet10w32")
    # the exported encoder is the untrained one, to the last digit of the probe
    assert result.trained_knn == result.untrained_knn and not result.collapsed
    assert result.status == "experimental"
    with pytest.raises(GuardFailed, match="registered 'ready'"):
        hold_to_status(result, "ready")


def test_guard_fails_on_a_collapsing_encoder(planted, tmp_path):
    result = run_guard("planted_collapse", tmp_path / "collapse", backbone="resnet10w32")
    assert result.collapsed and result.rankme < 5, result.explain()
    assert result.status == "collapses"
    with pytest.raises(GuardFailed, match="collapsed -> collapses, but it is registered 'ready'"):
        hold_to_status(result, "ready")


def test_pretrain_warns_before_a_method_that_is_not_ready(caplog):
    from selfsup.train.run import warn_unless_ready

    warn_unless_ready("cae")  # listed 'collapses' by the guard
    assert "cae is listed 'collapses'" in caplog.text
    caplog.clear()
    warn_unless_ready("simclr")
    assert caplog.text == ""
