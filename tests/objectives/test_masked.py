import math

import pytest
import torch

from selfsup.objectives.masked import (
    CorruptedPixelL1,
    HomologousContrastive,
    MaskedReconstruction,
    MaskedTokenDistillation,
    PatchChoice,
    RelativeLossPrediction,
)
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


def reference_patch_choice(queries, candidates):
    """Selfie's loss one query at a time: -log(exp(v_i.h_i) / sum_j exp(v_i.h_j)), averaged."""
    b, m, d = queries.shape
    total = 0.0
    for s in range(b):
        for i in range(m):
            logits = [sum(float(queries[s, i, k]) * float(candidates[s, j, k]) for k in range(d))
                      for j in range(m)]
            total -= logits[i] - math.log(sum(math.exp(x) for x in logits))
    return total / (b * m)


def test_patch_choice_matches_the_loop():
    g = torch.Generator().manual_seed(0)
    q, h = torch.randn(3, 5, 7, generator=g), torch.randn(3, 5, 7, generator=g)
    assert PatchChoice()(q, h).item() == pytest.approx(reference_patch_choice(q, h), abs=1e-5)


def test_patch_choice_hand_computed_and_one_softmax():
    # image of 2 masked patches, 1-d codes: query 0 scores (2, 1), query 1 scores (0, 0)
    q, h = torch.tensor([[[1.0], [0.0]]]), torch.tensor([[[2.0], [1.0]]])
    want = (math.log(1 + math.exp(-1)) + math.log(2)) / 2
    assert PatchChoice()(q, h).item() == pytest.approx(want, rel=1e-6)
    # every query sure of its own patch costs ~0; a second softmax before the cross-entropy
    # would squash the logits into [0, 1] and leave at least log(1 + 3 / e) ~ 0.75 here
    eye = torch.eye(4)[None]
    assert PatchChoice()(10 * eye, eye).item() < 1e-3
    assert torch.nn.functional.cross_entropy(torch.softmax(10 * eye[0], 1),
                                             torch.arange(4)).item() > 0.7


def test_patch_choice_computes_bf16_in_float32():
    g = torch.Generator().manual_seed(1)
    q, h = torch.randn(2, 4, 8, generator=g), torch.randn(2, 4, 8, generator=g)
    low = PatchChoice()(q.bfloat16(), h.bfloat16())
    assert low.dtype == torch.float32
    assert low.item() == pytest.approx(PatchChoice()(q, h).item(), abs=0.05)


@pytest.mark.parametrize("q, h, match", [
    (torch.zeros(2, 4, 3), torch.zeros(2, 5, 3), "shape"),
    (torch.zeros(4, 3), torch.zeros(4, 3), "shape"),
    (torch.zeros(2, 1, 3), torch.zeros(2, 1, 3), "M >= 2"),
    (torch.zeros(2, 4, 3, dtype=torch.long), torch.zeros(2, 4, 3, dtype=torch.long), "floating"),
])
def test_patch_choice_rejects_bad_inputs(q, h, match):
    with pytest.raises(ValueError, match=match):
        PatchChoice()(q, h)


def official_r_loss(pred, clean, mask):
    """Sara-Ahmed/SiT main.py ``train_one_epoch``: ``F.l1_loss(s_recons, clean, reduction=
    'none')`` indexed by the image-shaped corruption mask (``masks_crops``) and averaged."""
    recloss = torch.nn.functional.l1_loss(pred, clean, reduction="none")
    masks = mask[:, None].expand_as(clean).float()  # GMML's masks are zeros_like(image)
    return recloss[masks == 1].mean()


def test_corrupted_l1_matches_the_loop_and_the_official_indexing():
    g = torch.Generator().manual_seed(0)
    pred, clean = torch.randn(3, 2, 5, 4, generator=g), torch.randn(3, 2, 5, 4, generator=g)
    mask = torch.rand(3, 5, 4, generator=g) < 0.4
    total, count = 0.0, 0
    for b in range(3):
        for c in range(2):
            for y in range(5):
                for x in range(4):
                    if mask[b, y, x]:
                        total += abs(float(pred[b, c, y, x]) - float(clean[b, c, y, x]))
                        count += 1
    ours = CorruptedPixelL1()(pred, clean, mask)
    assert ours.item() == pytest.approx(total / count, abs=1e-5)
    torch.testing.assert_close(ours, official_r_loss(pred, clean, mask), atol=1e-6, rtol=1e-6)


def test_corrupted_l1_hand_computed():
    # one 1x3 image of 2 channels, pixels 0 and 2 corrupted: |1-0| |3-0| and |-2-0| |0-0|
    pred = torch.tensor([[[[1.0, 5.0, -2.0]], [[3.0, 5.0, 0.0]]]])
    mask = torch.tensor([[[True, False, True]]])
    assert CorruptedPixelL1()(pred, torch.zeros_like(pred), mask).item() == pytest.approx(1.5)
    assert CorruptedPixelL1()(pred, pred + 1, torch.zeros_like(mask)).item() == 0.0


