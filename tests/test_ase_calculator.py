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
from pyg_schnet.io.model_file import model_payload, save_model
from pyg_schnet.simulation.ase import SchNetCalculator

KCAL_MOL_IN_EV = units.kcal / units.mol


def small_model(cutoff=4.0, seed=0) -> SchNet:
    """A small SchNet with non-trivial weights and standardisation (float32, as trained)."""
    torch.manual_seed(seed)
    model = SchNet(
        hidden_channels=16,
        num_filters=16,
        num_interactions=2,
        num_gaussians=40,
        rbf_stop=cutoff if cutoff else 6.0,
        cutoff=cutoff,
        output_hidden=8,
    )
    model.set_standardization(mean=-3.0, std=2.5)
    model.units = {"energy": "kcal/mol", "length": "Angstrom"}
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
def test_energy_unit_of_a_model_that_records_none(unit, factor):
    model = small_model()
    model.units = None  # as a model.pt of format /1 loads
    atoms = distorted_ethanol()
    atoms.calc = SchNetCalculator(model, energy_unit=unit)
    e_model, f_model = model_energy_forces(model, atoms)
    assert atoms.get_potential_energy() == pytest.approx(e_model * factor, rel=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), f_model * factor, rtol=1e-10, atol=1e-14)


def test_units_recorded_on_the_model_are_used_and_never_overridden():
    # issue 20, defect 11: energy_unit="kcal/mol" on an eV model scaled its energies by 23x
    model = small_model()
    model.units = {"energy": "eV", "length": "Angstrom"}
    atoms = distorted_ethanol()
    e_model, _ = model_energy_forces(model, atoms)
    assert SchNetCalculator(model).get_potential_energy(atoms) == pytest.approx(e_model, rel=1e-12)
    with pytest.raises(
        ValueError, match=r"energy_unit=\.\.\.\) 'kcal/mol' contradicts the energy unit the model records, 'eV'"
    ):
        SchNetCalculator(model, energy_unit="kcal/mol")
    same = SchNetCalculator(model, energy_unit=" eV ").get_potential_energy(atoms)  # the same unit, spelled otherwise
    assert same == pytest.approx(e_model, rel=1e-12)
    model.units = {"energy": "kcal/mol", "length": "Angstrom"}
    assert SchNetCalculator(model, energy_unit="kcal / mol").units["energy"] == "kcal/mol"


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


def test_old_model_file_without_units_needs_the_unit_said(tmp_path):
    model = small_model()
    payload = model_payload(model)
    old = {
        "format": "pyg_schnet.model/1",
        "config": payload["config"],
        "state_dict": payload["state_dict"],
    }  # as written before units
    torch.save(old, tmp_path / "old.pt")
    with pytest.raises(
        ValueError, match=r"the model's units are unknown .*pass SchNetCalculator\(\.\.\., energy_unit="
    ):
        SchNetCalculator(tmp_path / "old.pt")
    calc = SchNetCalculator(tmp_path / "old.pt", energy_unit="kcal/mol")
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
        SchNetCalculator(model).get_potential_energy(water), rel=1e-12
    )


def test_direct_calculate_follows_the_atoms_it_is_given():
    """calculate() reuses get_property's copy of the atoms only while it equals the atoms given: a
    direct call with other positions computes and remembers those."""
    model = small_model()
    calc = SchNetCalculator(model)
    first, moved = distorted_ethanol(seed=1), distorted_ethanol(seed=2)
    calc.get_forces(first)
    calc.calculate(moved, ["energy", "forces"])
    energy, forces = model_energy_forces(model, moved)
    assert calc.results["energy"] == pytest.approx(energy * KCAL_MOL_IN_EV, rel=1e-10)
    np.testing.assert_allclose(calc.results["forces"], forces * KCAL_MOL_IN_EV, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(calc.atoms.positions, moved.positions)
    assert calc.atoms is not moved  # a copy, as ASE's Calculator keeps
    assert calc.check_state(moved) == []


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


# ------------------------------------------------------------------------------------- periodic
def periodic_silicon():
    """A rattled, sheared 8-atom silicon cell: triclinic, several images of each atom within 4 A."""
    from ase.build import bulk

    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.set_cell(
        atoms.cell.array @ np.array([[1.0, 0.05, 0.0], [0.02, 0.97, 0.03], [0.0, -0.04, 1.02]]), scale_atoms=True
    )
    atoms.rattle(0.05, seed=1)
    return atoms


def test_periodic_stress_equals_numerical_stress_and_forces_finite_differences():
    from ase.calculators.fd import calculate_numerical_stress

    atoms = periodic_silicon()
    atoms.calc = SchNetCalculator(small_model(cutoff=4.0))
    stress = atoms.get_stress()
    assert stress.shape == (6,) and np.abs(stress).max() > 1e-4
    np.testing.assert_allclose(stress, calculate_numerical_stress(atoms, eps=1e-6), rtol=0, atol=1e-6)
    np.testing.assert_allclose(atoms.get_forces(), calculate_numerical_forces(atoms, eps=1e-4), rtol=0, atol=1e-6)
    full = atoms.get_stress(voigt=False)
    np.testing.assert_allclose(full, full.T, atol=1e-12)


def test_periodic_stress_units():
    """Stress of a kcal/mol model: the model's stress times kcal/mol in eV, in ASE's Voigt order."""
    model = small_model(cutoff=4.0)
    atoms = periodic_silicon()
    m = model.double().eval()
    _, _, sigma = m.energy_forces_stress(
        torch.as_tensor(atoms.numbers),
        torch.as_tensor(atoms.positions),
        None,
        torch.as_tensor(atoms.cell.array)[None],
        torch.as_tensor(atoms.pbc)[None],
    )
    s = sigma[0].numpy() * KCAL_MOL_IN_EV
    expected = [s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]]
    np.testing.assert_allclose(SchNetCalculator(model).get_stress(atoms), expected, rtol=1e-10, atol=1e-14)


