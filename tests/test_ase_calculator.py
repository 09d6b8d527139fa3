"""SchNetCalculator: forces are -dE/dR of its energy, units through ase.units, models from files."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import units
from ase.build import molecule
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_forces

from pyg_schnet import SchNet
from pyg_schnet.ase import SchNetCalculator
from pyg_schnet.train.checkpoint import model_payload, save_model

KCAL_MOL_IN_EV = units.kcal / units.mol


def small_model(cutoff=4.0, seed=0) -> SchNet:
    """A small SchNet with non-trivial weights and standardisation (float32, as trained)."""
    torch.manual_seed(seed)
    model = SchNet(hidden_channels=16, num_filters=16, num_interactions=2, num_gaussians=40,
                   rbf_stop=cutoff if cutoff else 6.0, cutoff=cutoff, output_hidden=8)
    model.set_standardization(mean=-3.0, std=2.5)
    return model


def distorted_ethanol(seed=0):
    atoms = molecule("CH3CH2OH")
    atoms.positions += np.random.default_rng(seed).normal(scale=0.05, size=atoms.positions.shape)
    return atoms


def model_energy_forces(model: SchNet, atoms):
    m = model.double().eval()
    z = torch.as_tensor(atoms.numbers)
    pos = torch.as_tensor(atoms.positions, dtype=torch.float64)
    energy, forces = m.energy_and_forces(z, pos)
    return float(energy[0]), forces.numpy()


@pytest.mark.parametrize("cutoff", [None, 4.0])
def test_forces_are_minus_central_differences_of_the_energy(cutoff):
    atoms = distorted_ethanol()
    atoms.calc = SchNetCalculator(small_model(cutoff))
    forces = atoms.get_forces()
    numerical = calculate_numerical_forces(atoms, eps=1e-4)  # central differences of get_potential_energy
    assert np.abs(forces).max() > 1e-2  # not trivially zero
    np.testing.assert_allclose(forces, numerical, rtol=0, atol=1e-6)


def test_kcal_per_mol_model_gives_ev():
    model = small_model()
    atoms = distorted_ethanol()
    calc = SchNetCalculator(model)
    atoms.calc = calc
    assert calc.units == {"energy": "kcal/mol", "length": "Angstrom"}
    e_model, f_model = model_energy_forces(model, atoms)
    assert atoms.get_potential_energy() == pytest.approx(e_model * KCAL_MOL_IN_EV, rel=1e-12)
    assert atoms.get_potential_energy(force_consistent=True) == pytest.approx(e_model * KCAL_MOL_IN_EV, rel=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), f_model * KCAL_MOL_IN_EV, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("unit, factor", [("eV", 1.0), ("Hartree", units.Hartree), ("kJ/mol", units.kJ / units.mol)])
def test_energy_unit_override(unit, factor):
    model = small_model()
    atoms = distorted_ethanol()
    atoms.calc = SchNetCalculator(model, energy_unit=unit)
    e_model, f_model = model_energy_forces(model, atoms)
    assert atoms.get_potential_energy() == pytest.approx(e_model * factor, rel=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), f_model * factor, rtol=1e-10, atol=1e-14)


def test_units_recorded_on_the_model_are_used_and_can_be_overridden():
    model = small_model()
    model.units = {"energy": "eV", "length": "Angstrom"}
    atoms = distorted_ethanol()
    e_model, _ = model_energy_forces(model, atoms)
    assert SchNetCalculator(model).get_potential_energy(atoms) == pytest.approx(e_model, rel=1e-12)
    overridden = SchNetCalculator(model, energy_unit="kcal/mol").get_potential_energy(atoms)
    assert overridden == pytest.approx(e_model * KCAL_MOL_IN_EV, rel=1e-12)


def test_unknown_unit_is_refused_by_name():
    with pytest.raises(ValueError, match="'kcal/mole'.*'mole' is not a symbol of ase.units"):
        SchNetCalculator(small_model(), energy_unit="kcal/mole")


def test_loading_from_a_path_equals_the_model(tmp_path):
    model = small_model()
    save_model(model, tmp_path / "model.pt")
    atoms = distorted_ethanol()
    from_file = SchNetCalculator(tmp_path / "model.pt").get_potential_energy(atoms)
    from_str = SchNetCalculator(str(tmp_path / "model.pt")).get_potential_energy(atoms)
    direct = SchNetCalculator(model).get_potential_energy(atoms)
    assert from_file == pytest.approx(direct, rel=1e-12) and from_str == pytest.approx(direct, rel=1e-12)


def test_old_model_file_without_units_is_read_as_kcal_per_mol(tmp_path):
    model = small_model()
    payload = model_payload(model)
    old = {"format": "pyg_schnet.model/1", "config": payload["config"], "state_dict": payload["state_dict"]}  # as written before units
    torch.save(old, tmp_path / "old.pt")
    calc = SchNetCalculator(tmp_path / "old.pt")
    assert calc.units["energy"] == "kcal/mol"
    atoms = distorted_ethanol()
    e_model, _ = model_energy_forces(model, atoms)
    assert calc.get_potential_energy(atoms) == pytest.approx(e_model * KCAL_MOL_IN_EV, rel=1e-12)


def test_the_users_model_is_not_changed():
    model = small_model().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    SchNetCalculator(model, dtype=torch.float64).get_forces(distorted_ethanol())
    assert model.training
    for k, v in model.state_dict().items():
        assert v.dtype == before[k].dtype and torch.equal(v, before[k]), k
    assert all(p.requires_grad for p in model.parameters())


def test_float32_agrees_with_float64():
    model = small_model()
    atoms = distorted_ethanol()
    e64 = SchNetCalculator(model).get_potential_energy(atoms)
    calc32 = SchNetCalculator(model, dtype=torch.float32)
    f64 = SchNetCalculator(model).get_forces(atoms)
    assert calc32.model.representation.embedding.weight.dtype == torch.float32
    assert calc32.get_potential_energy(atoms) == pytest.approx(e64, rel=1e-5)
    forces32 = calc32.get_forces(atoms)
    assert forces32.dtype == np.float64
    np.testing.assert_allclose(forces32, f64, rtol=0, atol=1e-5 * np.abs(f64).max())
    with pytest.raises(ValueError, match="dtype must be torch.float64 or torch.float32"):
        SchNetCalculator(model, dtype=torch.float16)


def test_cached_topology_follows_changed_atoms():
    """The calculator caches atomic numbers between calls; a change of them (or of the atom count)
    must give the energy a fresh calculator computes."""
    model = small_model()
    calc = SchNetCalculator(model)
    atoms = distorted_ethanol()
    atoms.calc = calc
    first = atoms.get_potential_energy()
    atoms.numbers[0] = 7  # C -> N, same positions
    changed = atoms.get_potential_energy()
    assert changed != pytest.approx(first)
    assert changed == pytest.approx(SchNetCalculator(model).get_potential_energy(atoms), rel=1e-12)
    water = molecule("H2O")
    assert calc.get_potential_energy(water) == pytest.approx(
        SchNetCalculator(model).get_potential_energy(water), rel=1e-12)


def test_stress_of_a_molecule_is_not_implemented():
    atoms = distorted_ethanol()
    atoms.calc = SchNetCalculator(small_model())
    with pytest.raises(PropertyNotImplementedError, match="periodic systems only"):
        atoms.get_stress()
    assert np.isfinite(atoms.get_forces()).all()  # the calculator stays usable


def test_not_a_model_is_refused():
    with pytest.raises(TypeError, match="must be a SchNet or the path of a model.pt"):
        SchNetCalculator(42)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        SchNetCalculator("nope.pt")
