"""Compose SchNet's building blocks with stock PyG layers in a model of your own.

A small energy model: SchNet's Gaussian expansion and two interaction blocks, then a stock PyG
``GraphConv`` on the same radius graph, then ``global_add_pool``. Trains a few steps on random
targets to show the pieces fit together (run: ``python docs/examples/custom_model.py``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.nn import GraphConv, global_add_pool

from pyg_schnet.graph import build_graph, edge_distances
from pyg_schnet.nn import GaussianRBF, InteractionBlock, ShiftedSoftplus


class HybridEnergyModel(nn.Module):
    def __init__(self, hidden: int = 32, cutoff: float = 5.0) -> None:
        super().__init__()
        self.cutoff = cutoff
        self.embedding = nn.Embedding(10, hidden)
        self.rbf = GaussianRBF(0.0, cutoff, 50, 10.0)
        self.blocks = nn.ModuleList(InteractionBlock(hidden, 50, hidden, cutoff) for _ in range(2))
        self.graph_conv = GraphConv(hidden, hidden)
        self.readout = nn.Sequential(nn.Linear(hidden, hidden), ShiftedSoftplus(), nn.Linear(hidden, 1))

    def forward(self, z: Tensor, pos: Tensor, batch: Tensor) -> Tensor:
        edge_index = build_graph(pos, batch, self.cutoff)
        d = edge_distances(pos, edge_index)
        x = self.embedding(z)
        for block in self.blocks:
            x = block(x, edge_index, d, self.rbf(d))
        x = self.graph_conv(x, edge_index)
        return global_add_pool(self.readout(x), batch).squeeze(-1)


def make_data(num: int = 16, seed: int = 0) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    graphs = []
    for _ in range(num):
        n = int(torch.randint(3, 8, (1,), generator=gen))
        pos = torch.randn(n, 3, generator=gen) * 1.5
        z = torch.randint(1, 9, (n,), generator=gen)
        graphs.append(Data(z=z, pos=pos, y=torch.randn(1, generator=gen)))
    return Batch.from_data_list(graphs)


def train(steps: int = 20, seed: int = 0) -> list[float]:
    torch.manual_seed(seed)
    data = make_data(seed=seed)
    model = HybridEnergyModel()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = ((model(data.z, data.pos, data.batch) - data.y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())  # float(loss) warns: loss requires grad
    return losses


if __name__ == "__main__":
    losses = train()
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f} after {len(losses)} steps")
