"""The momentum teacher and key queue, and MoCo's use of them inside the trainer."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
import torch.distributed as dist
from torch import nn

import selfsup
from selfsup.methods.momentum import KeyQueue, MomentumTeacher, cosine_momentum
from selfsup.rundir import load_checkpoint_safely
from selfsup.train.optim import parameter_groups


def test_cosine_momentum_schedule():
    assert cosine_momentum(0.0, 0.99) == pytest.approx(0.99)
    assert cosine_momentum(0.5, 0.99) == pytest.approx(0.995)
    assert cosine_momentum(1.0, 0.99) == pytest.approx(1.0)
    # m(t) = 1 - (1 - m0) (cos(pi t) + 1) / 2
    assert cosine_momentum(0.25, 0.9) == pytest.approx(1 - 0.1 * (math.cos(math.pi / 4) + 1) / 2)


def test_ema_update_matches_the_formula_and_stays_out_of_the_optimizer():
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    teacher = MomentumTeacher(student)
    before = [p.clone() for p in teacher.module.parameters()]
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p))
    teacher.update(student, 0.9)
    for old, new, s in zip(before, teacher.module.parameters(), student.parameters(),
                           strict=True):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * s, atol=1e-7, rtol=0)
        assert not new.requires_grad
    owner = nn.ModuleDict({"student": student, "teacher": teacher})
    in_optimizer = {id(p) for g in parameter_groups(owner, 0.1) for p in g["params"]}
    assert in_optimizer == {id(p) for p in student.parameters()}
    assert not teacher(torch.randn(5, 3)).requires_grad
    with pytest.raises(ValueError, match="momentum"):
        teacher.update(student, 1.5)


def test_queue_is_fifo_and_wraps():
    queue = KeyQueue(5, 2)
    keys = [torch.tensor([[float(i), 1.0]]).repeat(2, 1) * torch.tensor([[1.0], [2.0]])
            for i in range(4)]  # four steps of two keys each: 8 keys through a queue of 5
    for k in keys:
        queue.enqueue(k)
    every = torch.cat(keys)  # (8, 2) in arrival order
    torch.testing.assert_close(queue.oldest_first(), every[-5:])  # the 3 oldest overwritten
    assert int(queue.pointer) == 8 % 5
    with pytest.raises(ValueError, match="queue"):
        queue.enqueue(torch.zeros(6, 2))


@contextlib.contextmanager
def one_rank_group(store):
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_queue_in_a_one_rank_group_is_the_plain_queue(tmp_path):
    keys = torch.randn(3, 4)
    plain, grouped = KeyQueue(7, 4), KeyQueue(7, 4)
    grouped.load_state_dict(plain.state_dict())
    plain.enqueue(keys)
    with one_rank_group(tmp_path / "store"):
        grouped.enqueue(keys)
    for p, g in zip(plain.state_dict().values(), grouped.state_dict().values(), strict=True):
        assert torch.equal(p, g)


class Tiny(nn.Module):
    """A stand-in backbone: flatten + linear, with the ``dim`` methods read."""

    dim = 8

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.LazyLinear(8))

    def forward(self, x):
        return self.net(x)


@pytest.mark.parametrize("name", ["moco", "mochi"])
def test_queue_never_holds_a_key_of_the_current_batch_at_loss_time(name):
    from selfsup.backbones.preprocessing import Preprocessing
    from selfsup.data.batch import as_batch
    from selfsup.data.spec import DataSpec
    from selfsup.methods import get_method
    from selfsup.views import TwoCropViews, ViewConfig

    torch.manual_seed(0)
    backbone = Tiny()
    backbone(torch.zeros(1, 1, 8, 8))  # materialize the lazy layer before the teacher copy
    pre = Preprocessing(input_size=8, channels=1, mean=(0.5,), std=(0.25,))
    method = get_method(name)(backbone, TwoCropViews(pre, ViewConfig()),
                              DataSpec("image", (1, 8, 8), num_samples=64), queue_size=12)
    seen_at_loss: list[torch.Tensor] = []
    contrast = method.contrast

    def recording(q, k):
        seen_at_loss.append(method.queue.keys.clone())
        return contrast(q, k)

    method.contrast = recording
    for step in range(5):  # 5 batches of 4 keys through a queue of 12: it wraps
        images = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
        method.training_loss(as_batch(images))
        newest = method.queue.oldest_first()[-4:]  # this step's keys, enqueued after the loss
        for snapshot in seen_at_loss[-2:]:  # both loss terms of this step
            distances = torch.cdist(newest, snapshot)  # (4, 12)
            assert distances.min() > 1e-4, f"step {step}: a current key was in the queue"
        method.after_optimizer_step(step / 5)
    assert len(seen_at_loss) == 10


def test_moco_state_is_checkpointed_and_resumed(tmp_path):
    run_dir = tmp_path / "moco"
    selfsup.pretrain("moco", "digits", epochs=1, batch_size=128, precision="32", seed=0,
                     run_dir=str(run_dir), evaluate_after=False, backbone="resnet10w32")
    ckpt = load_checkpoint_safely(run_dir / "checkpoints" / "last.ckpt")
    state = ckpt["state_dict"]
    assert state["method.queue.keys"].shape == (1797 // 2, 128)  # the default adapts to digits
    assert int(state["method.queue.pointer"]) == (14 * 128) % (1797 // 2)
    # the teacher is saved, apart from the student it follows, and has no optimizer state
    teacher, student = state["method.teacher.module.1.0.weight"], state["method.projector.0.weight"]
    assert teacher.shape == student.shape and not torch.equal(teacher, student)
    trainable = sum(1 for k in state if k.startswith("method.") and "teacher" not in k
                    and not k.startswith("method.queue") and "running_" not in k
                    and "num_batches_tracked" not in k)
    assert len(ckpt["optimizer_states"][0]["state"]) == trainable
    selfsup.pretrain(resume=str(run_dir), evaluate_after=False, epochs=2)
    resumed = load_checkpoint_safely(run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    # a restored pointer continued from 14 steps; a fresh queue would stand at 894 again
    assert int(resumed["method.queue.pointer"]) == (28 * 128) % (1797 // 2)


def test_queue_larger_than_half_the_data_is_an_error(tmp_path):
    from selfsup.train import ConfigError

    with pytest.raises(ConfigError, match="queue_size"):
        selfsup.pretrain("moco", "digits", epochs=1, batch_size=128, run_dir=str(tmp_path / "r"),
                         method_args={"queue_size": 4096}, evaluate_after=False)
