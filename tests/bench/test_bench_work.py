"""The matrix-product analysis: FLOPs counted through autograd's double backward, and its bounds."""

from __future__ import annotations

import pytest
import torch

from harness.work import MatmulFlops, bounds, matmul_share


def test_counts_two_m_n_k_per_product_and_ignores_elementwise_work():
    a, b = torch.randn(7, 5), torch.randn(5, 3)
    counter = MatmulFlops()
    with counter:
        c = torch.mm(a, b)
        torch.addmm(torch.zeros(3), a, b)
        (c * 2).exp().sum()
    assert counter.flops == 2 * (2 * 7 * 5 * 3)


def test_counts_the_products_of_the_double_backward():
    """y = sum(tanh(x W)); the gradient in x needs one more product, its backward to W two more."""
    torch.manual_seed(0)
    x = torch.randn(6, 4, requires_grad=True)
    w = torch.randn(4, 3, requires_grad=True)
    forward = MatmulFlops()
    with forward:
        y = torch.tanh(x @ w).sum()
    (gx,) = torch.autograd.grad(y, x, create_graph=True)
    counter = MatmulFlops()
    with counter:
        (gx.square().sum()).backward()
    assert forward.flops == 2 * 6 * 4 * 3
    assert counter.flops >= 2 * forward.flops


def test_matmul_share_of_a_product_only_step_is_high_and_of_an_elementwise_step_zero():
    a = torch.randn(256, 256)
    assert matmul_share(lambda: a @ a) > 0.9
    assert matmul_share(lambda: (a * 2).exp()) == 0.0


def test_bounds_divide_the_peer_time_by_our_product_time():
    rows = {
        "ours_sparse": dict(median_ms=10.0, matmul_ms=4.0, gflop=1.0),
        "pyg": dict(median_ms=30.0, matmul_ms=20.0, gflop=3.0),
    }
    b = bounds(rows, "ours_sparse", ["pyg", "absent"])
    assert set(b) == {"pyg"}
    assert b["pyg"] == pytest.approx(dict(speedup=3.0, bound=7.5, flop_ratio=3.0))
