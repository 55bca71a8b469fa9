"""Properties every registered two-view objective must have; a new objective is covered by
registering it in OBJECTIVES."""

import pytest
import torch

from selfsup.objectives import OBJECTIVES


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_bf16_inputs_give_a_float32_loss_close_to_float32(name):
    gen = torch.Generator().manual_seed(2)
    z1, z2 = torch.randn(64, 8, generator=gen), torch.randn(64, 8, generator=gen)
    z2 = z1 + 0.5 * z2
    loss = OBJECTIVES[name]()
    low = loss(z1.bfloat16(), z2.bfloat16())
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, loss(z1, z2), atol=2e-2, rtol=1e-2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = loss(z1, z2)
    assert under_autocast.dtype == torch.float32
    torch.testing.assert_close(under_autocast, loss(z1, z2), atol=0, rtol=0)


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
@pytest.mark.parametrize(
    ("z1", "z2"),
    [
        (torch.zeros(4, 3), torch.zeros(4, 2)),
        (torch.zeros(4, 3), torch.zeros(5, 3)),
        (torch.zeros(4), torch.zeros(4)),
        (torch.zeros(2, 4, 3), torch.zeros(2, 4, 3)),
        (torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, 3, dtype=torch.long)),
    ],
)
def test_rejects_bad_shapes_and_dtypes(name, z1, z2):
    with pytest.raises(ValueError, match="projection"):
        OBJECTIVES[name]()(z1, z2)
