import pytest
import torch
import torch.nn.functional as F

from selfsup.backbones import Preprocessing
from selfsup.backbones.vit import VisionTransformer
from selfsup.data.batch import as_batch
from selfsup.data.spec import DataSpec
from selfsup.methods.cae import CAE
from selfsup.views import build_views
from selfsup.views.masking import block_masking, patchify


def tiny_cae(channels=1, **kw):
    pre = Preprocessing(28, channels, (0.5,) * channels, (0.25,) * channels)
    vit = VisionTransformer(pre, name="vit_tiny", channels=channels, input_size=28,
                            patch_size=4, dim=32, depth=2, heads=2)
    return CAE(vit, build_views(pre, CAE.recipe.views), DataSpec("image", (channels, 28, 28), 16),
               regressor_depth=2, decoder_depth=2, **kw)


def reference_encoder(vit, x, bool_masked_pos):
    """Atten4Vis/CAE modeling_cae_helper.py ``VisionTransformerEncoder.forward_features``: the
    patches where ``bool_masked_pos`` is False, in patch order, with CLS and positions."""
    x = vit.patch_embed(x).flatten(2).transpose(1, 2)
    batch_size, seq_len, dim = x.size()
    cls_tokens = vit.cls_token.expand(batch_size, -1, -1)
    x_unmasked = x[~bool_masked_pos].reshape(batch_size, -1, dim)
    x_unmasked = torch.cat((cls_tokens, x_unmasked), dim=1)
    pos_embed = vit.pos_embed.expand(batch_size, seq_len + 1, dim)
    pos_embed_unmasked = pos_embed[:, 1:][~bool_masked_pos].reshape(batch_size, -1, dim)
    pos_embed_unmasked = torch.cat((pos_embed[:, :1], pos_embed_unmasked), dim=1)
    x_unmasked = x_unmasked + pos_embed_unmasked
    for blk in vit.blocks:
        x_unmasked = blk(x_unmasked)
    return vit.norm(x_unmasked)


