"""Two gloo ranks on CPU: the collectives' gradients and each objective under emulated DDP."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from selfsup import distributed
from selfsup.objectives import OBJECTIVES, CosineTriplet, ISogCLR, SupCon
from selfsup.objectives.contrastive import MomentumInfoNCE
from selfsup.objectives.masked import (
    CorruptedPixelL1,
    HomologousContrastive,
    MaskedReconstruction,
    MaskedTokenDistillation,
    PatchChoice,
    RelativeLossPrediction,
)
from selfsup.objectives.predictive import LatentPredictionMSE
from selfsup.objectives.redundancy import MixedBarlowTwinsRegularizer
from selfsup.objectives.restoration import BlindSpotMSE

WORLD = 2
BATCH, DIM = 8, 6  # global batch; each rank holds BATCH // WORLD rows


def fixed_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs of the two views (BATCH, DIM) and a shared 'projector' weight (DIM, DIM)."""
    gen = torch.Generator().manual_seed(0)
    x1 = torch.randn(BATCH, DIM, generator=gen, dtype=torch.float64)
    x2 = x1 + 0.3 * torch.randn(BATCH, DIM, generator=gen, dtype=torch.float64)
    weight = torch.randn(DIM, DIM, generator=gen, dtype=torch.float64)
    return x1, x2, weight


def rank_rows(r: int) -> slice:
    b = BATCH // WORLD
    return slice(r * b, (r + 1) * b)


def triplet_edges() -> tuple[torch.Tensor, torch.Tensor]:
    """(BATCH, BATCH) positives (symmetric, within and across ranks) and one-sided ignores for
    CosineTriplet; a rank passes its own rows, columns stay global."""
    positives = torch.zeros(BATCH, BATCH, dtype=torch.bool)
    for i, j in ((0, 5), (2, 3), (1, 6)):
        positives[i, j] = positives[j, i] = True
    ignore = torch.zeros(BATCH, BATCH, dtype=torch.bool)
    ignore[0, 7] = ignore[4, 2] = ignore[6, 4] = True
    return positives, ignore


def triplet_with_edges(rows: slice):
    positives, ignore = triplet_edges()
    return lambda z1, z2: CosineTriplet(hard_negatives=3)(z1, z2, positives[rows], ignore[rows])


def step(objective: torch.nn.Module, x1, x2, weight, ddp: bool) -> dict[str, torch.Tensor]:
    """One loss and backward through z = x @ W, the way a DDP-wrapped projector would see it."""
    x1, x2 = x1.clone().requires_grad_(), x2.clone().requires_grad_()
    weight = weight.clone().requires_grad_()
    loss = objective(x1 @ weight, x2 @ weight)
    loss.backward()
    if ddp:
        # DDP's reducer: parameter gradients are averaged over ranks.
        dist.all_reduce(weight.grad)
        weight.grad /= dist.get_world_size()
    return {"loss": loss.detach(), "weight_grad": weight.grad,
            "x1_grad": x1.grad, "x2_grad": x2.grad}


def latent_prediction_step(x1, x2, weight, ddp: bool) -> dict[str, torch.Tensor]:
    """T-JEPA's loss on M = 2 targets of n = 1 token of d = 3 channels per row: predictions
    from x1 @ W, targets from x2 @ W, which the loss detaches (the EMA target encoder's)."""
    x1, weight = x1.clone().requires_grad_(), weight.clone().requires_grad_()

    def tokens(z: torch.Tensor) -> torch.Tensor:  # (B, 6) -> (M, B, n, d) = (2, B, 1, 3)
        return z.view(len(z), 2, 1, 3).transpose(0, 1)

    loss = LatentPredictionMSE()(tokens(x1 @ weight), tokens(x2 @ weight))
    loss.backward()
    if ddp:
        dist.all_reduce(weight.grad)
        weight.grad /= dist.get_world_size()
    return {"loss": loss.detach(), "weight_grad": weight.grad, "x1_grad": x1.grad}


LABELS = torch.tensor([0, 1, 0, 2, 1, 0, 2, 2])  # SupCon's classes, across both ranks
INDICES = torch.tensor([11, 0, 4, 7, 2, 9, 5, 1])  # iSogCLR's dataset indices of the batch