def test_cached_cell_follows_a_changed_cell():
    model = small_model(cutoff=4.0)
    atoms = periodic_silicon()
    atoms.calc = SchNetCalculator(model)
    first = atoms.get_potential_energy()
    atoms.set_cell(atoms.cell.array * 1.03, scale_atoms=False)
    changed = atoms.get_potential_energy()
    assert changed != pytest.approx(first)
    assert changed == pytest.approx(SchNetCalculator(model).get_potential_energy(atoms), rel=1e-12)
    atoms.pbc = False  # the same atoms as a cluster: no stress, a molecule's energy
    assert atoms.get_potential_energy() == pytest.approx(
        model_energy_forces(model, atoms)[0] * KCAL_MOL_IN_EV, rel=1e-12
    )


def test_periodic_atoms_need_a_model_with_a_cutoff():
    atoms = periodic_silicon()
    atoms.calc = SchNetCalculator(small_model(cutoff=None))
    with pytest.raises(ValueError, match="cutoff=None"):
        atoms.get_potential_energy()


def test_readme_calculator_example_runs(tmp_path, monkeypatch):
    """The README's simulation block, with a small saved model in place of runs/eth/model.pt."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "SchNetCalculator(" in b)
    (tmp_path / "runs" / "eth").mkdir(parents=True)
    save_model(small_model(), tmp_path / "runs" / "eth" / "model.pt")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README simulation example", "exec"), namespace)
    assert namespace["energy"] == pytest.approx(
        model_energy_forces(small_model(), molecule("CH3CH2OH"))[0] * KCAL_MOL_IN_EV, rel=1e-12
    )
    assert namespace["forces"].shape == (9, 3)
    assert not np.allclose(namespace["atoms"].positions, molecule("CH3CH2OH").positions)  # it moved


@pytest.mark.parametrize("cutoff", [None, 4.0])
def test_methods_of_a_molecule_agree(cutoff):
    """The default MDEvaluator path equals the model's autograd path to rounding (float64); the
    tabulated filters stay within 1e-6 eV and eV/A on a small molecule; a bad method is refused."""
    model = small_model(cutoff)
    atoms = distorted_ethanol()
    results = {}
    for method in ("exact", "autograd", "tabulated"):
        atoms.calc = SchNetCalculator(model, method=method)
        results[method] = (atoms.get_potential_energy(), atoms.get_forces())
        assert (atoms.calc._evaluator is None) == (method == "autograd")
    e_ref, f_ref = results["autograd"]
    assert results["exact"][0] == pytest.approx(e_ref, rel=1e-12, abs=1e-10)
    np.testing.assert_allclose(results["exact"][1], f_ref, rtol=0, atol=1e-10)
    assert results["tabulated"][0] == pytest.approx(e_ref, abs=1e-6)
    np.testing.assert_allclose(results["tabulated"][1], f_ref, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="method must be one of"):
        SchNetCalculator(model, method="fast")


def test_small_structures_run_on_one_thread_and_the_setting_is_restored(monkeypatch):
    from pyg_schnet.simulation import ase as ase_module

    seen = []
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for threads, atoms, expected in (
            (None, distorted_ethanol(), 1),  # 9 atoms: one thread
            (2, distorted_ethanol(), 2),  # asked for
        ):
            calc = SchNetCalculator(small_model(), threads=threads)
            original = calc._compute
            monkeypatch.setattr(
                calc, "_compute", lambda *a, o=original: (seen.append(torch.get_num_threads()), o(*a))[1]
            )
            atoms.calc = calc
            atoms.get_potential_energy()
            assert seen[-1] == expected
            assert torch.get_num_threads() == 2  # restored
        big = SchNetCalculator(small_model())
        assert big.threads_for(ase_module.SMALL_SYSTEM_ATOMS + 1) is None  # torch's own setting
        with pytest.raises(ValueError, match="threads must be"):
            SchNetCalculator(small_model(), threads=0)
    finally:
        torch.set_num_threads(previous)