def reference_cross_attention(attn, x, k, v):
    """CAE ``CrossAttention.forward``: q and v biases, the key bias zero."""
    B, N, C = x.shape
    heads = attn.heads
    q = F.linear(input=x, weight=attn.q.weight, bias=attn.q.bias)
    q = q.reshape(B, N, 1, heads, -1).permute(2, 0, 3, 1, 4).squeeze(0)
    k = F.linear(input=k, weight=attn.k.weight, bias=torch.zeros_like(attn.v.bias))
    k = k.reshape(B, k.shape[1], 1, heads, -1).permute(2, 0, 3, 1, 4).squeeze(0)
    v = F.linear(input=v, weight=attn.v.weight, bias=attn.v.bias)
    v = v.reshape(B, v.shape[1], 1, heads, -1).permute(2, 0, 3, 1, 4).squeeze(0)
    q = q * (C // heads) ** -0.5
    attn_ = (q @ k.transpose(-2, -1)).softmax(dim=-1)
    x = (attn_ @ v).transpose(1, 2).reshape(B, N, -1)
    return attn.proj(x)


def reference_regressor_block(blk, x_q, x_kv, pos_q, pos_k):
    """CAE ``RegressorBlock.forward``."""
    x = x_q + blk.gamma1 * reference_cross_attention(
        blk.attn, blk.norm_q(x_q + pos_q), k=blk.norm_k(x_kv + pos_k), v=blk.norm_v(x_kv))
    x = blk.norm(x)
    return x + blk.gamma2 * blk.mlp(x)


def reference_decoder_block(blk, x):
    """CAE ``Block.forward`` with layer scale, its ``Attention`` written out: qkv bias is
    (q_bias, zeros, v_bias), so the timm block's key bias is dropped here."""
    def attention(x):
        a = blk.attn
        B, N, C = x.shape
        q_bias, _, v_bias = a.qkv.bias.chunk(3)
        qkv = F.linear(input=x, weight=a.qkv.weight,
                       bias=torch.cat((q_bias, torch.zeros_like(v_bias), v_bias)))
        qkv = qkv.reshape(B, N, 3, a.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = q * (C // a.num_heads) ** -0.5
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        return a.proj((attn @ v).transpose(1, 2).reshape(B, N, -1))

    x = x + blk.ls1.gamma * attention(blk.norm1(x))
    return x + blk.ls2.gamma * blk.mlp(blk.norm2(x))


def reference_cae_loss(method, x, bool_masked_pos, align_loss_weight=2.0):
    """Atten4Vis/CAE models/modeling_cae.py ``ContextAutoencoderViT.forward`` (with
    ``LatentRegresser`` and ``Decoder``) and the loss of furnace/engine_for_pretraining.py,
    step by step, normalized pixels in place of the DALL-E tokens' cross-entropy."""
    batch_size = x.size(0)
    to_regresser = (None if isinstance(method.to_regressor, torch.nn.Identity)
                    else method.to_regressor)
    x_unmasked = reference_encoder(method.backbone, x, bool_masked_pos)
    if to_regresser is not None:
        x_unmasked = to_regresser[1](to_regresser[0](x_unmasked))
    with torch.no_grad():
        latent_target = reference_encoder(method.backbone, x, ~bool_masked_pos)[:, 1:, :]
        if to_regresser is not None:
            latent_target = to_regresser[1](to_regresser[0](latent_target.detach()))
    _, num_visible_plus1, dim = x_unmasked.shape
    x_unmasked = x_unmasked[:, 1:, :]
    pos_embed = method.pos_embed.expand(batch_size, -1, dim)  # no CLS row here
    pos_embed_masked = pos_embed[bool_masked_pos].reshape(batch_size, -1, dim)
    pos_embed_unmasked = pos_embed[~bool_masked_pos].reshape(batch_size, -1, dim)
    num_masked_patches = method.backbone.num_patches - (num_visible_plus1 - 1)
    x_masked = method.mask_token.expand(batch_size, num_masked_patches, -1)
    for blk in method.regressor:
        x_masked = reference_regressor_block(
            blk, x_masked, torch.cat([x_unmasked, x_masked], dim=1), pos_embed_masked,
            torch.cat([pos_embed_unmasked, pos_embed_masked], dim=1))
    latent_predict = method.regressor_norm(x_masked)
    y = latent_predict + pos_embed_masked
    for blk in method.decoder.blocks:
        y = reference_decoder_block(blk, y)
    logits = method.decoder.pred(method.decoder.norm(y))
    target = patchify(x, method.backbone.patch_size)[bool_masked_pos].reshape(
        batch_size, -1, logits.shape[-1])
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True)
    target = (target - mean) / (var + 1.e-6) ** .5
    loss_main = ((logits - target) ** 2).mean()
    loss_align = align_loss_weight * F.mse_loss(latent_predict.float(),
                                                latent_target.detach().float(), reduction="mean")
    return loss_main + loss_align, loss_main, loss_align / align_loss_weight


@pytest.mark.parametrize("dim", [None, 16])  # the encoder's width, or projected to another
def test_loss_and_gradients_match_the_official_forward(dim):
    """Against Atten4Vis/CAE (modeling_cae.py ``ContextAutoencoderViT.forward``,
    modeling_cae_helper.py ``RegressorBlock``, ``CrossAttention``, ``LatentRegresser``,
    ``Decoder``; engine_for_pretraining.py), fp32."""
    torch.manual_seed(0)
    method = tiny_cae(channels=3, dim=dim, heads=2)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # every weight off its initial value (the key biases included)
        for p in method.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    x = torch.randn(4, 3, 28, 28, generator=g)
    mask = block_masking(4, 7, method.num_masked, generator=g)
    out = method.losses(x, mask)
    ref, ref_main, ref_align = reference_cae_loss(method, x, mask)
    torch.testing.assert_close(out["loss"], ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["reconstruction_loss"], ref_main.detach(), atol=1e-5,
                               rtol=1e-5)
    torch.testing.assert_close(out["alignment_loss"], ref_align.detach(), atol=1e-5, rtol=1e-5)
    names = ["backbone.patch_embed.weight", "mask_token", "regressor.0.attn.q.weight",
             "regressor.1.gamma1", "decoder.blocks.0.ls1.gamma", "decoder.pred.weight"]
    params = [method.get_parameter(n) for n in names]
    for name, a, b in zip(names, torch.autograd.grad(out["loss"], params),
                          torch.autograd.grad(ref, params), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=name)


def test_alignment_target_is_the_current_encoder_without_gradient():
    torch.manual_seed(0)
    method = tiny_cae()
    # no copy of the encoder: every weight trains, the target reads the live backbone
    assert all(p.requires_grad for p in method.parameters())
    x = torch.randn(2, 1, 28, 28)
    mask = block_masking(2, 7, method.num_masked)
    before = method.losses(x, mask)["alignment_loss"]
    with torch.no_grad():
        method.backbone.blocks[-1].mlp.fc2.weight.add_(torch.randn(32, 128))
    assert method.losses(x, mask)["alignment_loss"] != before
    # the target carries no gradient: with the regressor cut from its context (gamma1 = 0)
    # the prediction no longer depends on the encoder, so neither may the alignment term
    with torch.no_grad():
        for blk in method.regressor:
            blk.gamma1.zero_()
    out = method.losses(x, mask)
    grads = torch.autograd.grad(out["loss"] - out["reconstruction_loss"],
                                list(method.backbone.parameters()), allow_unused=True)
    assert all(g is None or not g.any() for g in grads)


def test_training_loss_masks_half_in_blocks_and_trains_every_weight():
    torch.manual_seed(0)
    method = tiny_cae()
    assert method.num_masked == 24  # int(49 * 0.5), the official 98 of 196
    out = method.training_loss(as_batch(torch.randint(0, 256, (8, 1, 28, 28),
                                                      dtype=torch.uint8)))
    assert set(out) == {"loss", "reconstruction_loss", "alignment_loss"}
    out["loss"].backward()
    missing = [n for n, p in method.named_parameters() if p.grad is None]
    assert not missing, missing
    assert method.export() is method.backbone
    assert CAE.info.name == "cae" and CAE.recipe.backbone == "vit_tiny"
    assert CAE.hparams()["align_weight"] == 2.0 and CAE.hparams()["mask_ratio"] == 0.5
    for blk in method.regressor:
        assert torch.equal(blk.gamma1, torch.full_like(blk.gamma1, 0.1))
    with pytest.raises(ValueError, match="mask_ratio"):
        tiny_cae(mask_ratio=0.0)
