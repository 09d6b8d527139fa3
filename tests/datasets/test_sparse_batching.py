"""QM9 molecules of different sizes batch sparsely: batched SchNet energies equal per-molecule ones."""

from __future__ import annotations

import torch
from torch_geometric.loader import DataLoader

from pyg_schnet import SchNet
from pyg_schnet.datasets import QM9


def test_batched_energies_equal_per_molecule_energies(qm9_builder, tmp_path):
    ds = QM9(qm9_builder.write_root(tmp_path / "qm9", exclude=()))
    sizes = {int(d.z.numel()) for d in ds}
    assert len(sizes) >= 5  # 3 to 11 atoms

    torch.manual_seed(0)
    model = SchNet.from_paper().double().eval()
    batched, single = [], []
    with torch.no_grad():
        for batch in DataLoader(ds, batch_size=7, shuffle=False):
            assert batch.y.shape == (batch.num_graphs, 15) and batch.idx.shape == (batch.num_graphs,)
            batched.append(model(batch.z, batch.pos.double(), batch.batch))
        for data in ds:
            single.append(model(data.z, data.pos.double()))
    batched = torch.cat(batched)
    single = torch.cat([e.reshape(1) for e in single])
    assert batched.shape == (len(ds),) and batched.dtype == torch.float64
    torch.testing.assert_close(batched, single, rtol=0, atol=1e-9)
    assert single.std() > 0  # molecules differ, so equality is not trivial
