"""Physics of the SchNet model in float64: invariances, forces, batching, cutoff continuity."""

import pytest
import torch

from pyg_schnet import SchNet


def small_model(**kw) -> SchNet:
    torch.manual_seed(0)
    cfg = dict(hidden_channels=16, num_filters=16, num_interactions=2, num_gaussians=40, rbf_stop=6.0, gamma=4.0)
    cfg.update(kw)
    model = SchNet(**cfg).double()
    model.set_standardization(mean=-1.5, std=2.0)
    return model.eval()


def random_rotation(gen: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


@pytest.mark.parametrize("cutoff", [None, 3.0])
def test_energy_invariant_forces_equivariant(molecules, cutoff):
    model = SchNet.from_paper(cutoff=cutoff).double().eval()
    model.set_standardization(0.3, 1.7)
    gen = torch.Generator().manual_seed(3)
    z, pos = molecules[1]  # ethanol
    e0, f0 = model.energy_and_forces(z, pos)
    for _ in range(3):
        rot = random_rotation(gen)
        shift = torch.randn(3, generator=gen, dtype=torch.float64) * 5
        perm = torch.randperm(z.numel(), generator=gen)
        e1, f1 = model.energy_and_forces(z[perm], pos[perm] @ rot.T + shift)
        torch.testing.assert_close(e1, e0, rtol=1e-10, atol=0)
        torch.testing.assert_close(f1, f0[perm] @ rot.T, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("cutoff", [None, 2.5])
def test_forces_are_minus_finite_difference_gradient(molecules, cutoff):
    model = small_model(cutoff=cutoff)
    z, pos = molecules[1]
    _, forces = model.energy_and_forces(z, pos)
    h = 1e-5
    fd = torch.zeros_like(pos)
    for i in range(pos.size(0)):
        for k in range(3):
            plus, minus = pos.clone(), pos.clone()
            plus[i, k] += h
            minus[i, k] -= h
            fd[i, k] = -(model(z, plus) - model(z, minus)) / (2 * h)
    torch.testing.assert_close(forces, fd, rtol=0, atol=1e-6)


@pytest.mark.parametrize("cutoff", [None, 2.0])
def test_batch_equals_one_molecule_at_a_time(molecules, cutoff):
    model = small_model(cutoff=cutoff)
    z = torch.cat([m[0] for m in molecules])
    pos = torch.cat([m[1] for m in molecules])
    batch = torch.cat([torch.full((m[0].numel(),), k) for k, m in enumerate(molecules)])
    energy, forces = model.energy_and_forces(z, pos, batch)
    assert energy.shape == (len(molecules),) and forces.shape == pos.shape
    start = 0
    for k, (zk, pk) in enumerate(molecules):
        ek, fk = model.energy_and_forces(zk, pk)
        torch.testing.assert_close(energy[k : k + 1], ek, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(forces[start : start + zk.numel()], fk, rtol=1e-10, atol=1e-12)
        start += zk.numel()


def test_single_atom_molecule_alone_and_in_batch(molecules):
    model = small_model()
    z1, p1 = torch.tensor([8]), torch.tensor([[0.3, -0.2, 1.0]], dtype=torch.float64)
    e1, f1 = model.energy_and_forces(z1, p1)
    # no pairs: the energy is the head applied to the embedding alone
    x = model.representation.embedding(z1)
    torch.testing.assert_close(e1, model.head.atom_energies(x, z1))
    assert torch.equal(f1, torch.zeros_like(p1))
    zw, pw = molecules[0]
    z = torch.cat([zw, z1, zw])
    pos = torch.cat([pw, p1, pw])
    batch = torch.tensor([0] * zw.numel() + [1] + [2] * zw.numel())
    e, f = model.energy_and_forces(z, pos, batch)
    torch.testing.assert_close(e[1:2], e1)
    assert torch.equal(f[zw.numel()], torch.zeros(3, dtype=torch.float64))


def test_energy_continuous_when_pair_crosses_cutoff():
    rc = 2.0
    model = small_model(cutoff=rc)
    z = torch.tensor([6, 8])
    steps = torch.arange(-20, 21, dtype=torch.float64) * 1e-6

    def scan(m):
        energies = []
        for s in steps:
            pos = torch.tensor([[0.0, 0.0, 0.0], [rc + float(s), 0.0, 0.0]], dtype=torch.float64)
            with torch.no_grad():
                energies.append(m(z, pos))
        return torch.cat(energies)

    jumps = scan(model).diff().abs()
    assert float(jumps.max()) < 1e-8
    # the same scan without the smooth cutoff (hard radius) jumps: the test can see a discontinuity
    for block in model.representation.interactions:
        block.conv.cutoff = None
    assert float(scan(model).diff().abs().max()) > 1e-6


def test_paper_preset_keeps_every_pair():
    model = SchNet.from_paper()
    assert model.config["cutoff"] is None and model.config["num_gaussians"] == 301
    assert len(model.representation.interactions) == 3
    blocks = model.representation.interactions
    assert blocks[0].in2filter.weight.data_ptr() != blocks[1].in2filter.weight.data_ptr()  # no weight sharing
    # atoms 25 Angstrom apart still interact
    z = torch.tensor([6, 6])
    near = model(z, torch.tensor([[0.0, 0, 0], [25.0, 0, 0]]))
    lone = model(z[:1], torch.zeros(1, 3)) * 2
    assert not torch.allclose(near, lone)


def test_force_loss_decreases_with_double_backward(molecules):
    model = small_model().train()
    z, pos = molecules[1]
    target = torch.randn(pos.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        _, forces = model.energy_and_forces(z, pos)
        loss = ((forces - target) ** 2).mean()
        loss.backward()
        assert model.representation.interactions[0].conv.filter_network[0].weight.grad.abs().sum() > 0
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0]


def test_standardization_travels_with_state_dict():
    model = small_model()
    ref = torch.zeros(100)
    ref[1], ref[6] = -0.5, -37.8
    model.set_standardization(-2.0, 3.0, atomref=ref)
    clone = SchNet(**model.config).double()
    clone.load_state_dict(model.state_dict())
    assert float(clone.mean) == -2.0 and float(clone.std) == 3.0
    assert torch.equal(clone.atomref, model.atomref)
    z, pos = torch.tensor([6, 1]), torch.tensor([[0.0, 0, 0], [1.1, 0, 0]], dtype=torch.float64)
    torch.testing.assert_close(clone.eval()(z, pos), model(z, pos))
    # the atomref enters per atom, exactly
    shifted = small_model()
    shifted.load_state_dict(model.state_dict())
    shifted.head.atomref[6] += 1.0
    torch.testing.assert_close(shifted(z, pos) - model(z, pos), torch.ones(1, dtype=torch.float64))
    with pytest.raises(ValueError, match="std"):
        model.set_standardization(0.0, 0.0)
