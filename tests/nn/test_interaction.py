import torch

from pyg_schnet.graph import edge_distances, full_graph
from pyg_schnet.nn import GaussianRBF, InteractionBlock, shifted_softplus


def test_block_is_residual_of_paper_layers():
    torch.manual_seed(1)
    block = InteractionBlock(16, 12, 8).double()
    pos = torch.randn(4, 3, dtype=torch.float64)
    batch = torch.zeros(4, dtype=torch.long)
    edge_index = full_graph(batch)
    d = edge_distances(pos, edge_index)
    attr = GaussianRBF(0, 5, 12)(d)
    x = torch.randn(4, 16, dtype=torch.float64)
    out = block(x, edge_index, d, attr)
    assert out.shape == (4, 16)
    h = block.conv(block.in2filter(x), edge_index, d, attr)
    v = block.out(shifted_softplus(block.filter2out(h)))
    torch.testing.assert_close(out, x + v)


def test_reset_parameters_touches_every_layer():
    block = InteractionBlock(8, 10, 6)
    with torch.no_grad():
        for p in block.parameters():
            p.fill_(0.123)
    block.reset_parameters()
    for name, p in block.named_parameters():
        assert not torch.all(p == 0.123), name
