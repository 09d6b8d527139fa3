"""SchNetCalculator's ``dipole`` (ASE's property, e*Angstrom) from a model's dipole head, in float64; and
what a model without a dipole head, or without an energy head, refuses."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from ase.calculators.calculator import PropertyNotImplementedError

from pyg_schnet import SchNet
from pyg_schnet.simulation.ase import AutogradFallbackWarning, SchNetCalculator

TINY = dict(hidden_channels=16, num_filters=16, num_interactions=1, num_gaussians=30, rbf_stop=5.0, gamma=4.0)


def model_with(seed: int = 0, **kw) -> SchNet:
    torch.manual_seed(seed)
    model = SchNet(**TINY, **kw)
    model.units = {"energy": "kcal/mol", "length": "Angstrom"}
    return model


def calculator(model: SchNet, **kw) -> SchNetCalculator:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AutogradFallbackWarning)  # extra heads: the autograd path
        return SchNetCalculator(model, **kw)


def reference(model: SchNet, atoms: Atoms, charge: float = 0.0, head=None) -> np.ndarray:
    m = model.double().eval()
    z = torch.as_tensor(atoms.numbers)
    pos = torch.as_tensor(atoms.positions, dtype=torch.float64)
    with torch.no_grad():
        return m.dipole(z, pos, charge=torch.tensor([charge], dtype=torch.float64), head=head).numpy()[0]


def test_dipole_of_an_extra_head_with_energy_and_forces():
    model = model_with(extra_heads=(("dipole", "dipole"),))
    atoms = molecule("CH3CH2OH")
    atoms.calc = calculator(model)
    assert "dipole" in atoms.calc.implemented_properties
    mu = atoms.get_dipole_moment()
    np.testing.assert_allclose(mu, reference(model, atoms), rtol=1e-12, atol=1e-14)
    # the energy is still the model's, converted from kcal/mol to eV
    energy = atoms.get_potential_energy()
    from ase.units import kcal, mol

    z, pos = torch.as_tensor(atoms.numbers), torch.as_tensor(atoms.positions, dtype=torch.float64)
    with torch.no_grad():
        expected = float(model.double()(z, pos)) * kcal / mol
    assert energy == pytest.approx(expected, rel=1e-12)
    assert atoms.get_forces().shape == (len(atoms), 3)
    # rotating the atoms rotates the dipole
    rotated = atoms.copy()
    rotated.rotate(70, "x", center="COP")
    rotated.rotate(25, "z", center="COP")
    rotated.calc = atoms.calc
    rot = np.linalg.lstsq(atoms.positions - atoms.positions.mean(0), rotated.positions - rotated.positions.mean(0))[0]
    np.testing.assert_allclose(rotated.get_dipole_moment(), mu @ rot, rtol=1e-9, atol=1e-11)
    assert float(np.linalg.norm(mu)) > 1e-4


def test_charges_sum_to_the_total_charge_from_info_or_initial_charges():
    model = model_with(output="dipole_moment")
    atoms = molecule("H2O")
    atoms.calc = calculator(model)
    neutral = atoms.get_dipole_moment()
    np.testing.assert_allclose(neutral, reference(model, atoms), rtol=1e-12, atol=1e-14)
    assert atoms.get_charges().sum() == pytest.approx(0.0, abs=1e-12)
    q0 = atoms.get_charges()
    atoms.info["charge"] = 1.0  # a change of charge is a change of state: computed again
    q1 = atoms.get_charges()
    assert q1.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(q1, q0 + 1.0 / len(atoms), rtol=0, atol=1e-12)  # a uniform shift
    # about the centre of geometry a uniform shift has no moment: the dipole is that of the neutral atoms
    np.testing.assert_allclose(atoms.get_dipole_moment(), neutral, rtol=1e-12, atol=1e-14)
    del atoms.info["charge"]
    atoms.set_initial_charges([-1.0, 0.0, 0.0])
    assert atoms.get_charges().sum() == pytest.approx(-1.0, abs=1e-12)
    # the norm of the calculator's vector is the model's primary output |mu|
    z, pos = torch.as_tensor(atoms.numbers), torch.as_tensor(atoms.positions, dtype=torch.float64)
    with torch.no_grad():
        norm = float(model.double()(z, pos))
    assert float(np.linalg.norm(atoms.get_dipole_moment())) == pytest.approx(norm, rel=1e-12)
    # the calculator's charges are the model's, whose moment is the dipole
    q = atoms.get_charges()
    np.testing.assert_allclose(
        (q[:, None] * (atoms.positions - atoms.positions.mean(0))).sum(0), atoms.get_dipole_moment(), atol=1e-12
    )


def test_a_dipole_moment_model_gives_no_energy():
    atoms = molecule("H2O")
    atoms.calc = calculator(model_with(output="dipole_moment"))
    assert atoms.calc.implemented_properties == ["dipole", "charges"]
    with pytest.raises(PropertyNotImplementedError, match="primary output is 'dipole_moment', not a potential energy"):
        atoms.get_potential_energy()
    with pytest.raises(PropertyNotImplementedError, match="forces: this model's primary output"):
        atoms.get_forces()
    with pytest.raises(ValueError, match="predicts no energy"):
        SchNetCalculator(model_with(output="dipole_moment"), energy_unit="eV")


def test_dipole_without_a_dipole_head_is_refused():
    atoms = molecule("H2O")
    atoms.calc = SchNetCalculator(model_with())
    with pytest.raises(PropertyNotImplementedError, match="dipole: this model has no dipole head"):
        atoms.get_dipole_moment()
    with pytest.raises(ValueError, match="gives none of ASE's properties"):
        SchNetCalculator(model_with(output="intensive"))


def test_dipole_of_a_periodic_system_is_refused():
    atoms = molecule("H2O", vacuum=4.0)
    atoms.pbc = True
    atoms.calc = calculator(model_with(cutoff=3.0, extra_heads=(("dipole", "dipole"),)))
    assert np.isfinite(atoms.get_potential_energy())
    with pytest.raises(PropertyNotImplementedError, match="periodic system .* not\\s+defined"):
        atoms.get_dipole_moment()
