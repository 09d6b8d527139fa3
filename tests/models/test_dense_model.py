"""The dense (padded) forward of SchNet against the sparse one: same numbers, same gradients."""

from typing import List, Tuple

import pytest
import torch
from torch_geometric.data import Batch, Data

from pyg_schnet import SchNet
from pyg_schnet.batching import to_dense, to_sparse


def small_model(dtype=torch.float64, **kw) -> SchNet:
    torch.manual_seed(0)
    cfg = dict(hidden_channels=16, num_filters=16, num_interactions=2, num_gaussians=40, rbf_stop=6.0, gamma=4.0)
    cfg.update(kw)
    model = SchNet(**cfg).to(dtype)
    ref = torch.zeros(100)
    ref[1], ref[6], ref[8] = -0.6, -38.0, -75.0
    model.set_standardization(mean=-1.5, std=2.0, atomref=ref)
    return model.eval()


def make_batch(molecules: List[Tuple[torch.Tensor, torch.Tensor]], dtype=torch.float64) -> Batch:
    # a lone atom as well: a molecule without pairs
    lone = (torch.tensor([8]), torch.tensor([[0.3, -0.2, 1.0]], dtype=torch.float64))
    data = [Data(z=z, pos=p.to(dtype)) for z, p in [molecules[1], lone, *molecules[:1], *molecules[2:]]]
    return Batch.from_data_list(data)


@pytest.mark.parametrize("cutoff", [None, 2.0])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_sparse_and_dense_energies_and_forces_agree(molecules, cutoff, dtype, tol):
    model = small_model(dtype, cutoff=cutoff)
    batch = make_batch(molecules, dtype)
    energy, forces = model.energy_and_forces(batch.z, batch.pos, batch.batch)
    dense = to_dense(batch)
    assert dense.z.shape == (5, 12)  # benzene has 12 atoms: the others are padded
    energy_d, forces_d = model.energy_and_forces_dense(dense.z, dense.pos, dense.mask)
    assert energy_d.shape == (5,) and forces_d.shape == (5, 12, 3)
    assert energy_d.dtype == dtype and forces_d.dtype == dtype
    scale = float(energy.abs().max())  # energies are ~ -200 with the atomrefs: compare relative to that
    torch.testing.assert_close(energy_d, energy, rtol=tol, atol=tol * scale)
    torch.testing.assert_close(to_sparse(forces_d, dense.mask), forces, rtol=tol, atol=tol)
    assert torch.equal(forces_d[~dense.mask], torch.zeros_like(forces_d[~dense.mask]))
    torch.testing.assert_close(model.forward_dense(dense.z, dense.pos, dense.mask), energy_d, rtol=0, atol=0)


