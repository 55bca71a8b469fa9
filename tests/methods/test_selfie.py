import math

import pytest
import torch

from selfsup.backbones import build_backbone
from selfsup.data.batch import as_batch
from selfsup.data.spec import DataSpec
from selfsup.methods.selfie import Selfie
from selfsup.views import build_views
from selfsup.views.masking import random_masking


def tiny_selfie(size=8, channels=1, **kw):
    torch.manual_seed(0)
    backbone = build_backbone("resnet8w32", channels=channels, input_size=size)
    return Selfie(backbone, build_views(backbone.preprocessing, Selfie.recipe.views),
                  DataSpec("image", (channels, size, size), 16), **kw)


def reference_loss(method, x, ids_keep, ids_restore):
    """The paper's section 2, one image, one patch at a time (no official code exists): P on
    each patch alone, A over u_0 and the visible codes plus their positions, a query per
    masked location, and the cross-entropy over the image's masked patches."""
    g = method.grid
    p = x.shape[-1] // g
    pos = method.positions()
    total, count = 0.0, 0
    for s in range(x.shape[0]):
        h = [method.backbone(x[s:s + 1, :, (k // g) * p:(k // g + 1) * p,
                               (k % g) * p:(k % g + 1) * p])[0] for k in range(g * g)]
        keep = [int(k) for k in ids_keep[s]]
        masked = [k for k in ids_restore[s].argsort().tolist() if k not in keep]
        tokens = torch.stack([method.pool_token[0, 0]] + [h[k] + pos[k] for k in keep])
        u = method.pool_blocks(tokens[None])[0, 0]
        for i in masked:
            v = method.query_head(u + pos[i])
            logits = [float(v @ h[j]) for j in masked]
            total -= logits[masked.index(i)] - math.log(sum(math.exp(z) for z in logits))
            count += 1
    return total / count


@pytest.mark.parametrize("query_mlp", [True, False])
@pytest.mark.parametrize("size, channels, grid", [(8, 1, 4), (12, 3, 6)])
def test_loss_matches_the_patch_by_patch_reference(query_mlp, size, channels, grid):
    method = tiny_selfie(size, channels, grid=grid, query_mlp=query_mlp).eval()  # BN: fixed
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, channels, size, size, generator=gen)
    ids_keep, _, ids_restore = random_masking(3, grid * grid, 0.5, generator=gen)
    with torch.no_grad():
        got = method.loss(x, ids_keep, ids_restore).item()
        want = reference_loss(method, x, ids_keep, ids_restore)
    assert got == pytest.approx(want, abs=1e-5)
    assert method.factorized == (grid > 4)


def test_factorized_positions_are_row_plus_column():
    method = tiny_selfie(14, grid=7)
    rows, cols = method.pos_embed
    torch.testing.assert_close(method.positions()[3 * 7 + 5], rows[3] + cols[5])
    assert method.positions().shape == (49, method.backbone.dim)


def test_training_loss_trains_every_part_and_exports_the_patch_network():
    method = tiny_selfie()
    out = method.training_loss(as_batch(torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8)))
    assert set(out) == {"loss"} and torch.isfinite(out["loss"])
    out["loss"].backward()
    missing = [n for n, p in method.named_parameters() if p.grad is None]
    assert not missing, missing
    encoder = method.export()
    assert encoder is method.backbone and encoder.config["name"] == "resnet8w32"
    assert encoder.eval()(torch.randn(2, 1, 8, 8)).shape == (2, 128)  # the whole image
    assert Selfie.info.name == "selfie" and Selfie.info.family == "masked image modelling"
    assert Selfie.hparams()["mask_ratio"] == 0.5 and Selfie.recipe.backbone == "resnet8w32"


def test_rejects_settings_that_cannot_work():
    with pytest.raises(ValueError, match="grid"):
        tiny_selfie(size=10)  # 10 px do not split into a 4x4 grid
    with pytest.raises(ValueError, match="distractor"):
        tiny_selfie(mask_ratio=0.05)  # 1 of 16 masked: nothing to choose from
    with pytest.raises(ValueError, match="mask_ratio"):
        tiny_selfie(mask_ratio=1.0)


@pytest.mark.parametrize("size, want", [(8, torch.float32), (28, torch.bfloat16)])
def test_two_pixel_patches_keep_the_patch_network_in_fp32_under_bf16(size, want):
    """2 px patches make 1x1 maps in P's third stage, where oneDNN's bf16 convolution returned
    non-finite values; P runs in fp32 there and in bf16 on larger patches (7 px here)."""
    method = tiny_selfie(size)
    seen = []
    method.backbone.net.layer3.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    x = torch.randn(4, 1, size, size)
    ids_keep, _, ids_restore = random_masking(4, 16, 0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = method.loss(x, ids_keep, ids_restore)
    assert seen == [want] and torch.isfinite(loss)
