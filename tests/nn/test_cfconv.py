import torch
from torch_geometric.nn.conv import MessagePassing

from pyg_schnet.graph import edge_distances, full_graph
from pyg_schnet.nn import CFConv, GaussianRBF


def _inputs(dtype=torch.float64):
    torch.manual_seed(0)
    pos = torch.randn(5, 3, dtype=dtype)
    batch = torch.tensor([0, 0, 0, 1, 1])
    edge_index = full_graph(batch)
    d = edge_distances(pos, edge_index)
    return torch.randn(5, 8, dtype=dtype), edge_index, d, GaussianRBF(0.0, 5.0, 20, 10.0)(d)


def test_is_message_passing_and_matches_explicit_sum():
    conv = CFConv(8, 20).double()
    assert isinstance(conv, MessagePassing)
    x, edge_index, d, attr = _inputs()
    out = conv(x, edge_index, d, attr)
    assert out.shape == (5, 8) and out.dtype == torch.float64
    W = conv.filter_network(attr)
    ref = torch.zeros_like(x)
    for e in range(edge_index.size(1)):
        j, i = edge_index[:, e]
        ref[i] += x[j] * W[e]
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


def test_cutoff_scales_filters():
    conv = CFConv(8, 20, cutoff=2.0).double()
    x, edge_index, d, attr = _inputs()
    W = conv.filters(d, attr)
    fc = 0.5 * (torch.cos(torch.pi * d / 2.0) + 1) * (d < 2.0)
    torch.testing.assert_close(W, conv.filter_network(attr) * fc[:, None])


def test_reset_parameters_redraws_weights_and_float32_runs():
    conv = CFConv(8, 20)
    before = [p.clone() for p in conv.parameters()]
    conv.reset_parameters()
    after = list(conv.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after) if a.dim() > 1)
    assert all(torch.equal(b, torch.zeros_like(b)) for b in after if b.dim() == 1)  # zero biases
    x, edge_index, d, attr = _inputs(torch.float32)
    assert conv(x, edge_index, d, attr).dtype == torch.float32


def test_atom_without_neighbours_gets_zero_message():
    conv = CFConv(4, 6)
    x = torch.randn(3, 4)
    edge_index = torch.tensor([[0], [1]])
    d = torch.tensor([1.0])
    out = conv(x, edge_index, d, GaussianRBF(0, 5, 6)(d))
    assert out.shape == (3, 4)
    assert torch.equal(out[0], torch.zeros(4)) and torch.equal(out[2], torch.zeros(4))


def test_mirrored_filters_equal_per_edge_filters():
    from pyg_schnet.graph import full_pairs, mirror

    conv = CFConv(8, 20, cutoff=3.0).double()
    torch.manual_seed(2)
    pos = torch.randn(6, 3, dtype=torch.float64)
    batch = torch.tensor([0, 0, 0, 0, 1, 1])
    x = torch.randn(6, 8, dtype=torch.float64)
    rbf = GaussianRBF(0.0, 5.0, 20, 10.0)
    pairs = full_pairs(batch)
    d_pairs = edge_distances(pos, pairs)
    edge_index = mirror(pairs)
    d_edges = edge_distances(pos, edge_index)
    once = conv(x, edge_index, d_pairs, rbf(d_pairs), mirrored=True)
    every = conv(x, edge_index, d_edges, rbf(d_edges))
    torch.testing.assert_close(once, every, rtol=1e-13, atol=1e-13)
