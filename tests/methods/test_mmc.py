import pytest
import torch
import torch.nn.functional as F

# the same tiny ViT and views as SiT's tests (tests/methods is on the import path)
from test_sit import (
    assert_teacher_follows_by_ema,
    assert_trains_only_the_student,
    stacked_views,
    tiny_sit,
)
from torch import nn

from selfsup.backbones import build_backbone
from selfsup.data.batch import as_batch
from selfsup.data.spec import DataSpec
from selfsup.methods.mmc import MMC
from selfsup.methods.sit import SiT


def tiny(cls=MMC, channels=1, size=8, **kw):
    return tiny_sit(channels, size, cls=cls, **kw)


def moco_v3_ctr(q, k, temp):
    """MoCo v3's ``contrastive_loss`` on one rank (as SiT's main.py)."""
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    logits = q @ k.T / temp
    return F.cross_entropy(logits, torch.arange(len(q))) * (2 * temp)


def loop_distillation(student, teacher, mask, p):
    """Every patch token's 2 - 2 cos, weighted by its corrupted-pixel count, one at a time."""
    total, weight = 0.0, 0.0
    n, grid = student.shape[0], mask.shape[-1] // p
    for b in range(n):
        for row in range(grid):
            for col in range(grid):
                w = float(mask[b, row * p:(row + 1) * p, col * p:(col + 1) * p].sum()) / p**2
                s, t = student[b, row * grid + col], teacher[b, row * grid + col]
                total = total + w * (2 - 2 * (s @ t) / (s.norm() * t.norm()))
                weight += w
    return total / weight


def test_matches_the_step_by_step_reference():
    """The three terms written out: MoCo v3 between corrupted and the other clean view on the
    class token, SiT's L1 on the corrupted pixels, and the patch-token distillation by loops."""
    method = tiny(channels=3, reconstruction_weight=2.0, distillation_weight=0.5)
    with torch.no_grad():
        for p in method.teacher.parameters():  # a teacher that differs from the student
            p.add_(0.05 * torch.randn_like(p))
    clean, corrupted, mask = stacked_views(method)
    got = method.losses(clean, corrupted, mask)

    d, n = method.backbone.dim, len(clean)
    tokens = method.backbone.tokens(corrupted)
    s_cls = method.projector(tokens[:, 0])
    s_patch = method.projector(tokens[:, 1:].reshape(-1, d)).reshape(n, 16, -1)
    recon = method.rec_head(tokens[:, 1:]).reshape(n, 4, 4, 2, 2, 3)  # (grid, grid, p, p, C)
    recon = recon.permute(0, 5, 1, 3, 2, 4).reshape(n, 3, 8, 8)
    with torch.no_grad():
        backbone_t, projector_t = method.teacher.module
        t_tokens = backbone_t.tokens(clean)
        t_cls = projector_t(t_tokens[:, 0])
        t_patch = projector_t(t_tokens[:, 1:].reshape(-1, d)).reshape(n, 16, -1)
    s1, s2 = s_cls.chunk(2)
    t1, t2 = t_cls.chunk(2)
    con = moco_v3_ctr(s1, t2, 0.2) + moco_v3_ctr(s2, t1, 0.2)
    rec = (recon - clean).abs()[mask[:, None].expand_as(clean)].mean()
    dist = loop_distillation(s_patch, t_patch, mask, 2)
    torch.testing.assert_close(got["loss"], con + 2.0 * rec + 0.5 * dist, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got["distillation_loss"], dist.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got["contrastive_loss"], con.detach(), atol=1e-5, rtol=1e-5)


def test_without_distillation_it_is_sit_step_for_step():
    mmc = tiny(distillation_weight=0.0)
    sit = tiny(SiT)
    sit.load_state_dict(mmc.state_dict())
    clean, corrupted, mask = stacked_views(mmc)
    torch.testing.assert_close(mmc.losses(clean, corrupted, mask)["loss"],
                               sit.losses(clean, corrupted, mask)["loss"])


def test_distillation_reads_the_corrupted_patches_only():
    """A corruption aligned to one patch: only that patch's token is distilled."""
    method = tiny()
    clean, _, _ = stacked_views(method, b=2)
    mask = torch.zeros(4, 8, 8, dtype=torch.bool)
    mask[:, 2:4, 4:6] = True  # patch (1, 2), token 6
    corrupted = clean.masked_fill(mask[:, None], 0.0)
    got = method.losses(clean, corrupted, mask)["distillation_loss"]
    with torch.no_grad():
        tokens = method.backbone.tokens(corrupted)
        s = method._local(method.projector, tokens)[:, 6]
        t = method._local(method.teacher.module[1], method.teacher.module[0].tokens(clean))[:, 6]
    want = (2 - 2 * F.cosine_similarity(s, t, dim=1)).mean()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_training_loss_trains_the_student_and_only_the_student():
    method = tiny()
    out = method.training_loss(as_batch(torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8)))
    assert set(out) == {"loss", "contrastive_loss", "reconstruction_loss", "distillation_loss"}
    assert_trains_only_the_student(method, out)


def test_teacher_follows_the_student_by_ema():
    assert_teacher_follows_by_ema(tiny(momentum=0.9))


def test_registered_with_its_recipe_and_defaults():
    assert MMC.info.name == "mmc" and MMC.info.family == "masked image modelling"
    assert "Masked Momentum Contrastive" in MMC.info.paper
    assert MMC.recipe is SiT.recipe
    h = MMC.hparams()
    assert "variant" not in h
    assert (h["distillation_weight"], h["reconstruction_weight"], h["temperature"],
            h["corruption"], h["drop_ratio"]) == (1.0, 1.0, 0.2, "zeros", 0.5)


@pytest.mark.parametrize("kwargs, match", [
    ({"distillation_weight": -1.0}, "distillation_weight"),
    ({"corruption": "blur"}, "corruption"),
    ({"momentum": 1.5}, "momentum"),
])
def test_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kwargs)
    resnet = build_backbone("resnet10w32", channels=1, input_size=8)
    with pytest.raises(ValueError, match="token backbone"):
        MMC(resnet, nn.Identity(), DataSpec("image", (1, 8, 8), 64))
