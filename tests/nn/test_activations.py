import math

import torch

from pyg_schnet.nn import ShiftedSoftplus, shifted_softplus


def test_ssp_is_exactly_zero_at_zero():
    for dtype in (torch.float32, torch.float64):
        assert shifted_softplus(torch.zeros(4, dtype=dtype)).eq(0).all()


def test_ssp_matches_definition_and_is_finite_at_extremes():
    x = torch.linspace(-30, 30, 601, dtype=torch.float64)
    ref = torch.log(0.5 * torch.exp(x) + 0.5)
    torch.testing.assert_close(shifted_softplus(x), ref, rtol=1e-13, atol=1e-13)
    big = shifted_softplus(torch.tensor([-500.0, 500.0], dtype=torch.float64))
    assert torch.isfinite(big).all()
    torch.testing.assert_close(big, torch.tensor([-math.log(2), 500 - math.log(2)], dtype=torch.float64))
    assert torch.isfinite(ShiftedSoftplus()(torch.tensor([-500.0, 500.0]))).all()


def test_ssp_derivative_is_sigmoid_including_threshold_region():
    x = torch.tensor([-5.0, 0.0, 3.0, 39.9, 40.1], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(shifted_softplus(x).sum(), x)
    torch.testing.assert_close(g, torch.sigmoid(x.detach()), rtol=0, atol=1e-15)
