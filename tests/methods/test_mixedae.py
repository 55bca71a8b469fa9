import math

import pytest
import torch
from torch import nn

from selfsup.backbones import Preprocessing, build_backbone
from selfsup.backbones.vit import VisionTransformer
from selfsup.data.batch import as_batch
from selfsup.data.spec import DataSpec
from selfsup.methods.mae import MAE
from selfsup.methods.mixedae import MixedAE
from selfsup.views import build_views
from selfsup.views.masking import patchify
from selfsup.views.mixing import patch_mixing


def tiny(size=8, patch=2, **kw):
    torch.manual_seed(0)
    pre = Preprocessing(size, 1, (0.5,), (0.25,))
    vit = VisionTransformer(pre, name="vit_tiny", channels=1, input_size=size, patch_size=patch,
                            dim=32, depth=2, heads=2)
    return MixedAE(vit, build_views(pre, MixedAE.recipe.views), DataSpec("image", (1, size, size),
                                                                         64),
                   proj_hidden_dim=16, proj_dim=8, decoder_dim=16, decoder_depth=1,
                   decoder_heads=2, **kw)


def reference_step(method, x, mixing):
    """MixedAE's loss one group and one member at a time: paste each position's patch from its
    owner, build the homologous mask and the segment embeddings position by position, encode,
    decode every member from the class token and its own tokens, MAE's normalized-pixel loss
    on the member's other patches, and the supervised contrastive loss anchor by anchor."""
    r, p, vit = method.group_size, method.patch_size, method.backbone
    groups, n = mixing.source.shape
    grid = vit.grid_size
    patches = patchify(x, p)
    recs, homo_terms = [], []
    for g in range(groups):
        mixed = torch.zeros(1, 1, grid * p, grid * p)
        extra = torch.zeros(1, n, vit.dim)
        for i in range(n):
            owner = int(mixing.source[g, i])
            if owner >= 0:
                row, col = divmod(i, grid)
                mixed[0, :, row * p:(row + 1) * p, col * p:(col + 1) * p] = (
                    x[g * r + owner, :, row * p:(row + 1) * p, col * p:(col + 1) * p])
                extra[0, i] = method.segment_embed[owner]
        order = mixing.ids_mixed[g]
        owners = [int(mixing.source[g, i]) for i in order]
        allowed = torch.ones(1, len(order) + 1, len(order) + 1, dtype=torch.bool)
        for a in range(len(order)):
            for b in range(len(order)):
                allowed[0, a + 1, b + 1] = owners[a] == owners[b]
        latent = vit.tokens(mixed, keep=order[None], attn_mask=allowed, extra_embed=extra)
        for m in range(r):
            own = [j + 1 for j in range(len(order)) if owners[j] == m]
            member = torch.cat([latent[:, :1], latent[:, own]], dim=1)
            pred = method.decoder(member, mixing.ids_restore[g * r + m][None])[0]  # (L, ppC)
            target = patchify(x[g * r + m][None], p)[0]
            target = (target - target.mean(-1, keepdim=True)) / (
                target.var(-1, keepdim=True) + 1e-6) ** 0.5
            masked = [i for i in range(n) if mixing.source[g, i] != m]
            recs.append(((pred[masked] - target[masked]) ** 2).mean(-1))
        z = method.homologous_head(latent[0, 1:])  # the batch norm sees one group here
        homo_terms.append((z, owners))
    rec = torch.cat(recs).mean()
    return rec, homo_terms, patches


def homologous_by_loops(z, owners, tau):
    u = torch.nn.functional.normalize(z, dim=1)
    terms = []
    for i in range(len(owners)):
        others = [a for a in range(len(owners)) if a != i]
        positives = [q for q in others if owners[q] == owners[i]]
        log_denominator = torch.logsumexp(torch.stack([u[i] @ u[a] / tau for a in others]), 0)
        terms.append(-sum(u[i] @ u[q] / tau - log_denominator for q in positives)
                     / len(positives))
    return torch.stack(terms).mean()


def test_matches_the_step_by_step_reference():
    method = tiny(homologous_weight=0.3)
    method.homologous_head = nn.Linear(32, 8)  # no batch norm: groups may go one at a time
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    mixing = patch_mixing(2, 16, 4, generator=torch.Generator().manual_seed(2))
    got = method.losses(x, mixing)
    rec, homo_terms, _ = reference_step(method, x, mixing)
    homo = torch.stack([homologous_by_loops(z, o, 0.2) for z, o in homo_terms]).mean()
    torch.testing.assert_close(got["reconstruction_loss"], rec.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got["homologous_loss"], homo.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got["loss"], rec + 0.3 * homo, atol=1e-5, rtol=1e-5)


def test_left_over_positions_are_reconstructed_by_everyone():
    """28 px, 4 px patches: 49 positions, 12 per image, one nobody's."""
    method = tiny(size=28, patch=4, homologous_weight=0.0)
    method.homologous_head = nn.Linear(32, 8)
    x = torch.randn(4, 1, 28, 28)
    mixing = patch_mixing(1, 49, 4, generator=torch.Generator().manual_seed(0))
    assert (mixing.source == -1).sum() == 1
    rec, _, _ = reference_step(method, x, mixing)
    torch.testing.assert_close(method.losses(x, mixing)["loss"], rec, atol=1e-5, rtol=1e-5)


def test_segment_embeddings_reach_the_encoder_and_stay_out_of_the_export():
    method = tiny()
    x = torch.randn(8, 1, 8, 8)
    mixing = patch_mixing(2, 16, 4, generator=torch.Generator().manual_seed(0))
    before = method.losses(x, mixing)["loss"]
    with torch.no_grad():
        method.segment_embed[1].add_(torch.randn(32))  # a constant would vanish in LN
    assert not torch.allclose(before, method.losses(x, mixing)["loss"])
    assert "segment_embed" not in dict(method.export().named_parameters())


def test_training_loss_groups_the_batch_and_trains_every_part():
    method = tiny()
    out = method.training_loss(as_batch(torch.randint(0, 256, (10, 1, 8, 8),
                                                      dtype=torch.uint8)))
    assert set(out) == {"loss", "reconstruction_loss", "homologous_loss"}
    assert math.isfinite(out["loss"].item())
    out["loss"].backward()
    missing = [n for n, p in method.named_parameters() if p.grad is None]
    assert not missing, missing
    with pytest.raises(ValueError, match="groups of 4"):
        method.training_loss(as_batch(torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)))


def test_registered_with_maes_recipe_and_defaults():
    assert MixedAE.info.name == "mixedae" and MixedAE.info.family == "masked image modelling"
    assert "Mixed Autoencoder" in MixedAE.info.paper
    assert MixedAE.recipe is MAE.recipe
    h = MixedAE.hparams()
    assert (h["group_size"], h["homologous_weight"], h["temperature"]) == (4, 0.1, 0.2)


@pytest.mark.parametrize("kwargs, match", [
    ({"group_size": 1}, "group_size"),
    ({"group_size": 9}, "group_size"),  # 16 patches: one each, no positive pair
    ({"homologous_weight": -0.1}, "homologous_weight"),
])
def test_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kwargs)
    resnet = build_backbone("resnet10w32", channels=1, input_size=8)
    with pytest.raises(ValueError, match="token backbone"):
        MixedAE(resnet, nn.Identity(), DataSpec("image", (1, 8, 8), 64))
