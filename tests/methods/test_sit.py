import pytest
import torch
import torch.nn.functional as F
from torch import nn

from selfsup.backbones import Preprocessing, build_backbone
from selfsup.backbones.vit import VisionTransformer
from selfsup.data.batch import as_batch
from selfsup.data.spec import DataSpec
from selfsup.methods.sit import SiT
from selfsup.views import build_views
from selfsup.views.corruption import gmml_views


def tiny_sit(channels=1, size=8, cls=SiT, **kw):
    """A 2-block, 32-wide ViT on 8 px images under SiT (or a subclass: MMC's tests use it)."""
    torch.manual_seed(0)
    pre = Preprocessing(size, channels, (0.5,) * channels, (0.25,) * channels)
    vit = VisionTransformer(pre, name="vit_tiny", channels=channels, input_size=size,
                            patch_size=2, dim=32, depth=2, heads=2)
    return cls(vit, build_views(pre, cls.recipe.views), DataSpec("image", (channels, size, size),
                                                                 64),
               proj_hidden_dim=16, proj_dim=8, **kw)


def stacked_views(method, b=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    c, s = method.channels, method.backbone.input_size
    clean = torch.randn(2 * b, c, s, s, generator=g)
    corrupted, mask = zip(*(gmml_views(v, generator=g) for v in clean.chunk(2)), strict=True)
    return clean, torch.cat(corrupted), torch.cat(mask)


def official_rec_head(method, patch_tokens):
    """vision_transformer ``RECHead``: three Linear-GELU layers, then ``ConvTranspose2d(dim, C,
    kernel=stride=patch)`` on the token grid; its weights are read off our final Linear (whose
    bias the caller made one value per channel, all a transposed convolution can hold)."""
    head, p, c = method.rec_head, method.backbone.patch_size, method.channels
    last = head[-1]
    conv = nn.ConvTranspose2d(last.in_features, c, p, p)
    with torch.no_grad():  # our output feature (i, j, ch) is pixel (i, j) of channel ch
        conv.weight.copy_(last.weight.T.reshape(-1, p, p, c).permute(0, 3, 1, 2))
        conv.bias.copy_(last.bias.view(p, p, c)[0, 0])
    x = head[:-1](patch_tokens).transpose(1, 2)  # (N, dim, L)
    grid = int(x.shape[2] ** 0.5)
    return conv(x.unflatten(2, (grid, grid)))


def official_ctr(q, k, temp):
    """main.py ``SimCLR.contrastive_loss`` on one rank."""
    q, k = nn.functional.normalize(q, dim=1), nn.functional.normalize(k, dim=1)
    logits = torch.einsum("nc,mc->nm", [q, k]) / temp
    return nn.CrossEntropyLoss()(logits, torch.arange(logits.shape[0])) * (2 * temp)


def official_r_loss(recons, clean, mask):
    recloss = F.l1_loss(recons, clean, reduction="none")
    return recloss[mask[:, None].expand_as(clean)].mean()


def test_momentum_variant_matches_the_official_step():
    """Sara-Ahmed/SiT main.py ``train_one_epoch`` with ``FullPipline``, ``SimCLR`` and
    ``RECHead``, step by step, fp32."""
    method = tiny_sit(channels=3, reconstruction_weight=2.0)
    with torch.no_grad():
        method.rec_head[-1].bias.copy_(torch.tensor([0.1, -0.2, 0.3]).repeat(4))
        for p in method.teacher.parameters():  # a teacher that differs from the student
            p.add_(0.05 * torch.randn_like(p))
    clean, corrupted, mask = stacked_views(method)
    got = method.losses(clean, corrupted, mask)
    tokens = method.backbone.tokens(corrupted)
    s_cls = method.projector(tokens[:, 0])
    s_recons = official_rec_head(method, tokens[:, 1:])
    with torch.no_grad():
        t_cls = method.teacher.module(clean)
    s_out, t_out = s_cls.chunk(2), t_cls.detach().chunk(2)
    c_loss = official_ctr(s_out[0], t_out[1], 0.2) + official_ctr(s_out[1], t_out[0], 0.2)
    r_loss = official_r_loss(s_recons, clean, mask)
    torch.testing.assert_close(got["loss"], c_loss + 2.0 * r_loss, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got["reconstruction_loss"], r_loss.detach(), atol=1e-5,
                               rtol=1e-5)


def official_info_nce(features, temp):
    """The v1 losses.py ``SimCLR.info_nce_loss`` and its cross-entropy."""
    b = features.shape[0] // 2
    labels = torch.cat([torch.arange(b) for _ in range(2)], dim=0)
    labels = (labels.unsqueeze(0) == labels.unsqueeze(1)).float()
    features = nn.functional.normalize(features, dim=1)
    sim = features @ features.T
    eye = torch.eye(labels.shape[0], dtype=torch.bool)
    labels, sim = labels[~eye].view(labels.shape[0], -1), sim[~eye].view(sim.shape[0], -1)
    positives = sim[labels.bool()].view(labels.shape[0], -1)
    negatives = sim[~labels.bool()].view(sim.shape[0], -1)
    logits = torch.cat([positives, negatives], dim=1) / temp
    return nn.CrossEntropyLoss()(logits, torch.zeros(logits.shape[0], dtype=torch.long))


def test_rotation_variant_matches_the_v1_step():
    """Sara-Ahmed/SiT v1 main.py ``FullpiplineSiT.forward`` and ``uncertaintyLoss``, with the
    rotation head on the mean patch token (the stated change), fp32."""
    method = tiny_sit(variant="rotation")
    with torch.no_grad():
        method.weighting.sigma.copy_(torch.tensor([0.7, 1.2, 0.9]))
        method.rec_head[-1].bias.fill_(0.1)
    clean, corrupted, mask = stacked_views(method)
    turns = torch.randint(0, 4, (len(clean),), generator=torch.Generator().manual_seed(2))
    got = method.losses(clean, corrupted, mask, turns)
    x = method.backbone.tokens(corrupted)
    loss_rot = nn.CrossEntropyLoss()(method.rotation_head(x[:, 1:].mean(1)), turns)
    loss_contr = official_info_nce(method.projector(x[:, 0]), 0.5)
    loss_rec = official_r_loss(official_rec_head(method, x[:, 1:]), clean, mask)

    def uncertainty(loss, s):
        return 0.5 / (s**2) * loss + torch.log(1 + s**2)

    sig = method.weighting.sigma
    want = (uncertainty(loss_rot, sig[0]) + uncertainty(loss_contr, sig[1])
            + uncertainty(loss_rec, sig[2]))
    torch.testing.assert_close(got["loss"], want, atol=1e-5, rtol=1e-5)


def assert_trains_only_the_student(method, out: dict) -> None:
    """The loss reaches every student weight and nothing else (SiT and MMC)."""
    out["loss"].backward()
    student = {n: p for n, p in method.named_parameters() if not n.startswith("teacher.")}
    missing = [n for n, p in student.items() if p.grad is None]
    assert not missing, missing
    assert all(p.grad is None for p in method.parameters() if not p.requires_grad)
    assert method.export() is method.backbone


def assert_teacher_follows_by_ema(method) -> None:
    """With momentum 0.9 at the start of the cosine the teacher moves a tenth of the way."""
    with torch.no_grad():
        for p in method.backbone.parameters():
            p.add_(1.0)
    before = method.teacher.module[0].cls_token.clone()
    method.after_optimizer_step(0.0)
    torch.testing.assert_close(method.teacher.module[0].cls_token,
                               0.9 * before + 0.1 * method.backbone.cls_token)


@pytest.mark.parametrize("variant", ["momentum", "rotation"])
def test_training_loss_trains_the_student_and_only_the_student(variant):
    method = tiny_sit(variant=variant)
    out = method.training_loss(as_batch(torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8)))
    logged = {"loss", "contrastive_loss", "reconstruction_loss"}
    assert set(out) == logged | ({"rotation_loss"} if variant == "rotation" else set())
    assert_trains_only_the_student(method, out)


def test_teacher_follows_the_student_by_ema():
    assert_teacher_follows_by_ema(tiny_sit(momentum=0.9))


def test_registered_with_its_recipe_and_defaults():
    assert SiT.info.name == "sit" and SiT.info.family == "masked image modelling"
    assert SiT.recipe.backbone == "vit_tiny" and SiT.recipe.views.kind == "two_crop"
    h = SiT.hparams()
    assert (h["variant"], h["corruption"], h["drop_ratio"], h["replace_ratio"]) == (
        "momentum", "zeros", 0.5, 0.3)


@pytest.mark.parametrize("kwargs, match", [
    ({"variant": "jigsaw"}, "variant"),
    ({"corruption": "blur"}, "corruption"),
    ({"momentum": 1.5}, "momentum"),
])
def test_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_sit(**kwargs)
    resnet = build_backbone("resnet10w32", channels=1, input_size=8)
    with pytest.raises(ValueError, match="token backbone"):
        SiT(resnet, nn.Identity(), DataSpec("image", (1, 8, 8), 64))
