import pytest
import torch

from pyg_schnet.nn import GaussianRBF


def test_paper_grid_and_values():
    rbf = GaussianRBF()
    assert rbf.centers.numel() == 301
    torch.testing.assert_close(rbf.centers[1] - rbf.centers[0], torch.tensor(0.1, dtype=torch.float64))
    d = torch.tensor([0.0, 1.234, 29.99], dtype=torch.float64)
    out = rbf(d)
    assert out.shape == (3, 301) and out.dtype == torch.float64
    ref = torch.exp(-10.0 * (d[:, None] - torch.linspace(0, 30, 301, dtype=torch.float64)) ** 2)
    ref[ref < torch.finfo(torch.float64).tiny] = 0
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=0)


def test_no_subnormal_numbers_reach_the_filter_network():
    d = torch.rand(2000) * 10
    out = GaussianRBF()(d)
    tiny = torch.finfo(torch.float32).tiny
    nonzero = out[out != 0]
    assert (nonzero >= tiny).all()
    # the plain formula does produce subnormals for these inputs: the zeroing is doing work
    raw = torch.exp(-10.0 * (d[:, None] - torch.linspace(0, 30, 301)) ** 2)
    assert ((raw > 0) & (raw < tiny)).any()


def test_bad_arguments():
    with pytest.raises(ValueError, match="gamma"):
        GaussianRBF(gamma=0)
    with pytest.raises(ValueError, match="num_gaussians"):
        GaussianRBF(num_gaussians=0)