@pytest.mark.parametrize("pred, target, mask", [
    (torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 3), torch.zeros(2, 4, 4)),
    (torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)),
    (torch.zeros(2, 16), torch.zeros(2, 16), torch.zeros(2, 16)),
])
def test_corrupted_l1_rejects_bad_shapes(pred, target, mask):
    with pytest.raises(ValueError, match="expected"):
        CorruptedPixelL1()(pred, target, mask)
    with pytest.raises(ValueError, match="floating"):
        CorruptedPixelL1()(torch.zeros(1, 1, 2, 2, dtype=torch.long),
                           torch.zeros(1, 1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2))


def test_token_distillation_matches_the_loop():
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(3, 5, 4, generator=g), torch.randn(3, 5, 4, generator=g)
    w = torch.rand(3, 5, generator=g)
    w[0, 1] = 0.0
    total, weight = 0.0, 0.0
    for b in range(3):
        for i in range(5):
            u = s[b, i] / s[b, i].norm()
            v = t[b, i] / t[b, i].norm()
            total += float(w[b, i]) * float(((u - v) ** 2).sum())
            weight += float(w[b, i])
    got = MaskedTokenDistillation()(s, t, w)
    assert got.item() == pytest.approx(total / weight, abs=1e-5)


def test_token_distillation_hand_computed_and_teacher_gets_no_gradient():
    # token 0: orthogonal, 2 - 2 * 0 = 2; token 1: opposite, 2 - 2 * (-1) = 4; weights 1 and 3
    s = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]], requires_grad=True)
    t = torch.tensor([[[0.0, 5.0], [0.0, -1.0]]], requires_grad=True)
    w = torch.tensor([[1.0, 3.0]])
    loss = MaskedTokenDistillation()(s, t, w)
    assert loss.item() == pytest.approx((2 * 1 + 4 * 3) / 4)
    loss.backward()
    assert t.grad is None and s.grad is not None
    assert MaskedTokenDistillation()(s, t, torch.zeros(1, 2)).item() == 0.0
    bf16 = MaskedTokenDistillation()(s.detach().bfloat16(), t.detach().bfloat16(), w)
    assert bf16.dtype == torch.float32 and bf16.item() == pytest.approx(3.5)


@pytest.mark.parametrize("s, t, w, match", [
    (torch.zeros(2, 3, 4), torch.zeros(2, 3, 5), torch.zeros(2, 3), "expected"),
    (torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), torch.zeros(2, 4), "expected"),
    (torch.zeros(6, 4), torch.zeros(6, 4), torch.zeros(6), "expected"),
    (torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long),
     torch.zeros(1, 2), "floating"),
])
def test_token_distillation_rejects_bad_inputs(s, t, w, match):
    with pytest.raises(ValueError, match=match):
        MaskedTokenDistillation()(s, t, w)


def reference_homologous(z, sources, tau):
    """Supervised contrastive L_out within each mixed image, one anchor at a time."""
    terms = []
    for g in range(z.shape[0]):
        u = torch.nn.functional.normalize(z[g].double(), dim=1)
        n = u.shape[0]
        for i in range(n):
            others = [a for a in range(n) if a != i]
            positives = [p for p in others if sources[g, p] == sources[g, i]]
            if not positives:
                continue
            denominator = sum(math.exp(float(u[i] @ u[a]) / tau) for a in others)
            terms.append(-sum(math.log(math.exp(float(u[i] @ u[p]) / tau) / denominator)
                              for p in positives) / len(positives))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("tau", [0.2, 1.0])
def test_homologous_contrastive_matches_the_loop(tau):
    g = torch.Generator().manual_seed(4)
    z = torch.randn(3, 8, 5, generator=g)
    sources = torch.randint(0, 3, (3, 8), generator=g)
    sources[0] = torch.arange(8)  # image 0: no positives anywhere, left out
    sources[1, 0] = 7  # a lone patch in image 1, left out
    got = HomologousContrastive(tau)(z, sources)
    assert got.item() == pytest.approx(reference_homologous(z, sources, tau), abs=1e-5)


def test_homologous_contrastive_hand_computed():
    # sources a, a, b: anchors 0 and 1 (cos 1 to each other, 0 to patch 2), tau 1:
    # -log(e / (e + 1)) each; anchor 2 has no positive
    z = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]]])
    got = HomologousContrastive(1.0)(z, torch.tensor([[0, 0, 1]]))
    assert got.item() == pytest.approx(-math.log(math.e / (math.e + 1)), abs=1e-6)
    low = HomologousContrastive(1.0)(z.bfloat16(), torch.tensor([[0, 0, 1]]))
    assert low.dtype == torch.float32


def test_homologous_contrastive_rejects_bad_inputs():
    loss = HomologousContrastive()
    with pytest.raises(ValueError, match="expected"):
        loss(torch.zeros(2, 4, 3), torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="expected"):
        loss(torch.zeros(8, 3), torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        loss(torch.zeros(2, 4, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="no positive"):
        loss(torch.randn(1, 3, 2), torch.tensor([[0, 1, 2]]))
    with pytest.raises(ValueError, match="temperature"):
        HomologousContrastive(0.0)
