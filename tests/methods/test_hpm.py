import pytest
import torch

from selfsup.backbones import Preprocessing
from selfsup.backbones.vit import VisionTransformer
from selfsup.data.batch import as_batch
from selfsup.data.spec import DataSpec
from selfsup.methods.hpm import HPM
from selfsup.views import build_views
from selfsup.views.masking import patchify, random_masking


def tiny_hpm(channels=1, **kw):
    pre = Preprocessing(28, channels, (0.5,) * channels, (0.25,) * channels)
    vit = VisionTransformer(pre, name="vit_tiny", channels=channels, input_size=28,
                            patch_size=4, dim=32, depth=2, heads=2)
    return HPM(vit, build_views(pre, HPM.recipe.views), DataSpec("image", (channels, 28, 28), 16),
               decoder_dim=16, decoder_depth=2, decoder_heads=2, **kw)


def perturb(module, scale=0.05, seed=0):
    """Move every weight off its initial value (zero biases, unit norms) so no term hides."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))


def reference_forward_encoder(vit, imgs, mask):
    """HPM models_mae_learn_loss.py ``MaskedAutoencoderViT.forward_encoder``: mask (N, L) bool,
    True = masked; the visible patches kept in patch order (``x[~mask]``)."""
    x = vit.patch_embed(imgs).flatten(2).transpose(1, 2)
    x = x + vit.pos_embed[:, 1:, :]
    n, _, d = x.shape
    x = x[~mask].reshape(n, -1, d)
    cls_token = vit.cls_token + vit.pos_embed[:, :1, :]
    x = torch.cat((cls_token.expand(x.shape[0], -1, -1), x), dim=1)
    for blk in vit.blocks:
        x = blk(x)
    return vit.norm(x)


def reference_forward_decoder(decoder, predictor, x, mask):
    """HPM ``MaskedAutoencoderViT.forward_decoder``: visible tokens then mask tokens, each with
    its positions; the reconstructor and the loss predictor branch read the same sequence.
    Returns (pred, mask_num, loss_pred)."""
    x = decoder.embed(x)
    x_vis = x[:, 1:, :]
    n, _, d = x_vis.shape
    expand_pos_embed = decoder.pos_embed[:, 1:, :].expand(n, -1, -1)
    pos_vis = expand_pos_embed[~mask].reshape(n, -1, d)
    pos_mask = expand_pos_embed[mask].reshape(n, -1, d)
    x_ = torch.cat([x_vis + pos_vis, decoder.mask_token + pos_mask], dim=1)
    x = torch.cat([x[:, :1, :] + decoder.pos_embed[:, :1, :], x_], dim=1)
    loss_pred = x.clone()
    for blk in decoder.blocks:
        x = blk(x)
    x = decoder.pred(decoder.norm(x))[:, 1:, :]
    for blk in predictor.blocks:
        loss_pred = blk(loss_pred)
    loss_pred = predictor.pred(predictor.norm(loss_pred))[:, 1:, :]
    return x, pos_mask.shape[1], loss_pred.mean(dim=-1)


def reference_step_loss(method, imgs, mask):
    """HPM engine_pretrain.py ``train_one_epoch`` with --learning_loss --relative (and
    --norm_pix_loss): ``forward_loss`` on the masked predictions, ``forward_learning_loss``
    (relative) against its detached per-patch matrix, summed with weight 1."""
    latent = reference_forward_encoder(method.backbone, imgs, mask)
    pred, mask_num, loss_pred = reference_forward_decoder(method.decoder, method.loss_predictor,
                                                          latent, mask)
    target = patchify(imgs, method.patch_size)
    n, _, d = target.shape
    target = target[mask].reshape(n, -1, d)
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True)
    target = (target - mean) / (var + 1.e-6) ** .5
    loss = (pred[:, -mask_num:] - target) ** 2
    loss_mean, loss_target = loss.mean(), loss.mean(dim=-1).detach()
    loss_pred = loss_pred[:, -mask_num:]
    labels_positive = loss_target.unsqueeze(1) > loss_target.unsqueeze(2)
    labels_negative = loss_target.unsqueeze(1) < loss_target.unsqueeze(2)
    labels_valid = labels_positive + labels_negative
    loss_matrix = loss_pred.unsqueeze(1) - loss_pred.unsqueeze(2)
    loss_learn = (- labels_positive.int() * torch.log(torch.sigmoid(loss_matrix) + 1e-6)
                  - labels_negative.int() * torch.log(1 - torch.sigmoid(loss_matrix) + 1e-6))
    loss_learn = loss_learn.sum() / labels_valid.sum()
    return loss_mean + loss_learn, loss_mean, loss_learn


def test_loss_and_gradients_match_the_official_step():
    """Against Haochen-Wang409/HPM (models_mae_learn_loss.py ``forward_encoder``,
    ``forward_decoder``, ``forward_loss``, ``forward_learning_loss``; engine_pretrain.py), fp32."""
    torch.manual_seed(0)
    method = tiny_hpm(channels=3)
    perturb(method)
    imgs = torch.randn(4, 3, 28, 28)
    ids_keep, mask, ids_restore = random_masking(4, 49, 0.75,
                                                 generator=torch.Generator().manual_seed(1))
    out = method.losses(imgs, ids_keep, mask, ids_restore)
    ref, ref_recon, ref_learn = reference_step_loss(method, imgs, mask.bool())
    torch.testing.assert_close(out["loss"], ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["reconstruction_loss"], ref_recon.detach(), atol=1e-5,
                               rtol=1e-5)
    torch.testing.assert_close(out["predictor_loss"], ref_learn.detach(), atol=1e-5, rtol=1e-5)
    names = ["backbone.patch_embed.weight", "decoder.mask_token", "decoder.embed.weight",
             "loss_predictor.pred.weight", "decoder.pred.weight"]
    params = [method.get_parameter(n) for n in names]
    ours = torch.autograd.grad(out["loss"], params)
    theirs = torch.autograd.grad(ref, params)
    for name, a, b in zip(names, ours, theirs, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=name)


def test_the_momentum_copy_scores_the_unmasked_image_and_masks_its_hardest():
    """The copy's scores are the official EMA forward with nothing masked (``visible_mask``
    all False: every patch visible, no mask token), its ``loss_pred``."""
    torch.manual_seed(0)
    method = tiny_hpm()
    perturb(method.teacher, seed=1)  # the copy differs from the student
    imgs = torch.randn(6, 1, 28, 28)
    t_enc, t_dec, t_pred = method.teacher.module
    nothing = torch.zeros(6, 49, dtype=torch.bool)
    latent = reference_forward_encoder(t_enc, imgs, nothing)
    ref_scores = reference_forward_decoder(t_dec, t_pred, latent, nothing)[2]
    scores = method.predicted_losses(imgs)
    torch.testing.assert_close(scores, ref_scores, atol=1e-5, rtol=1e-5)
    method.after_optimizer_step(1.0)  # alpha = 0.5: 18 of the 37 masked patches are hardest
    _, mask, _ = method.hard_masks(imgs, torch.Generator().manual_seed(0))
    assert torch.equal(mask.sum(1), torch.full((6,), 37.0))
    top = ref_scores.topk(18, dim=1).indices
    assert torch.equal(mask.gather(1, top), torch.ones(6, 18))


def test_easy_to_hard_schedule_and_momentum():
    torch.manual_seed(0)
    method = tiny_hpm()
    imgs = torch.randn(2, 1, 28, 28)

    def refuse(x):
        raise AssertionError("no hard patch yet: the copy must not run")

    method.predicted_losses = refuse
    method.hard_masks(imgs)  # progress 0: alpha 0, a random mask
    method.after_optimizer_step(0.05)  # alpha 0.025: int(37 * 0.025) = 0 still
    method.hard_masks(imgs)
    del method.predicted_losses
    # momentum ramps 0.99 -> 0.999 over the first eighth of training, then stays
    student = [p.detach().clone() for p in method._student().parameters()]
    with torch.no_grad():
        for p in method._student().parameters():
            p.add_(1.0)
    before = [p.clone() for p in method.teacher.module.parameters()]
    method.after_optimizer_step(1 / 16)
    m = 0.99 + 0.009 * 0.5
    for old, new, s in zip(before, method.teacher.module.parameters(), student, strict=True):
        torch.testing.assert_close(new, m * old + (1 - m) * (s + 1.0))
    assert float(method.progress) == pytest.approx(1 / 16)
    # the progress travels in the state dict, so a resumed run keeps its schedule
    method.after_optimizer_step(0.75)
    fresh = tiny_hpm()
    fresh.load_state_dict(method.state_dict())
    assert float(fresh.progress) == pytest.approx(0.75)


def test_training_loss_reaches_every_trained_weight():
    torch.manual_seed(0)
    method = tiny_hpm()
    method.after_optimizer_step(1.0)
    out = method.training_loss(as_batch(torch.randint(0, 256, (8, 1, 28, 28),
                                                      dtype=torch.uint8)))
    assert set(out) == {"loss", "reconstruction_loss", "predictor_loss"}
    out["loss"].backward()
    trained = [n for n, p in method.named_parameters() if p.requires_grad]
    assert all(not n.startswith("teacher.") for n in trained)
    missing = [n for n in trained if method.get_parameter(n).grad is None]
    assert not missing, missing
    assert HPM.info.name == "hpm" and HPM.recipe.backbone == "vit_tiny"
    assert HPM.hparams()["max_hard_fraction"] == 0.5 and HPM.hparams()["predictor_weight"] == 1
    with pytest.raises(ValueError, match="momentum"):
        tiny_hpm(momentum=0.999, final_momentum=0.99)
