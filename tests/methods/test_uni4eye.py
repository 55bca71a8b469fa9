import pytest
import torch

from selfsup.backbones import Preprocessing
from selfsup.backbones.vit import VisionTransformer
from selfsup.data.batch import as_batch
from selfsup.data.spec import DataSpec
from selfsup.methods.uni4eye import Uni4Eye, sobel_magnitude
from selfsup.views import build_views
from selfsup.views.masking import patchify, random_masking


def tiny_uni4eye(channels=1, **kw):
    pre = Preprocessing(28, channels, (0.5,) * channels, (0.25,) * channels)
    vit = VisionTransformer(pre, name="vit_tiny", channels=channels, input_size=28,
                            patch_size=4, dim=32, depth=2, heads=2)
    return Uni4Eye(vit, build_views(pre, Uni4Eye.recipe.views),
                   DataSpec("image", (channels, 28, 28), 16), decoder_dim=16, decoder_depth=1,
                   decoder_heads=2, **kw)


def reference_sobel(img):
    """Sobel magnitude pixel by pixel, OpenCV's default border (BORDER_REFLECT_101: index -1
    reads 1, index n reads n - 2): img (H, W) -> (H, W)."""
    h, w = img.shape
    kx = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]

    def at(i, j):
        i = -i if i < 0 else 2 * (h - 1) - i if i >= h else i
        j = -j if j < 0 else 2 * (w - 1) - j if j >= w else j
        return float(img[i, j])

    out = torch.zeros(h, w, dtype=torch.float64)
    for i in range(h):
        for j in range(w):
            gx = sum(kx[a][b] * at(i + a - 1, j + b - 1) for a in range(3) for b in range(3))
            gy = sum(kx[b][a] * at(i + a - 1, j + b - 1) for a in range(3) for b in range(3))
            out[i, j] = (gx * gx + gy * gy) ** 0.5
    return out


def test_sobel_magnitude_matches_the_pixel_loop_and_a_hand_value():
    x = torch.randn(2, 3, 9, 7, dtype=torch.float64)
    g = sobel_magnitude(x)
    assert g.shape == x.shape
    for b in range(2):
        for c in range(3):
            torch.testing.assert_close(g[b, c], reference_sobel(x[b, c]))
    # a vertical step of height 1: the two columns beside it see 1 + 2 + 1 = 4, the rest 0
    step = torch.zeros(1, 1, 5, 6)
    step[..., 3:] = 1.0
    want = torch.zeros(5, 6)
    want[:, 2:4] = 4.0
    torch.testing.assert_close(sobel_magnitude(step)[0, 0], want)


def reference_two_decoder_loss(method, imgs, noise, weight):
    """Davidczy/Uni4Eye_pp models_mae.py ``MaskedAutoencoderViT23D_2decoder`` (2-D path:
    ``random_masking``, ``forward_encoder``, ``forward_decoder``, ``forward_loss``), step by
    step, the gradient map in place of its second image, with this method's two stated
    departures: each branch its own final norm, both targets normalized per patch."""
    vit, p = method.backbone, method.patch_size
    x = vit.patch_embed(imgs).flatten(2).transpose(1, 2) + vit.pos_embed[:, 1:, :]
    n, length, d = x.shape
    len_keep = int(length * (1 - method.mask_ratio))
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :len_keep]
    x = torch.gather(x, dim=1, index=ids_keep.unsqueeze(-1).repeat(1, 1, d))
    mask = torch.ones([n, length])
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, dim=1, index=ids_restore)
    cls_token = vit.cls_token + vit.pos_embed[:, :1, :]
    x = torch.cat((cls_token.expand(n, -1, -1), x), dim=1)
    for blk in vit.blocks:
        x = blk(x)
    latent = vit.norm(x)

    def branch(dec):
        x = dec.embed(latent)
        mask_tokens = dec.mask_token.repeat(n, ids_restore.shape[1] + 1 - x.shape[1], 1)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
        x_ = torch.gather(x_, dim=1, index=ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
        x = torch.cat([x[:, :1, :], x_], dim=1) + dec.pos_embed
        for blk in dec.blocks:
            x = blk(x)
        return dec.pred(dec.norm(x))[:, 1:, :]

    def normalized(t):
        mean = t.mean(dim=-1, keepdim=True)
        var = t.var(dim=-1, keepdim=True)
        return (t - mean) / (var + 1.e-6) ** .5

    pred, pred1 = branch(method.decoder), branch(method.gradient_decoder)
    target = normalized(patchify(imgs, p))
    target1 = normalized(patchify(torch.stack([torch.stack([reference_sobel(c) for c in im])
                                               for im in imgs]).float(), p))
    loss = ((pred - target) ** 2).mean(dim=-1)
    loss1 = ((pred1 - target1) ** 2).mean(dim=-1)
    return (loss * mask + weight * loss1 * mask).sum() / mask.sum()


@pytest.mark.parametrize("weight", [1.0, 0.3])
def test_loss_matches_the_authors_two_decoder_step(weight):
    """Against Davidczy/Uni4Eye_pp models_mae.py ``MaskedAutoencoderViT23D_2decoder``
    (the same authors' two-decoder model; the Uni4Eye repository was not at hand), fp32."""
    torch.manual_seed(0)
    method = tiny_uni4eye(channels=3, gradient_weight=weight)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in method.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    imgs = torch.randn(3, 3, 28, 28, generator=g)
    noise = torch.rand(3, 49, generator=g)
    out = method.losses(imgs, *random_masking(3, 49, 0.75, noise=noise))
    ref = reference_two_decoder_loss(method, imgs, noise, weight)
    torch.testing.assert_close(out["loss"], ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["image_loss"] + weight * out["gradient_loss"],
                               out["loss"].detach())


def test_training_loss_trains_encoder_and_both_decoders():
    torch.manual_seed(0)
    method = tiny_uni4eye()
    out = method.training_loss(as_batch(torch.randint(0, 256, (8, 1, 28, 28),
                                                      dtype=torch.uint8)))
    assert set(out) == {"loss", "image_loss", "gradient_loss"}
    out["loss"].backward()
    missing = [n for n, p in method.named_parameters() if p.grad is None]
    assert not missing, missing
    assert method.export() is method.backbone
    assert Uni4Eye.info.name == "uni4eye" and Uni4Eye.recipe.backbone == "vit_tiny"
    assert Uni4Eye.hparams()["gradient_weight"] == 1.0
    assert set(method.reconstruction_examples(torch.randint(0, 256, (2, 1, 28, 28),
                                                            dtype=torch.uint8))) == {
        "original", "masked", "reconstruction"}
