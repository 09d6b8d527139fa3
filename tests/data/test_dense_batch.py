"""Dense (padded) batches from PyG batches, their inverse, and the sparse/dense choice."""

import pytest
import torch
from torch_geometric.data import Batch, Data

from pyg_schnet import SchNet
from pyg_schnet.batching import auto, choose_batching, measure_batching, to_dense, to_dense_atoms, to_sparse


def batch_of(molecules) -> Batch:
    return Batch.from_data_list([Data(z=z, pos=p) for z, p in molecules])


def test_layout_and_inverse(molecules):
    batch = batch_of(molecules)  # water, ethanol, benzene, methane: 3, 9, 12, 5 atoms
    dense = to_dense(batch)
    assert dense.z.shape == (4, 12) and dense.pos.shape == (4, 12, 3) and dense.mask.shape == (4, 12)
    assert dense.z.dtype == torch.long and dense.pos.dtype == torch.float64 and dense.mask.dtype == torch.bool
    assert dense.mask.sum(dim=1).tolist() == [3, 9, 12, 5]
    for b, (z, pos) in enumerate(molecules):
        n = z.numel()
        assert torch.equal(dense.z[b, :n], z) and torch.equal(dense.pos[b, :n], pos)
        assert bool(dense.mask[b, :n].all()) and not bool(dense.mask[b, n:].any())
        assert bool((dense.z[b, n:] == 0).all()) and bool((dense.pos[b, n:] == 0).all())
    assert torch.equal(to_sparse(dense.z, dense.mask), batch.z)
    assert torch.equal(to_sparse(dense.pos, dense.mask), batch.pos)


def test_single_molecule_wider_rows_and_empty_molecules(molecules):
    z, pos = molecules[1]
    dense = to_dense(Data(z=z, pos=pos), max_num_atoms=11)
    assert dense.z.shape == (1, 11) and int(dense.mask.sum()) == 9
    dense = to_dense_atoms(z, pos, torch.zeros_like(z), batch_size=3)
    assert dense.mask.sum(dim=1).tolist() == [9, 0, 0]


def test_bad_batches_raise():
    z = torch.tensor([8, 1, 1, 6])
    pos = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"atom 2 \(molecule 0\) has atomic number 0; .*0 marks padding"):
        to_dense_atoms(torch.tensor([8, 1, 0, 6]), pos, torch.tensor([0, 0, 0, 1]))
    with pytest.raises(ValueError, match="atom 3 has molecule 0 after molecule 1"):
        to_dense_atoms(z, pos, torch.tensor([0, 0, 1, 0]))
    with pytest.raises(ValueError, match="molecule 0 has 3 atoms, more than max_num_atoms=2"):
        to_dense_atoms(z, pos, torch.tensor([0, 0, 0, 1]), max_num_atoms=2)
    with pytest.raises(ValueError, match="z has 3 atoms but pos has 4"):
        to_dense_atoms(z[:3], pos, None)
    with pytest.raises(ValueError, match="needs the field 'pos'"):
        to_dense(Data(z=z))
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        to_sparse(pos.view(2, 2, 3), torch.ones(2, 2))


@pytest.fixture
def tiny_setup(molecules):
    torch.manual_seed(0)
    model = SchNet(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=10, rbf_stop=5.0).double()
    batches = [batch_of(molecules[:2]), batch_of(molecules[2:])]
    return model.eval(), batches


@pytest.mark.parametrize("with_forces", [False, True])
def test_choose_batching_measures_without_side_effects(tiny_setup, with_forces):
    model, batches = tiny_setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert choose_batching(model, iter(batches), with_forces, num_batches=2, repeats=1) in ("sparse", "dense")
    assert not model.training  # mode restored
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in model.parameters())
    timings = measure_batching(model, batches, with_forces, num_batches=1, repeats=1)
    assert set(timings) == {"sparse", "dense"} and all(t > 0 for t in timings.values())


@pytest.mark.parametrize(
    "costs,expected", [({"sparse": 1.0, "dense": 5.0}, "sparse"), ({"sparse": 3.0, "dense": 0.5}, "dense")]
)
def test_choose_batching_picks_the_faster_path(tiny_setup, monkeypatch, costs, expected):
    model, batches = tiny_setup
    clock = [0.0]
    real_step = auto._step

    def step(model, data, path, with_forces):
        real_step(model, data, path, with_forces)  # still runs: both paths must work on the data
        clock[0] += costs[path]

    monkeypatch.setattr(auto, "_step", step)
    monkeypatch.setattr(auto, "_clock", lambda: clock[0])
    timings = measure_batching(model, batches, with_forces=True, num_batches=2, repeats=2)
    # 2 batches of 2 molecules: per-molecule seconds are the fake cost of one step / 2
    assert timings == pytest.approx({p: c / 2 for p, c in costs.items()})
    assert choose_batching(model, batches, with_forces=True, num_batches=2, repeats=2) == expected


def test_choose_batching_needs_a_batch(tiny_setup):
    model, _ = tiny_setup
    with pytest.raises(ValueError, match="at least one batch"):
        choose_batching(model, [], with_forces=False)