def supcon_with_labels(rows: slice):
    return lambda z1, z2: SupCon()(z1, z2, LABELS[rows])


def isogclr_with_indices(rows: slice):
    """iSogCLR over 12 samples; the loss keeps its per-sample state for the test to compare."""
    loss = ISogCLR(12).double()
    return lambda z1, z2: loss(z1, z2, INDICES[rows]), loss


MIX_ALPHA = 0.3
LOCAL_PERMS = (torch.tensor([2, 0, 3, 1]), torch.tensor([1, 3, 0, 2]))  # each rank's own rows


def mixed_regularizer_step(x1, x2, weight, r: int | None) -> dict[str, torch.Tensor]:
    """Mixed Barlow Twins' regularizer through z = x @ W, the mixed input built as the method
    does (x_m = alpha x1 + (1 - alpha) x2[perm], each rank permuting its own rows): rank r's
    rows under DDP, or (r None) the full batch with the ranks' permutations as one block one."""
    if r is None:
        b = BATCH // WORLD
        rows, perm = slice(None), torch.cat([p + i * b for i, p in enumerate(LOCAL_PERMS)])
    else:
        rows, perm = rank_rows(r), LOCAL_PERMS[r]
    x1, x2 = x1[rows].clone().requires_grad_(), x2[rows].clone().requires_grad_()
    weight = weight.clone().requires_grad_()
    x_m = MIX_ALPHA * x1 + (1 - MIX_ALPHA) * x2[perm]
    loss = MixedBarlowTwinsRegularizer()(x1 @ weight, x2 @ weight, x_m @ weight, perm,
                                         MIX_ALPHA)
    loss.backward()
    if r is not None:
        dist.all_reduce(weight.grad)
        weight.grad /= dist.get_world_size()
    return {"loss": loss.detach(), "weight_grad": weight.grad,
            "x1_grad": x1.grad, "x2_grad": x2.grad}


# The masked-modelling objectives (issue 15) on z = x @ W seen as 3 "patches" of 2 values per
# row. Their normalizers (masked patches, corrupted pixels, weights, unequal pairs, anchors with
# a positive) differ between the two ranks on purpose: a per-rank mean would then miss the
# global-batch loss, which `distributed.rank_mean` keeps exact.
MASK = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1],       # rank 0: 5 masked
                     [1, 1, 1], [1, 1, 0], [0, 1, 1], [1, 1, 1]])      # rank 1: 10
PIXEL_MASK = torch.stack([MASK, MASK.flip(1)], dim=1)  # (BATCH, 2, 3): 10 against 20 pixels
WEIGHTS = torch.linspace(0, 1, BATCH * 3, dtype=torch.float64).view(BATCH, 3) ** 2
ERRORS = torch.cat([torch.arange(24.0).view(4, 6),                     # rank 0: no tie
                    torch.tensor([[0, 0, 1, 1, 2, 2]] * 2 + [[3, 3, 3, 1, 1, 0]] * 2)]
                   ).to(torch.float64)                                  # rank 1: ties
SOURCES = torch.tensor([[0, 0, 1], [0, 1, 2], [1, 1, 1], [0, 1, 2],    # rank 0: 5 anchors
                        [0, 0, 0], [0, 1, 0], [2, 2, 1], [0, 0, 0]])   # rank 1: 10


def patches(z: torch.Tensor) -> torch.Tensor:
    return z.view(len(z), 3, 2)  # (b, 6) -> (b, L = 3, D = 2)


MASKED = {
    "masked_reconstruction": lambda rows: lambda z1, z2: MaskedReconstruction()(
        patches(z1), patches(z2), MASK[rows]),
    "relative_loss_prediction": lambda rows: lambda z1, z2: RelativeLossPrediction()(
        z1, ERRORS[rows]),
    "patch_choice": lambda rows: lambda z1, z2: PatchChoice()(patches(z1), patches(z2)),
    "corrupted_pixel_l1": lambda rows: lambda z1, z2: CorruptedPixelL1()(
        z1.view(-1, 1, 2, 3), z2.view(-1, 1, 2, 3), PIXEL_MASK[rows]),
    "masked_token_distillation": lambda rows: lambda z1, z2: MaskedTokenDistillation()(
        patches(z1), patches(z2), WEIGHTS[rows]),
    "homologous_contrastive": lambda rows: lambda z1, z2: HomologousContrastive()(
        patches(z1), SOURCES[rows]),
    # Noise2Void's blind spots: 5 against 10 pixels of 2 x 3 single-channel "patches"
    "blind_spot_mse": lambda rows: lambda z1, z2: BlindSpotMSE()(
        z1.view(-1, 1, 2, 3), z2.view(-1, 1, 2, 3), PIXEL_MASK[rows].bool()),
}


