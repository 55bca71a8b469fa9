"""Every registered method trains end to end and stands where its status says: the learning
guard (selfsup/guard.py) trains each for the same pinned steps on a small real source and
holds it to its word in `selfsup methods` (ready: above its own untrained encoder, kNN k=20,
with the collapse monitor quiet). No family is excused. CI runs these as their own step
(`make guard`); they are the methods' smoke tests too, so no method trains twice."""

import json
import math

import pytest

from selfsup.guard import GUARD_STEPS, hold_to_status, run_guard
from selfsup.methods import METHODS, get_method


def test_registry_has_paper_and_family():
    for name, cls in METHODS.items():
        assert cls.info.name == name and cls.info.paper and cls.info.family


def test_unknown_method_lists_valid():
    with pytest.raises(ValueError, match="simclr"):
        get_method("simclr2")


ENCODER_METHODS = sorted(name for name, cls in METHODS.items() if cls.product == "encoder")


@pytest.mark.guard
@pytest.mark.parametrize("name", ENCODER_METHODS)
def test_method_learns_as_its_status_says(name, tmp_path):
    result = run_guard(name, tmp_path / name)
    hold_to_status(result, METHODS[name].info.status)
    assert result.steps == GUARD_STEPS
    run_dir = tmp_path / name
    assert (run_dir / "encoder.safetensors").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]  # every step is logged, for the loss curve
    assert len(steps) == GUARD_STEPS
    assert all({"step", "epoch", "loss", "lr", "images_per_s", "compute_flops"} <= set(r)
               for r in steps)
    assert all(math.isfinite(r["loss"]) for r in steps)
    if name == "transitive":  # the method's own terms are logged beside the loss
        assert all("transitive_pairs" in r for r in steps)
        assert any(0 <= r.get("neighbour_purity", -1) <= 1 for r in steps)
