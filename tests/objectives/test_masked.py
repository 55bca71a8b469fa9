import pytest
import torch

from selfsup.objectives.masked import MaskedReconstruction, RelativeLossPrediction
from selfsup.views.masking import patchify


def reference_forward_loss(imgs, pred, mask, p, norm_pix_loss):
    """facebookresearch/mae models_mae.py ``MaskedAutoencoderViT.forward_loss``, step by step:
    imgs (N, C, H, W), pred (N, L, p*p*C), mask (N, L) with 1 = masked."""
    target = patchify(imgs, p)
    if norm_pix_loss:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1.0e-6) ** 0.5
    loss = (pred - target) ** 2
    loss = loss.mean(dim=-1)  # [N, L], mean loss per patch
    loss = (loss * mask).sum() / mask.sum()  # mean loss on removed patches
    return loss


@pytest.mark.parametrize("norm_pix", [True, False])
@pytest.mark.parametrize("channels", [1, 3])
def test_matches_official_forward_loss(norm_pix, channels):
    g = torch.Generator().manual_seed(0)
    imgs = torch.randn(4, channels, 16, 16, generator=g, dtype=torch.float64)
    pred = torch.randn(4, 16, 16 * channels, generator=g, dtype=torch.float64)
    mask = (torch.rand(4, 16, generator=g) < 0.75).double()
    ours = MaskedReconstruction(norm_pix)(pred, patchify(imgs, 4), mask)
    ref = reference_forward_loss(imgs, pred, mask, 4, norm_pix)
    assert abs(ours.item() - ref.item()) < 1e-6


def test_hand_computed_two_patches():
    # one image, two patches of 2 values; only patch 0 is masked
    target = torch.tensor([[[1.0, 3.0], [5.0, 5.0]]])
    pred = torch.tensor([[[0.0, 0.0], [9.0, 9.0]]])
    mask = torch.tensor([[1.0, 0.0]])
    # raw pixels: patch 0 error ((0-1)^2 + (0-3)^2) / 2 = 5; patch 1 is not counted
    assert MaskedReconstruction(norm_pix=False)(pred, target, mask).item() == pytest.approx(5.0)
    # normalized: mean 2, unbiased variance ((1-2)^2 + (3-2)^2) / (2-1) = 2, so the target is
    # (-1, 1) / sqrt(2 + 1e-6) and the error is that target's mean square, 1 / (2 + 1e-6)
    loss = MaskedReconstruction(norm_pix=True)(pred, target, mask)
    assert loss.item() == pytest.approx(1 / (2 + 1e-6), rel=1e-6)


def test_norm_pix_uses_unbiased_variance():
    patches = torch.randn(2, 3, 12, dtype=torch.float64)
    t = MaskedReconstruction(norm_pix=True).target(patches)
    # unit unbiased variance (to the eps), not unit biased variance
    torch.testing.assert_close(t.var(dim=-1), torch.ones(2, 3, dtype=torch.float64),
                               rtol=1e-4, atol=1e-4)
    assert not torch.allclose(t.var(dim=-1, unbiased=False), torch.ones(2, 3,
                                                                        dtype=torch.float64))


def test_bf16_prediction_computes_in_float32():
    pred = torch.randn(2, 4, 16).bfloat16()
    loss = MaskedReconstruction()(pred, torch.randn(2, 4, 16), torch.ones(2, 4))
    assert loss.dtype == torch.float32


def test_shape_mismatch_is_clear():
    with pytest.raises(ValueError, match="mask"):
        MaskedReconstruction()(torch.zeros(2, 4, 16), torch.zeros(2, 4, 16), torch.zeros(2, 5))


def reference_learning_loss(loss_pred, loss_target):
    """Haochen-Wang409/HPM models_mae_learn_loss.py ``MaskedAutoencoderViT.forward_learning_loss``
    with ``relative=True``, step by step: loss_pred and loss_target (N, n) over masked patches."""
    labels_positive = loss_target.unsqueeze(1) > loss_target.unsqueeze(2)
    labels_negative = loss_target.unsqueeze(1) < loss_target.unsqueeze(2)
    labels_valid = labels_positive + labels_negative
    loss_matrix = loss_pred.unsqueeze(1) - loss_pred.unsqueeze(2)
    loss = - labels_positive.int() * torch.log(torch.sigmoid(loss_matrix) + 1e-6) \
           - labels_negative.int() * torch.log(1 - torch.sigmoid(loss_matrix) + 1e-6)
    return loss.sum() / labels_valid.sum()


@pytest.mark.parametrize("ties", [False, True])
def test_relative_loss_matches_official(ties):
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(5, 37, generator=g, requires_grad=True)
    target = torch.rand(5, 37, generator=g)
    if ties:  # equal errors make no pair
        target = (target * 4).round()
    ours = RelativeLossPrediction()(pred, target)
    ref = reference_learning_loss(pred, target)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-6)
    (g_ours,) = torch.autograd.grad(ours, pred)
    (g_ref,) = torch.autograd.grad(ref, pred)
    torch.testing.assert_close(g_ours, g_ref, atol=1e-7, rtol=1e-5)


def test_relative_loss_hand_computed():
    # two patches, patch 1 truly harder; equal predictions: each of the 2 ordered pairs costs
    # -log(0.5 + 1e-6), so does their mean
    loss = RelativeLossPrediction()(torch.zeros(1, 2), torch.tensor([[1.0, 2.0]]))
    assert loss.item() == pytest.approx(-torch.log(torch.tensor(0.5 + 1e-6)).item(), rel=1e-6)
    # predicting the right order by a margin of 4: -log(sigmoid(4) + 1e-6) per pair
    loss = RelativeLossPrediction()(torch.tensor([[0.0, 4.0]]), torch.tensor([[1.0, 2.0]]))
    want = -torch.log(torch.sigmoid(torch.tensor(4.0)) + 1e-6)
    assert loss.item() == pytest.approx(want.item(), rel=1e-6)
    # the true errors are detached: only the predictions learn
    target = torch.rand(2, 5, requires_grad=True)
    RelativeLossPrediction()(torch.randn(2, 5, requires_grad=True), target).backward()
    assert target.grad is None