def worker(r: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=r, world_size=WORLD)
    try:
        results: dict[str, object] = {"world_size": distributed.world_size(),
                                      "rank": distributed.rank()}

        # Rank r holds rows [10r, 10r + 1, 10r + 2] and weights its gathered copy by (r + 1) *
        # coefficients, so the gradient of each slice must sum both ranks' weights.
        x = (torch.arange(6.0, dtype=torch.float64).reshape(3, 2) + 10 * r).requires_grad_()
        gathered = distributed.gather_with_grad(x)  # (6, 2)
        coefficients = torch.arange(12.0, dtype=torch.float64).reshape(6, 2)
        (gathered * coefficients * (r + 1)).sum().backward()
        results["gathered"], results["gather_grad"] = gathered.detach(), x.grad

        y = torch.full((3,), float(r + 1), dtype=torch.float64, requires_grad=True)
        total = distributed.all_reduce_sum_with_grad(y * (r + 1))
        (total * (r + 1)).sum().backward()
        results["reduced"], results["reduce_grad"] = total.detach(), y.grad

        x1, x2, weight = fixed_batch()
        for name, objective in OBJECTIVES.items():
            rows = rank_rows(r)
            results[name] = step(objective(), x1[rows], x2[rows], weight, ddp=True)
        rows = rank_rows(r)
        results["triplet_edges"] = step(triplet_with_edges(rows), x1[rows], x2[rows], weight,
                                        ddp=True)
        results["latent_prediction"] = latent_prediction_step(x1[rows], x2[rows], weight,
                                                              ddp=True)
        results["mixed_barlow_twins"] = mixed_regularizer_step(x1, x2, weight, r)
        # objectives with inputs or state beyond two projections
        results["supcon_labels"] = step(supcon_with_labels(rows), x1[rows], x2[rows], weight,
                                        ddp=True)
        results["momentum_info_nce"] = step(MomentumInfoNCE(), x1[rows], x2[rows], weight,
                                            ddp=True)
        isogclr, loss = isogclr_with_indices(rows)
        results["isogclr"] = step(isogclr, x1[rows], x2[rows], weight, ddp=True)
        for name, objective in MASKED.items():
            results[name] = step(objective(rows), x1[rows], x2[rows], weight, ddp=True)
        results["isogclr_state"] = loss.state_dict()
        torch.save(results, Path(out) / f"rank{r}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    """Run both ranks once for the whole module; one results dict per rank."""
    tmp = tmp_path_factory.mktemp("two_ranks")
    context = mp.spawn(worker, args=(str(tmp / "store"), str(tmp)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + 120
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("two-rank gloo workers did not finish within 120 s")
    return [torch.load(tmp / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


def test_world_size_and_rank_outside_a_group():
    assert (distributed.world_size(), distributed.rank()) == (1, 0)
    x = torch.randn(3, 2, requires_grad=True)
    assert distributed.gather_with_grad(x) is x
    assert distributed.all_reduce_sum_with_grad(x) is x
    count = torch.tensor(5.0)
    assert distributed.rank_mean(count) is count


def test_world_size_and_rank_inside_a_group(ranks):
    assert [(res["world_size"], res["rank"]) for res in ranks] == [(2, 0), (2, 1)]


def test_gather_concatenates_in_rank_order_and_sums_gradients(ranks):
    rows = torch.arange(6.0, dtype=torch.float64).reshape(3, 2)
    coefficients = torch.arange(12.0, dtype=torch.float64).reshape(6, 2)
    for r, res in enumerate(ranks):
        torch.testing.assert_close(res["gathered"], torch.cat((rows, rows + 10)), atol=0, rtol=0)
        # Rank r's rows enter rank s's loss with weight (s + 1): 1 + 2 = 3 times its slice.
        want = 3 * coefficients[3 * r:3 * r + 3]
        torch.testing.assert_close(res["gather_grad"], want, atol=0, rtol=0)


def test_all_reduce_sums_and_sums_gradients(ranks):
    # sum = 1 * 1 + 2 * 2 = 5 per entry; d(sum_s (s + 1) * sum)/dy_r = (r + 1) * (1 + 2).
    for r, res in enumerate(ranks):
        torch.testing.assert_close(res["reduced"], torch.full((3,), 5.0, dtype=torch.float64))
        torch.testing.assert_close(res["reduce_grad"], torch.full((3,), 3.0 * (r + 1),
                                                                  dtype=torch.float64))


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_objective_under_ddp_equals_the_full_batch(ranks, name):
    full = step(OBJECTIVES[name](), *fixed_batch(), ddp=False)
    local = [res[name] for res in ranks]
    losses = torch.stack([res["loss"] for res in local])
    kind = OBJECTIVES[name].distributed_loss
    if kind == "local_anchors":
        # Each rank averages over its own anchors; the full-batch mean is the mean of those.
        torch.testing.assert_close(losses.mean(), full["loss"], atol=1e-6, rtol=0)
    elif kind == "global":
        # Statistics are global, so every rank computes the full-batch loss itself.
        for loss in losses:
            torch.testing.assert_close(loss, full["loss"], atol=1e-6, rtol=0)
    else:
        pytest.fail(f"{name}.distributed_loss must be 'local_anchors' or 'global', got {kind!r}")
    for res in local:
        torch.testing.assert_close(res["weight_grad"], full["weight_grad"], atol=1e-6, rtol=0)
    # The collectives hand each rank the sum over ranks of the gradient of its rows, i.e.
    # world_size times the full-batch gradient; DDP's average over ranks undoes that factor.
    for r, res in enumerate(local):
        for key in ("x1_grad", "x2_grad"):
            torch.testing.assert_close(res[key] / WORLD, full[key][rank_rows(r)],
                                       atol=1e-6, rtol=0)


def assert_local_anchors(local: list[dict], full: dict, keys=("x1_grad", "x2_grad")) -> None:
    """A "local_anchors" loss under DDP: the ranks' mean loss is the full-batch loss, the
    averaged weight gradient its gradient, and each rank's input gradient world_size times its
    rows of the full-batch one (the gather sums every rank's gradient into the rows it owns)."""
    torch.testing.assert_close(torch.stack([res["loss"] for res in local]).mean(), full["loss"],
                               atol=1e-6, rtol=0)
    for r, res in enumerate(local):
        torch.testing.assert_close(res["weight_grad"], full["weight_grad"], atol=1e-6, rtol=0)
        for key in keys:
            torch.testing.assert_close(res[key] / WORLD, full[key][rank_rows(r)],
                                       atol=1e-6, rtol=0)


def test_triplet_with_edges_under_ddp_equals_the_full_batch(ranks):
    # positives and ignores are (local, global): their columns must index the gathered batch
    full = step(triplet_with_edges(slice(None)), *fixed_batch(), ddp=False)
    assert full["loss"] > 0
    assert_local_anchors([res["triplet_edges"] for res in ranks], full)


def test_supcon_gathers_labels_across_ranks(ranks):
    # positives by label across ranks: sample 0 (rank 0) and 5 (rank 1) share class 0
    full = step(supcon_with_labels(slice(None)), *fixed_batch(), ddp=False)
    assert_local_anchors([res["supcon_labels"] for res in ranks], full)


def test_momentum_info_nce_gathers_keys_across_ranks(ranks):
    # each rank's queries against every rank's keys; the keys (the teacher's) carry no gradient
    full = step(MomentumInfoNCE(), *fixed_batch(), ddp=False)
    assert full["x2_grad"] is None
    assert_local_anchors([res["momentum_info_nce"] for res in ranks], full, keys=("x1_grad",))


def test_isogclr_ranks_equal_the_full_batch_and_share_their_state(ranks):
    # its per-sample moving averages and temperatures, updated from the global batch, end the
    # step the same on every rank and equal to one process's
    isogclr, loss = isogclr_with_indices(slice(None))
    full = step(isogclr, *fixed_batch(), ddp=False)
    assert_local_anchors([res["isogclr"] for res in ranks], full)
    for res in ranks:
        for name, value in loss.state_dict().items():
            torch.testing.assert_close(res["isogclr_state"][name], value, atol=1e-6, rtol=0)


def test_latent_prediction_mse_under_ddp_equals_the_full_batch(ranks):
    # T-JEPA's loss (distributed_loss "local"): each rank averages its own rows' terms, so the
    # mean of the ranks' losses is the full-batch loss and DDP's averaged gradient its gradient
    # (to float32 precision: the loss computes in float32)
    assert LatentPredictionMSE.distributed_loss == "local"
    full = latent_prediction_step(*fixed_batch(), ddp=False)
    local = [res["latent_prediction"] for res in ranks]
    assert full["loss"] > 0
    torch.testing.assert_close(torch.stack([res["loss"] for res in local]).mean(), full["loss"],
                               atol=1e-6, rtol=0)
    for r, res in enumerate(local):
        torch.testing.assert_close(res["weight_grad"], full["weight_grad"], atol=1e-6, rtol=0)
        # a rank's mean is over half the rows: twice the full-batch gradient of its rows
        torch.testing.assert_close(res["x1_grad"] / WORLD, full["x1_grad"][rank_rows(r)],
                                   atol=1e-6, rtol=0)


def test_mixed_barlow_twins_regularizer_under_ddp_equals_the_full_batch(ranks):
    # distributed_loss "global": every rank computes the full-batch value, each rank mixing
    # its own samples (the full batch's permutation is the ranks' block permutation)
    assert MixedBarlowTwinsRegularizer.distributed_loss == "global"
    full = mixed_regularizer_step(*fixed_batch(), r=None)
    assert full["loss"] > 0
    for r, res in enumerate(res["mixed_barlow_twins"] for res in ranks):
        torch.testing.assert_close(res["loss"], full["loss"], atol=1e-6, rtol=0)
        torch.testing.assert_close(res["weight_grad"], full["weight_grad"], atol=1e-6, rtol=0)
        for key in ("x1_grad", "x2_grad"):
            torch.testing.assert_close(res[key] / WORLD, full[key][rank_rows(r)],
                                       atol=1e-6, rtol=0)


def test_masked_objectives_have_unequal_normalizers_across_ranks():
    # what makes the test below able to fail: each rank's own mean would differ from the global
    r0, r1 = rank_rows(0), rank_rows(1)
    assert MASK[r0].sum() != MASK[r1].sum() and PIXEL_MASK[r0].sum() != PIXEL_MASK[r1].sum()
    assert WEIGHTS[r0].sum() != WEIGHTS[r1].sum()
    pairs = [(ERRORS[rows, None, :] != ERRORS[rows, :, None]).sum() for rows in (r0, r1)]
    assert pairs[0] != pairs[1]
    anchors = [((SOURCES[rows, :, None] == SOURCES[rows, None, :]).sum(-1) > 1).sum()
               for rows in (r0, r1)]
    assert anchors[0] != anchors[1]


@pytest.mark.parametrize("name", list(MASKED))
def test_masked_objective_under_ddp_equals_the_full_batch(ranks, name):
    # issue 15's losses, "local": each rank sums its own rows' terms and divides by the ranks'
    # mean normalizer, so the ranks' mean loss and DDP's averaged gradient are the full batch's
    full = step(MASKED[name](slice(None)), *fixed_batch(), ddp=False)
    local = [res[name] for res in ranks]
    assert full["loss"] > 0
    keys = tuple(k for k in ("x1_grad", "x2_grad") if full[k] is not None)
    for res in local:  # an input the loss detaches (a teacher's tokens) stays without gradient
        assert [k for k in ("x1_grad", "x2_grad") if res[k] is not None] == list(keys)
    assert_local_anchors(local, full, keys=keys)


def test_masked_objectives_are_local():
    for objective in (MaskedReconstruction, RelativeLossPrediction, PatchChoice,
                      CorruptedPixelL1, MaskedTokenDistillation, HomologousContrastive,
                      BlindSpotMSE):
        assert objective.distributed_loss == "local"
