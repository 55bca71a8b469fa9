"""Self-distillation targets (methods/self_distillation.py): the pair rule by hand, SimCLR and
Barlow Twins with a teacher against the loss written out, the teacher's EMA step by hand, and a
digits run that beats chance."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import selfsup
from selfsup.backbones import Preprocessing, build_backbone
from selfsup.data.batch import as_batch
from selfsup.data.spec import DataSpec
from selfsup.methods import get_method
from selfsup.methods.multicrop import multi_crop_loss
from selfsup.methods.self_distillation import SelfDistillation
from selfsup.views import build_views


def test_pairs_by_hand():
    def loss(a, b):  # asymmetric: which (student, teacher) pairs enter is visible
        return (10 * a + b).sum()

    distill = SelfDistillation(nn.Identity(), 1, 4, momentum=0.9)
    distill.predictor = nn.Identity()  # p_i = v_i and t_j = v_j
    views = [torch.tensor([[1.0]]), torch.tensor([[2.0]]), torch.tensor([[3.0]]),
             torch.tensor([[4.0]])]
    # teacher v_1 = 1: students 2, 3, 4 -> 21 + 31 + 41; teacher v_2 = 2: students 1, 3, 4 ->
    # 12 + 32 + 42; the small crops are never targets
    assert distill.loss(loss, views, nn.Identity()).item() == pytest.approx(179 / 6)
    # two views: BYOL's symmetrized loss (21 + 12) / 2
    assert distill.loss(loss, views[:2], nn.Identity()).item() == pytest.approx(16.5)
    # without a teacher: the plain pair rule, l(z_1, z_2) for two views
    assert multi_crop_loss(loss, views[:2]).item() == 12
    with pytest.raises(ValueError, match="teacher_momentum"):
        SelfDistillation(nn.Identity(), 1, 4, momentum=1.5)


def build(name: str, **method_args):
    pre = Preprocessing(16, 1, (0.5,), (0.25,))
    backbone = build_backbone("resnet10w32", channels=1, input_size=16, mean=(0.5,),
                              std=(0.25,))
    cls = get_method(name)
    views = build_views(pre, cls.recipe.views)
    return cls(backbone, views, DataSpec("image", (1, 16, 16), 8), **method_args)


@pytest.mark.parametrize("name", ["simclr", "barlow_twins"])
def test_loss_against_the_teacher_written_out(name):
    images = torch.randint(0, 256, (8, 1, 16, 16), dtype=torch.uint8)
    method = build(name, teacher_momentum=0.99)
    torch.manual_seed(0)
    loss = method.training_loss(as_batch(images))["loss"]
    torch.manual_seed(0)
    x1, x2 = method.views(images)  # (8, 1, S, S) each
    p1, p2 = (method.distillation.predictor(method.projector(method.backbone(x)))
              for x in (x1, x2))
    backbone_t, projector_t = method.distillation.teacher.module
    with torch.no_grad():
        t1, t2 = (projector_t(backbone_t(x)) for x in (x1, x2))
    scale = getattr(method, "loss_scale", 1.0)
    expected = scale * 0.5 * (method.objective(p1, t2) + method.objective(p2, t1))
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert all(p.grad is not None for p in method.distillation.predictor.parameters())
    assert all(p.grad is not None for p in method.backbone.parameters())
    assert all(p.grad is None and not p.requires_grad
               for p in method.distillation.teacher.parameters())


def test_teacher_follows_the_student_by_the_cosine_momentum():
    method = build("simclr", teacher_momentum=0.5)
    assert build("simclr").distillation is None  # off unless asked: the paper's SimCLR
    with torch.no_grad():
        for p in method.backbone.parameters():
            p.add_(1.0)  # the student moves after the teacher was copied
    student = [p.detach().clone() for p in method.student.parameters()]
    teacher = [p.detach().clone() for p in method.distillation.teacher.parameters()]
    method.after_optimizer_step(0.0)  # m(0) = base = 0.5
    for t0, s, t1 in zip(teacher, student, method.distillation.teacher.parameters(),
                         strict=True):
        torch.testing.assert_close(t1, 0.5 * t0 + 0.5 * s)
    teacher = [p.detach().clone() for p in method.distillation.teacher.parameters()]
    method.after_optimizer_step(1.0)  # m(1) = 1: the teacher stays
    for t0, t1 in zip(teacher, method.distillation.teacher.parameters(), strict=True):
        torch.testing.assert_close(t1, t0)


def test_simclr_with_a_teacher_learns(tmp_path, untrained_knn):
    options = dict(epochs=1, batch_size=64, precision="32", seed=0,
                   method_args={"teacher_momentum": 0.99})
    run = selfsup.pretrain("simclr", "digits", run_dir=str(tmp_path / "run"), report=False,
                           **options)
    # beyond the untrained encoder it started from (kNN 0.65 on digits; chance is 0.1)
    before = untrained_knn("simclr", **options)
    assert run.eval["knn_top1"] > before + 0.03, (before, run.eval)
