"""Periodic structures: neighbour pairs against ASE and brute force, physics in float64, batching, errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch, Data

from pyg_schnet import SchNet
from pyg_schnet.graph import build_periodic_pairs, edge_distances, mirror, periodic

CUTOFF = 4.0


@pytest.fixture(scope="module")
def model() -> SchNet:
    torch.manual_seed(0)
    return (
        SchNet(
            hidden_channels=16,
            num_filters=16,
            num_interactions=2,
            num_gaussians=16,
            rbf_stop=CUTOFF,
            gamma=2.0,
            cutoff=CUTOFF,
            max_z=10,
        )
        .double()
        .eval()
    )


def random_structure(seed: int, num_atoms: int, short: bool = False):
    """Random triclinic cell (rows), positions (some outside the cell), atomic numbers."""
    rng = np.random.default_rng(seed)
    lengths = rng.uniform(1.6, 3.0, 3) if short else rng.uniform(3.5, 6.0, 3)
    cell = np.diag(lengths) + rng.uniform(-0.8, 0.8, (3, 3)) * (1 - np.eye(3))
    frac = rng.uniform(-0.3, 1.3, (num_atoms, 3))
    z = rng.integers(1, 9, num_atoms)
    return (
        torch.as_tensor(z, dtype=torch.long),
        torch.as_tensor(frac @ cell, dtype=torch.float64),
        torch.as_tensor(cell, dtype=torch.float64),
    )


def directed_set(pairs: torch.Tensor, shifts: torch.Tensor):
    edges = mirror(pairs).T.tolist()
    s = torch.cat([shifts, -shifts]).round().long().tolist()
    out = [(i, j, *sh) for (i, j), sh in zip(edges, s)]
    assert len(out) == len(set(out)), "a directed pair appears twice"
    return set(out)


def brute_force(pos: np.ndarray, cell: np.ndarray, pbc, cutoff: float):
    """Every (i, j, S) within the cutoff by looping over enough images (independent of any library)."""
    heights = 1.0 / np.linalg.norm(np.linalg.inv(cell).T, axis=1)  # distances between lattice planes
    frac = pos @ np.linalg.inv(cell)
    spread = frac.max(0) - frac.min(0)
    reach = [int(np.ceil(cutoff / h + s)) + 1 if p else 0 for h, s, p in zip(heights, spread, pbc)]
    found = set()
    for shift in itertools.product(*(range(-r, r + 1) for r in reach)):
        d = pos[None, :, :] + np.asarray(shift) @ cell - pos[:, None, :]
        i, j = np.nonzero(np.linalg.norm(d, axis=-1) < cutoff)
        found.update((a, b, *shift) for a, b in zip(i.tolist(), j.tolist()) if a != b or any(shift))
    return found


@pytest.mark.parametrize("use_vesin", [True, False], ids=["vesin", "ase"])
@pytest.mark.parametrize("seed", range(6))
def test_pairs_equal_ase_and_brute_force(seed, use_vesin, monkeypatch):
    from ase.neighborlist import primitive_neighbor_list

    if use_vesin and not periodic.USE_VESIN:
        pytest.skip("vesin is not installed")
    monkeypatch.setattr(periodic, "USE_VESIN", use_vesin)

    short = seed % 2 == 1
    z, pos, cell = random_structure(seed, num_atoms=7 if short else 12, short=short)
    pbc = [True, True, True] if seed < 4 else [True, False, True]
    pairs, shifts = build_periodic_pairs(
        pos, torch.zeros(len(z), dtype=torch.long), cell[None], torch.tensor([pbc]), CUTOFF
    )
    ours = directed_set(pairs, shifts)
    i, j, S, d = primitive_neighbor_list("ijSd", pbc, cell.numpy(), pos.numpy(), CUTOFF)
    assert ours == {(a, b, *s) for a, b, s in zip(i.tolist(), j.tolist(), S.tolist())}
    assert ours == brute_force(pos.numpy(), cell.numpy(), pbc, CUTOFF)
    if short:  # several images of one neighbour and atoms with their own images are in the test
        assert any(a == b for a, b, *_ in ours)
    dist = edge_distances(pos, pairs, shifts, cell[None], torch.zeros(len(z), dtype=torch.long))
    # each directed pair's distance twice in ASE's list, once per unordered pair in ours
    assert sorted(dist.tolist()) == pytest.approx(sorted(d.tolist())[::2], abs=1e-12)


def test_single_atom_with_its_own_images(model):
    # a simple cubic cell of 1.9 A and a cutoff of 4 A: the atom's own images are its only neighbours
    z, pos, cell = (
        torch.tensor([6]),
        torch.tensor([[0.3, 0.2, 0.1]], dtype=torch.float64),
        1.9 * torch.eye(3, dtype=torch.float64),
    )
    pbc = torch.ones(1, 3, dtype=torch.bool)
    pairs, shifts = build_periodic_pairs(pos, torch.zeros(1, dtype=torch.long), cell[None], pbc, CUTOFF)
    expected = sum(1 for s in itertools.product(range(-3, 4), repeat=3) if 0 < 1.9 * np.linalg.norm(s) < CUTOFF)
    assert 2 * pairs.size(1) == expected  # each +-S couple once
    energy, forces, stress = model.energy_forces_stress(z, pos, None, cell[None], pbc)
    assert torch.isfinite(energy).all()
    assert forces.abs().max() < 1e-12  # by symmetry
    # cubic symmetry: isotropic stress, and it matches a finite difference of the energy
    assert stress[0].diagonal().std() < 1e-10 and (stress[0] - torch.diag(stress[0].diagonal())).abs().max() < 1e-12
    assert stress[0, 0, 0].item() == pytest.approx(_fd_stress(model, z, pos, cell, pbc)[0, 0], abs=1e-6)


def _fd_stress(model, z, pos, cell, pbc, h=1e-5):
    """(1/V) dE/d(eps) by central differences of symmetric strains (ASE's calculate_numerical_stress)."""
    volume = abs(float(torch.linalg.det(cell)))
    out = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            values = []
            for sign in (1, -1):
                eps = torch.zeros(3, 3, dtype=torch.float64)
                eps[a, b] += sign * h / 2
                eps[b, a] += sign * h / 2
                x = torch.eye(3, dtype=torch.float64) + eps
                with torch.no_grad():
                    values.append(float(model(z, pos @ x, None, (cell @ x)[None], pbc)))
            out[a, b] = (values[0] - values[1]) / (2 * h) / volume
    return out


@pytest.mark.parametrize("short", [False, True])
def test_forces_and_stress_equal_finite_differences(model, short):
    z, pos, cell = random_structure(11, num_atoms=5, short=short)
    pbc = torch.ones(1, 3, dtype=torch.bool)
    energy, forces, stress = model.energy_forces_stress(z, pos, None, cell[None], pbc)
    e2, f2 = model.energy_and_forces(z, pos, None, cell[None], pbc)
    assert torch.allclose(energy, e2, rtol=1e-13) and torch.allclose(forces, f2, rtol=1e-10, atol=1e-13)
    h = 1e-5
    fd = torch.zeros_like(pos)
    for i in range(len(z)):
        for k in range(3):
            plus, minus = pos.clone(), pos.clone()
            plus[i, k] += h
            minus[i, k] -= h
            fd[i, k] = -(model(z, plus, None, cell[None], pbc) - model(z, minus, None, cell[None], pbc)) / (2 * h)
    assert forces.abs().max() > 1e-3  # not trivially zero
    assert torch.allclose(forces, fd, atol=1e-6, rtol=0)
    fd_stress = _fd_stress(model, z, pos, cell, pbc)
    assert np.abs(stress[0].numpy()).max() > 1e-4
    assert np.allclose(stress[0].numpy(), fd_stress, atol=1e-6, rtol=0)
    assert torch.allclose(stress[0], stress[0].T, atol=1e-14)


@torch.no_grad()
def test_supercell_equivalent_cell_translation(model):
    z, pos, cell = random_structure(3, num_atoms=4)
    pbc = torch.ones(1, 3, dtype=torch.bool)
    energy = float(model(z, pos, None, cell[None], pbc))
    # 2x2x2 supercell: eight times the energy
    offsets = torch.tensor(list(itertools.product(range(2), repeat=3)), dtype=torch.float64)
    big_pos = (pos[None] + (offsets @ cell)[:, None]).reshape(-1, 3)
    big = float(model(z.repeat(8), big_pos, None, (2 * cell)[None], pbc))
    assert big == pytest.approx(8 * energy, rel=1e-10)
    # the same lattice with a2 -> a2 + a1
    other = cell.clone()
    other[1] += cell[0]
    assert float(model(z, pos, None, other[None], pbc)) == pytest.approx(energy, rel=1e-10)
    # rigid translation, and one atom moved by a lattice vector
    moved = pos + torch.tensor([0.37, -1.2, 2.9], dtype=torch.float64)
    moved[2] += cell[0] - 2 * cell[2]
    assert float(model(z, moved, None, cell[None], pbc)) == pytest.approx(energy, rel=1e-10)


@pytest.mark.parametrize("compiled", [True, False], ids=["torch-cluster", "fallback"])
def test_mixed_batch_from_data_list_equals_separate_calls(model, compiled, monkeypatch):
    from pyg_schnet import backend

    if compiled and not backend.USE_TORCH_CLUSTER:
        pytest.skip("torch-cluster is not installed")
    monkeypatch.setattr(backend, "USE_TORCH_CLUSTER", compiled)
    z1, pos1, cell1 = random_structure(5, num_atoms=6)
    z2, pos2, cell2 = random_structure(6, num_atoms=3, short=True)
    z3 = torch.tensor([8, 1, 1])
    pos3 = torch.tensor([[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]], dtype=torch.float64)
    slab_pbc = [True, True, False]
    data = [
        Data(z=z1, pos=pos1, cell=cell1[None], pbc=torch.tensor([[True] * 3])),
        Data(z=z3, pos=pos3, cell=torch.zeros(1, 3, 3, dtype=torch.float64), pbc=torch.zeros(1, 3, dtype=torch.bool)),
        Data(z=z2, pos=pos2, cell=cell2[None], pbc=torch.tensor([slab_pbc])),
        Data(
            z=z3,
            pos=pos3 + 0.1,
            cell=torch.zeros(1, 3, 3, dtype=torch.float64),
            pbc=torch.zeros(1, 3, dtype=torch.bool),
        ),
    ]
    batch = Batch.from_data_list(data)
    assert batch.cell.shape == (4, 3, 3) and batch.pbc.shape == (4, 3)
    assert torch.equal(batch.cell[2], cell2) and batch.pbc[2].tolist() == slab_pbc
    energy, forces = model.energy_and_forces(batch.z, batch.pos, batch.batch, batch.cell, batch.pbc)
    expected_e, expected_f = [], []
    for d in data:
        cell, pbc = (d.cell, d.pbc) if bool(d.pbc.any()) else (None, None)
        e, f = model.energy_and_forces(d.z, d.pos, None, cell, pbc)
        expected_e.append(e)
        expected_f.append(f)
    assert torch.allclose(energy, torch.cat(expected_e), rtol=1e-12, atol=0)
    assert torch.allclose(forces, torch.cat(expected_f), rtol=1e-9, atol=1e-12)
    # the molecule is the molecular path: same as without any cell
    assert float(model(z3, pos3).detach()) == pytest.approx(float(energy[1]), rel=1e-12)


def test_training_mode_stress_keeps_graph(model):
    z, pos, cell = random_structure(8, num_atoms=4)
    model.train()
    try:
        energy, forces, stress = model.energy_forces_stress(
            z, pos, None, cell[None], torch.ones(1, 3, dtype=torch.bool)
        )
        assert stress.requires_grad and forces.requires_grad
        (stress.square().sum() + forces.square().sum()).backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and any(float(g.abs().max()) > 0 for g in grads)
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


def test_periodic_errors(model):
    z, pos, cell = random_structure(2, num_atoms=3)
    pbc = torch.ones(1, 3, dtype=torch.bool)
    all_pairs = SchNet(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=8).double()
    with pytest.raises(ValueError, match=r"structure 0 is periodic .*cutoff=None.*SchNet\(cutoff=5.0\)"):
        all_pairs(z, pos, None, cell[None], pbc)
    with pytest.raises(ValueError, match="cell was given without pbc"):
        model(z, pos, None, cell[None], None)
    with pytest.raises(ValueError, match="structure 0 has pbc .* but no cell"):
        model(z, pos, None, None, pbc)
    with pytest.raises(ValueError, match=r"cell must have shape \[num_graphs, 3, 3\] = \[1, 3, 3\]"):
        model(z, pos, None, cell[None, :2], pbc)
    with pytest.raises(ValueError, match="pbc must be a bool tensor"):
        model(z, pos, None, cell[None], pbc.long())
    flat = cell.clone()
    flat[2] = 0
    with pytest.raises(ValueError, match=r"structure 0 is periodic along axes \[0, 1, 2\].*zero or linearly dependent"):
        model(z, pos, None, flat[None], pbc)
    parallel = cell.clone()
    parallel[1] = 2 * cell[0]
    with pytest.raises(ValueError, match=r"structure 1 is periodic along axes \[0, 1\].*linearly dependent"):
        model(
            z,
            pos,
            torch.tensor([0, 0, 1]),
            torch.stack([cell, parallel]),
            torch.tensor([[True, True, True], [True, True, False]]),
        )
    nan_cell = cell.clone()
    nan_cell[1, 1] = float("nan")
    with pytest.raises(ValueError, match="structure 0 has a non-finite cell"):
        model(z, pos, None, nan_cell[None], pbc)
    # stress: a molecule in the batch, or a slab without a third lattice vector
    with pytest.raises(ValueError, match="stress needs periodic structures"):
        model.energy_forces_stress(z, pos)
    both = torch.tensor([0, 0, 1])
    mixed_pbc = torch.tensor([[True] * 3, [False] * 3])
    with pytest.raises(ValueError, match=r"stress is undefined for structure 1: it has no periodic axis"):
        model.energy_forces_stress(z, pos, both, torch.stack([cell, cell]), mixed_pbc)
    slab = cell.clone()
    slab[2] = 0
    with pytest.raises(ValueError, match="stress is undefined for structure 0: its cell .* zero volume"):
        model.energy_forces_stress(z, pos, None, slab[None], torch.tensor([[True, True, False]]))
    # the slab itself is fine for energies and forces
    energy, _ = model.energy_and_forces(z, pos, None, slab[None], torch.tensor([[True, True, False]]))
    assert torch.isfinite(energy).all()


def test_coincident_image_raises(model):
    cell = 3.0 * torch.eye(3, dtype=torch.float64)
    pos = torch.tensor([[0.5, 0.5, 0.5], [3.5, 0.5, 0.5]], dtype=torch.float64)  # atom 1 sits on an image of atom 0
    with pytest.raises(
        ValueError,
        match=r"atoms 0 and 1 of structure 0 coincide: atom 1 is on atom 0.s image shifted by \[1, 0, 0\] lattice vectors",
    ):
        model(torch.tensor([1, 1]), pos, None, cell[None], torch.ones(1, 3, dtype=torch.bool))


def test_max_num_neighbors_counts_images():
    z, pos, cell = torch.tensor([6]), torch.zeros(1, 3, dtype=torch.float64), 1.9 * torch.eye(3, dtype=torch.float64)
    guarded = SchNet(
        hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=8, cutoff=CUTOFF, max_num_neighbors=20
    ).double()
    with pytest.raises(
        ValueError, match=r"atom 0 \(molecule 0\) has \d+ neighbours within the cutoff, more than max_num_neighbors=20"
    ):
        guarded(z, pos, None, cell[None], torch.ones(1, 3, dtype=torch.bool))


def test_dense_batching_refuses_periodic_data(model):
    from pyg_schnet.batching import to_dense
    from pyg_schnet.batching.auto import choose_batching
    from pyg_schnet.train.predict import predict

    z, pos, cell = random_structure(4, num_atoms=3)
    molecule = Data(
        z=z, pos=pos, cell=torch.zeros(1, 3, 3, dtype=torch.float64), pbc=torch.zeros(1, 3, dtype=torch.bool)
    )
    crystal = Data(z=z, pos=pos, cell=cell[None], pbc=torch.ones(1, 3, dtype=torch.bool))
    batch = Batch.from_data_list([molecule, crystal])
    with pytest.raises(
        ValueError, match=r"structure 1 of the batch is periodic .*dense \(padded\) path handles molecules only"
    ):
        to_dense(batch)
    with pytest.raises(ValueError, match="periodic"):
        predict(model, batch, with_forces=False, batching="dense")
    assert choose_batching(model, [batch], with_forces=False) == "sparse"
    # the sparse path reads batch.cell / batch.pbc
    energy, forces = predict(model, batch, with_forces=True, batching="sparse")
    expected = model(crystal.z, crystal.pos, None, crystal.cell, crystal.pbc)
    assert float(energy[1]) == pytest.approx(float(expected.detach()), rel=1e-12)
    assert float(energy[0]) == pytest.approx(float(model(z, pos).detach()), rel=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu(model):
    z, pos, cell = random_structure(9, num_atoms=5, short=True)
    pbc = torch.ones(1, 3, dtype=torch.bool)
    expected = model.energy_forces_stress(z, pos, None, cell[None], pbc)
    gpu = model.to("cuda")
    try:
        got = gpu.energy_forces_stress(z.cuda(), pos.cuda(), None, cell[None].cuda(), pbc.cuda())
    finally:
        model.to("cpu")
    for a, b in zip(expected, got):
        assert torch.allclose(a, b.cpu(), rtol=1e-9, atol=1e-12)


def test_float64_input_into_float32_model():
    torch.manual_seed(0)
    single = SchNet(
        hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=8, rbf_stop=CUTOFF, cutoff=CUTOFF
    )
    double = SchNet(
        hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=8, rbf_stop=CUTOFF, cutoff=CUTOFF
    )
    double.load_state_dict(single.state_dict())
    double.double()
    z, pos, cell = random_structure(12, num_atoms=4, short=True)
    pbc = torch.ones(1, 3, dtype=torch.bool)
    e32, f32, s32 = single.eval().energy_forces_stress(z, pos, None, cell[None], pbc)
    e64, f64, s64 = double.eval().energy_forces_stress(z, pos, None, cell[None], pbc)
    assert f32.dtype == torch.float64 and s32.dtype == torch.float64  # gradients in the caller's dtype
    assert torch.allclose(e32.double(), e64, rtol=1e-5)
    assert torch.allclose(s32, s64, rtol=1e-3, atol=1e-5) and torch.allclose(f32, f64, rtol=1e-3, atol=1e-5)


def test_stress_convention_is_ases(model):
    """ASE's own numerical stress of the model's energy (through a bare ASE calculator) equals ours."""
    from ase import Atoms
    from ase.calculators.calculator import Calculator, all_changes

    class EnergyOnly(Calculator):
        implemented_properties = ["energy", "free_energy"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            with torch.no_grad():
                self.results["energy"] = self.results["free_energy"] = float(
                    model(
                        torch.as_tensor(atoms.numbers),
                        torch.as_tensor(atoms.positions),
                        None,
                        torch.as_tensor(atoms.cell.array)[None],
                        torch.as_tensor(atoms.pbc)[None],
                    )
                )

    z, pos, cell = random_structure(21, num_atoms=4, short=True)
    atoms = Atoms(numbers=z.numpy(), positions=pos.numpy(), cell=cell.numpy(), pbc=True)
    calc = EnergyOnly()
    atoms.calc = calc
    numerical = calc.calculate_numerical_stress(atoms, d=1e-5, voigt=False)
    _, _, stress = model.energy_forces_stress(z, pos, None, cell[None], torch.ones(1, 3, dtype=torch.bool))
    assert np.abs(numerical).max() > 1e-4
    assert np.allclose(stress[0].numpy(), numerical, atol=1e-6, rtol=0)