def test_cutoff_drops_the_same_pairs(molecules):
    # with a cutoff shorter than some bonds, far pairs must be excluded in both paths alike;
    # without them the dense energy would differ (checked by switching the cutoff off in the dense path)
    model = small_model(cutoff=1.2)
    batch = make_batch(molecules)
    dense = to_dense(batch)
    sparse = model(batch.z, batch.pos, batch.batch)
    torch.testing.assert_close(model.forward_dense(dense.z, dense.pos, dense.mask), sparse, rtol=1e-10, atol=1e-9)
    uncut = small_model(cutoff=None)
    assert not torch.allclose(uncut.forward_dense(dense.z, dense.pos, dense.mask), sparse, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cutoff", [None, 2.0])
def test_loss_gradients_agree_with_double_backward(molecules, cutoff):
    model = small_model(cutoff=cutoff).train()
    batch = make_batch(molecules)
    dense = to_dense(batch)
    gen = torch.Generator().manual_seed(1)
    target_e = torch.randn(batch.num_graphs, generator=gen, dtype=torch.float64)
    target_f = torch.randn(batch.pos.shape, generator=gen, dtype=torch.float64)
    params = [p for p in model.parameters()]

    energy, forces = model.energy_and_forces(batch.z, batch.pos, batch.batch)
    loss = ((energy - target_e) ** 2).mean() + ((forces - target_f) ** 2).mean()
    grads = torch.autograd.grad(loss, params, allow_unused=True)

    energy_d, forces_d = model.energy_and_forces_dense(dense.z, dense.pos, dense.mask)
    assert forces_d.requires_grad  # create_graph in training mode
    loss_d = ((energy_d - target_e) ** 2).mean() + ((to_sparse(forces_d, dense.mask) - target_f) ** 2).mean()
    grads_d = torch.autograd.grad(loss_d, params, allow_unused=True)

    torch.testing.assert_close(loss_d, loss, rtol=1e-10, atol=0)
    checked = 0
    for (name, _), g, g_d in zip(model.named_parameters(), grads, grads_d):
        if g is None:
            assert g_d is None or torch.count_nonzero(g_d) == 0, name
            continue
        torch.testing.assert_close(g_d, g, rtol=1e-9, atol=1e-11, msg=lambda m, n=name: f"{n}: {m}")
        checked += int(torch.count_nonzero(g) > 0)
    # the force loss reaches the filter networks through the double backward
    assert checked >= 10


def test_padding_never_changes_a_result(molecules):
    model = small_model(cutoff=2.5).train()
    batch = make_batch(molecules)
    clean = to_dense(batch)
    # garbage in every padding slot, and four more padding columns
    z = torch.cat([clean.z, torch.zeros(5, 4, dtype=torch.long)], dim=1)
    pos = torch.cat([clean.pos, torch.zeros(5, 4, 3, dtype=torch.float64)], dim=1)
    mask = torch.cat([clean.mask, torch.zeros(5, 4, dtype=torch.bool)], dim=1)
    pad = ~mask
    z[pad] = torch.tensor([0, 500, -7, 6] * 100)[: int(pad.sum())]
    junk = torch.randn(int(pad.sum()), 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    junk[::3] = float("nan")
    junk[1::3] = clean.pos[0, 0]  # on top of a real atom
    pos[pad] = junk
    params = list(model.parameters())

    def run(z, pos, mask):
        pos = pos.clone().requires_grad_(True)
        energy, forces = model.energy_and_forces_dense(z, pos, mask)
        loss = energy.square().sum() + forces.square().sum()
        grads = torch.autograd.grad(loss, [pos, *params], allow_unused=True)
        return energy, forces, grads

    e0, f0, g0 = run(clean.z, clean.pos, clean.mask)
    e1, f1, g1 = run(z, pos, mask)
    torch.testing.assert_close(e1, e0, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(f1[:, :12], f0, rtol=1e-12, atol=1e-12)
    assert torch.equal(f1[pad], torch.zeros_like(f1[pad]))
    # gradients of a loss w.r.t. positions (padding: exactly zero) and to every weight
    assert torch.equal(g1[0][pad], torch.zeros_like(g1[0][pad]))
    torch.testing.assert_close(g1[0][:, :12], g0[0], rtol=1e-12, atol=1e-12)
    for a, b in zip(g1[1:], g0[1:]):
        if b is not None:
            assert torch.isfinite(a).all()
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_empty_row_has_zero_energy(molecules):
    model = small_model()
    z, pos = molecules[0]
    dense_z = torch.stack([z, torch.zeros_like(z)])
    dense_pos = torch.stack([pos, pos])
    mask = torch.tensor([[True] * z.numel(), [False] * z.numel()])
    energy, forces = model.energy_and_forces_dense(dense_z, dense_pos, mask)
    torch.testing.assert_close(energy[0:1], model(z, pos), rtol=1e-12, atol=0)
    assert float(energy[1]) == 0.0 and torch.equal(forces[1], torch.zeros_like(forces[1]))


def test_eval_results_are_detached_and_train_results_are_not(molecules):
    model = small_model()
    dense = to_dense(make_batch(molecules))
    energy, forces = model.energy_and_forces_dense(dense.z, dense.pos, dense.mask)
    assert not energy.requires_grad and not forces.requires_grad
    assert not dense.pos.requires_grad  # the caller's tensor is not modified
    energy, forces = model.train().energy_and_forces_dense(dense.z, dense.pos, dense.mask)
    assert energy.requires_grad and forces.requires_grad


def water_dense():
    z = torch.tensor([[8, 1, 1, 0]])
    pos = torch.tensor([[[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0], [0, 0, 0]]])
    mask = torch.tensor([[True, True, True, False]])
    return z, pos, mask


def test_bad_input_errors():
    model = SchNet(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=10).eval()
    z, pos, mask = water_dense()
    model.forward_dense(z, pos, mask)  # valid as given
    with pytest.raises(ValueError, match=r"must agree on \[num_molecules, max_atoms\]"):
        model.forward_dense(z, pos[:, :3], mask)
    with pytest.raises(ValueError, match="mask must be a bool"):
        model.forward_dense(z, pos, mask.long())
    with pytest.raises(ValueError, match="integer"):
        model.forward_dense(z.float(), pos, mask)
    with pytest.raises(ValueError, match=r"pos must have shape \[num_molecules, max_atoms, 3\]"):
        model.forward_dense(z, pos[..., :2], mask)
    with pytest.raises(ValueError, match=r"z must be a \[num_molecules, max_atoms\]"):
        model.forward_dense(z[0], pos, mask)
    for bad in (0, 100, -3):
        z_bad = z.clone()
        z_bad[0, 1] = bad
        with pytest.raises(ValueError, match=rf"molecule 0, atom slot 1 has atomic number {bad}, outside 1..99"):
            model.forward_dense(z_bad, pos, mask)
    pos_bad = pos.clone()
    pos_bad[0, 2, 1] = float("nan")
    with pytest.raises(ValueError, match="molecule 0, atom slot 2 has a non-finite position"):
        model.energy_and_forces_dense(z, pos_bad, mask)
    pos_bad = pos.clone()
    pos_bad[0, 2] = pos_bad[0, 0]
    with pytest.raises(ValueError, match="slots 0 and 2 of molecule 0 are at the same position"):
        model.forward_dense(z, pos_bad, mask)


def test_lone_atoms_and_empty_batches():
    model = small_model()
    z = torch.tensor([[6], [8]])
    pos = torch.tensor([[[0.3, -0.2, 1.0]], [[5.0, 1.0, 0.0]]], dtype=torch.float64)
    mask = torch.ones(2, 1, dtype=torch.bool)
    energy, forces = model.energy_and_forces_dense(z, pos, mask)
    torch.testing.assert_close(energy, model(z.flatten(), pos.view(-1, 3), torch.tensor([0, 1])), rtol=1e-12, atol=0)
    assert torch.equal(forces, torch.zeros_like(forces))
    for b, n in [(0, 0), (2, 0), (0, 3)]:
        energy, forces = model.energy_and_forces_dense(
            torch.zeros(b, n, dtype=torch.long),
            torch.zeros(b, n, 3, dtype=torch.float64),
            torch.zeros(b, n, dtype=torch.bool),
        )
        assert energy.shape == (b,) and forces.shape == (b, n, 3)
        assert not bool(energy.any())
