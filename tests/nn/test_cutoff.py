import math

import pytest
import torch

from pyg_schnet.nn import CosineCutoff


def test_values_and_smooth_zero_at_radius():
    fc = CosineCutoff(5.0)
    d = torch.tensor([0.0, 2.5, 5.0, 7.0], dtype=torch.float64, requires_grad=True)
    out = fc(d)
    torch.testing.assert_close(out.detach(), torch.tensor([1.0, 0.5, 0.0, 0.0], dtype=torch.float64))
    (g,) = torch.autograd.grad(out.sum(), d)
    torch.testing.assert_close(g[1], torch.tensor(-0.5 * math.pi / 5.0, dtype=torch.float64))
    assert abs(float(g[2])) < 1e-15  # slope vanishes at the radius


def test_rejects_non_positive_radius():
    with pytest.raises(ValueError, match="cutoff"):
        CosineCutoff(0.0)
