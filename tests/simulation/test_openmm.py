"""OpenMM through OpenMM-ML (issue 17, item 2): ``MLPotential("pyg-schnet", modelPath=...)`` gives the energy
and forces of SchNetCalculator in OpenMM's units, for molecules, periodic boxes and an ML region inside a
classical force field; NVE with OpenMM's VerletIntegrator conserves energy; bad inputs are refused.

The potential is used by name. Where the installed package metadata does not yet carry the entry point
(a checkout installed before it was declared), the factory is registered here with
``MLPotential.registerImplFactory``; the entry point itself is checked in fresh processes: added by a shim
of ``importlib.metadata`` with this package's module imported first, and as installed with OpenMM-ML first.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import molecule

openmm = pytest.importorskip("openmm", reason="OpenMM is not installed (pip install openmm)")
pytest.importorskip("openmmml", reason="OpenMM-ML is not installed (pip install openmmml)")

import openmm.app as app  # noqa: E402
from _md_reference import NVE_BOUND_EV, smooth_model  # noqa: E402
from openmm import unit  # noqa: E402
from openmmml import MLPotential  # noqa: E402

from pyg_schnet import SchNet, save_model  # noqa: E402
from pyg_schnet.models.domain import TrainingDomain, UnseenElementError, UnseenElementWarning  # noqa: E402
from pyg_schnet.simulation.ase import SchNetCalculator  # noqa: E402
from pyg_schnet.simulation.openmm import NAME, SchNetComputation  # noqa: E402
from pyg_schnet.simulation.openmm_entry import SchNetPotentialImplFactory  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ENTRY_POINT = "pyg_schnet.simulation.openmm_entry:SchNetPotentialImplFactory"
#: 1 eV in kJ/mol (ASE's constants, as SchNetCalculator's eV come from them)
EV_IN_KJ_MOL = 1.0 / (units.kJ / units.mol)
KJ_MOL = unit.kilojoule_per_mole
KJ_MOL_NM = unit.kilojoule_per_mole / unit.nanometer


def installed_entry_point() -> bool:
    return any(ep.name == NAME for ep in importlib.metadata.entry_points(group="openmmml.potentials"))


@pytest.fixture(scope="module", autouse=True)
def potential_by_name():
    """``MLPotential("pyg-schnet")`` resolves: through the installed entry point, or registered here."""
    if not installed_entry_point():
        MLPotential.registerImplFactory(NAME, SchNetPotentialImplFactory())


def small_model(cutoff=4.0, energy="kcal/mol", seed=0, elements=None, max_z=100) -> SchNet:
    torch.manual_seed(seed)
    model = SchNet(
        max_z=max_z,
        hidden_channels=16,
        num_filters=16,
        num_interactions=2,
        num_gaussians=25,
        rbf_stop=cutoff if cutoff else 5.0,
        cutoff=cutoff,
        output_hidden=8,
    )
    model.set_standardization(mean=-3.0, std=2.5)
    model.units = {"energy": energy, "length": "Angstrom"}
    if elements is not None:
        model.training_domain = TrainingDomain(elements=tuple(elements), num_structures=10, max_atoms=9)
    return model


def saved(tmp_path, model: SchNet, name="model.pt") -> Path:
    path = tmp_path / name
    save_model(model, path)
    return path


def topology_of(atoms: Atoms) -> app.Topology:
    """One residue holding ``atoms``' elements; box vectors (nm) when the atoms are periodic."""
    topology = app.Topology()
    residue = topology.addResidue("MOL", topology.addChain())
    for k, z in enumerate(atoms.numbers):
        element = app.element.Element.getByAtomicNumber(int(z))
        topology.addAtom(f"{element.symbol}{k}", element, residue)
    if atoms.pbc.any():
        topology.setPeriodicBoxVectors([openmm.Vec3(*row) for row in atoms.cell.array / 10.0] * unit.nanometer)
    return topology


def context_of(system, positions_angstrom, box_angstrom=None) -> "openmm.Context":
    """A double-precision Reference-platform Context at the given positions (and box)."""
    context = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("Reference"))
    if box_angstrom is not None:
        context.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in np.asarray(box_angstrom) / 10.0])
    context.setPositions(np.asarray(positions_angstrom) / 10.0)
    return context


def openmm_energy_forces(context, groups=-1):
    state = context.getState(getEnergy=True, getForces=True, groups=groups)
    return state.getPotentialEnergy().value_in_unit(KJ_MOL), state.getForces(asNumpy=True).value_in_unit(KJ_MOL_NM)


def ase_energy_forces(model_path, atoms: Atoms):
    """SchNetCalculator's energy and forces (float64) in kJ/mol and kJ/mol/nm."""
    atoms = atoms.copy()
    atoms.calc = SchNetCalculator(model_path)
    return atoms.get_potential_energy() * EV_IN_KJ_MOL, atoms.get_forces() * 10.0 * EV_IN_KJ_MOL


def assert_parity(energy, forces, ref_energy, ref_forces):
    assert energy == pytest.approx(ref_energy, rel=1e-6)
    assert np.abs(ref_forces).max() > 1.0  # kJ/mol/nm: not trivially zero
    np.testing.assert_allclose(forces, ref_forces, rtol=1e-6, atol=1e-6 * np.abs(ref_forces).max())


def distorted_ethanol(seed=0) -> Atoms:
    atoms = molecule("CH3CH2OH")
    atoms.positions += np.random.default_rng(seed).normal(scale=0.05, size=atoms.positions.shape)
    return atoms


def periodic_silicon() -> Atoms:
    """8 rattled Si atoms in a triclinic box in OpenMM's reduced form (a along x, b in the xy plane), some
    atoms outside the box; many images of each atom within the 4 A cutoff."""
    cell = np.array([[5.43, 0.0, 0.0], [0.3, 5.3, 0.0], [-0.4, 0.25, 5.5]])
    frac = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]], dtype=float)
    frac = np.concatenate([frac, frac + 0.25])
    positions = frac @ cell + np.random.default_rng(1).normal(scale=0.05, size=(8, 3))
    positions[2] += cell[0] - 2 * cell[2]  # outside the box: OpenMM and the model see the same structure
    return Atoms("Si8", positions=positions, cell=cell, pbc=True)


# ----------------------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("energy_unit", ["kcal/mol", "eV"])
@pytest.mark.parametrize("structure", ["molecule", "periodic box"])
def test_energy_and_forces_equal_the_ase_calculator(tmp_path, structure, energy_unit):
    atoms = distorted_ethanol() if structure == "molecule" else periodic_silicon()
    path = saved(tmp_path, small_model(energy=energy_unit))
    system = MLPotential(NAME, modelPath=str(path)).createSystem(topology_of(atoms))
    assert system.usesPeriodicBoundaryConditions() == (structure == "periodic box")
    box = atoms.cell.array if atoms.pbc.any() else None
    energy, forces = openmm_energy_forces(context_of(system, atoms.positions, box))
    assert_parity(energy, forces, *ase_energy_forces(path, atoms))


def test_a_kcal_per_mol_model_is_converted_with_4_184():
    """The model's own numbers (kcal/mol, kcal/mol/A) times 4.184 kJ/kcal (and 10 A/nm): no ASE in between."""
    model = small_model(cutoff=None)
    atoms = distorted_ethanol()
    system = MLPotential(NAME, model=model).createSystem(topology_of(atoms))
    energy, forces = openmm_energy_forces(context_of(system, atoms.positions))
    e, f = model.double().eval().energy_and_forces(torch.as_tensor(atoms.numbers), torch.as_tensor(atoms.positions))
    assert energy == pytest.approx(float(e[0]) * 4.184, rel=1e-12)
    np.testing.assert_allclose(forces, f.numpy() * 41.84, rtol=1e-10, atol=1e-10)


def test_the_methods_of_a_molecule_agree():
    """method="exact" (MDEvaluator, default) equals "autograd" (energy_and_forces) to rounding; "tabulated"
    stays within 1e-6 eV and eV/A, as the calculator's (tests/test_ase_calculator.py)."""
    atoms = distorted_ethanol()
    potential, topology = MLPotential(NAME, model=small_model()), topology_of(atoms)
    results = {
        method: openmm_energy_forces(context_of(potential.createSystem(topology, method=method), atoms.positions))
        for method in ("exact", "autograd", "tabulated")
    }
    (e, f), (e_auto, f_auto), (e_tab, f_tab) = results["exact"], results["autograd"], results["tabulated"]
    assert e == pytest.approx(e_auto, rel=1e-12)
    np.testing.assert_allclose(f, f_auto, rtol=0, atol=1e-10 * np.abs(f).max())
    assert abs(e_tab - e) < 1e-6 * EV_IN_KJ_MOL
    assert np.abs(f_tab - f).max() < 1e-6 * 10.0 * EV_IN_KJ_MOL


def test_a_changed_box_is_followed(tmp_path):
    """The box comes from the Context at every evaluation (a barostat's changes): a scaled box and
    positions give SchNetCalculator's numbers for the scaled structure."""
    atoms = periodic_silicon()
    path = saved(tmp_path, small_model())
    context = context_of(
        MLPotential(NAME, modelPath=path).createSystem(topology_of(atoms)), atoms.positions, atoms.cell
    )
    first, _ = openmm_energy_forces(context)
    atoms.set_cell(atoms.cell.array * 1.03, scale_atoms=True)
    context.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in atoms.cell.array / 10.0])
    context.setPositions(atoms.positions / 10.0)
    energy, forces = openmm_energy_forces(context)
    assert energy != pytest.approx(first, rel=1e-3)
    assert_parity(energy, forces, *ase_energy_forces(path, atoms))


def test_float32_agrees_with_float64_and_the_force_serialises(tmp_path):
    atoms = distorted_ethanol()
    potential = MLPotential(NAME, modelPath=saved(tmp_path, small_model()))
    topology = topology_of(atoms)
    e64, f64 = openmm_energy_forces(context_of(potential.createSystem(topology, device="cpu"), atoms.positions))
    single = potential.createSystem(topology, precision="float32")
    e32, f32 = openmm_energy_forces(context_of(single, atoms.positions))
    assert e32 != e64 and e32 == pytest.approx(e64, rel=1e-5)
    np.testing.assert_allclose(f32, f64, rtol=0, atol=1e-4 * np.abs(f64).max())
    # XmlSerializer pickles the PythonForce's computation (and copy.deepcopy of the force does the same)
    restored = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(single))
    assert openmm_energy_forces(context_of(restored, atoms.positions))[0] == e32


# -------------------------------------------------------------------------------------- ML region in MM
def water_box(periodic: bool):
    """TIP3P water (amber14/tip3p.xml) in a 1.5 nm box, flexible: the MM system and its topology."""
    forcefield = app.ForceField("amber14/tip3p.xml")
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(forcefield, boxSize=openmm.Vec3(1.5, 1.5, 1.5) * unit.nanometer)
    topology = modeller.topology
    if not periodic:
        topology.setPeriodicBoxVectors(None)
    method = app.PME if periodic else app.NoCutoff
    options = {"nonbondedCutoff": 0.6 * unit.nanometer} if periodic else {}
    mm_system = forcefield.createSystem(topology, nonbondedMethod=method, constraints=None, rigidWater=False, **options)
    positions = modeller.positions.value_in_unit(unit.angstrom)
    return forcefield, topology, mm_system, np.asarray(positions)


@pytest.mark.parametrize("periodic", [False, True])
def test_an_ml_water_inside_tip3p_water(tmp_path, periodic):
    """createMixedSystem: force group 1 (the ML water) holds SchNetCalculator's energy and forces of that
    water (in the box when periodic), group 0 the MM energy without the ML water's bonded terms, which a
    one-water MM system gives; interpolating (lambda 1 / 0) gives the mixed / the MM energy."""
    forcefield, topology, mm_system, positions = water_box(periodic)
    ml_atoms = [atom.index for atom in next(topology.residues()).atoms()]
    positions[ml_atoms[1]] += [0.1, 0.05, 0.0]  # a strained ML water: its MM bonded energy is far from 0
    box = topology.getPeriodicBoxVectors()
    box_angstrom = None if box is None else np.array(box.value_in_unit(unit.angstrom))
    assert mm_system.usesPeriodicBoundaryConditions() == periodic
    path = saved(tmp_path, small_model(elements=(1, 8)))
    potential = MLPotential(NAME, modelPath=path)
    mixed = potential.createMixedSystem(topology, mm_system, ml_atoms, forceGroup=1)
    context = context_of(mixed, positions, box_angstrom)
    ml_energy, ml_forces = openmm_energy_forces(context, groups={1})
    numbers = [atom.element.atomic_number for atom in next(topology.residues()).atoms()]
    water = Atoms(numbers=numbers, positions=positions[ml_atoms], cell=box_angstrom, pbc=periodic)
    assert_parity(ml_energy, ml_forces[ml_atoms], *ase_energy_forces(path, water))
    others = np.setdiff1d(np.arange(len(positions)), ml_atoms)
    assert not ml_forces[others].any()

    mm_energy, _ = openmm_energy_forces(context_of(mm_system, positions, box_angstrom))
    one = app.Modeller(topology, positions * unit.angstrom)
    one.delete([r for r in topology.residues()][1:])
    bonded = forcefield.createSystem(one.topology, nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False)
    bonded_energy, _ = openmm_energy_forces(context_of(bonded, positions[ml_atoms]))
    assert bonded_energy > 1.0  # kJ/mol: a real subtraction
    mixed_mm, _ = openmm_energy_forces(context, groups={0})
    assert mixed_mm == pytest.approx(mm_energy - bonded_energy, rel=1e-9, abs=1e-6)

    lerp = potential.createMixedSystem(topology, mm_system, ml_atoms, interpolate=True)
    lerp_context = context_of(lerp, positions, box_angstrom)
    lerp_context.setParameter("lambda_interpolate", 1.0)
    assert openmm_energy_forces(lerp_context)[0] == pytest.approx(ml_energy + mixed_mm, rel=1e-9)
    lerp_context.setParameter("lambda_interpolate", 0.0)
    assert openmm_energy_forces(lerp_context)[0] == pytest.approx(mm_energy, rel=1e-9)


# ------------------------------------------------------------------------------------------------- NVE
def nve_deviation(steps: int, dt_fs: float = 0.25):
    """Max |E_tot - E_tot(0)| and the range of the potential energy (eV) of ethanol in OpenMM's
    VerletIntegrator from 300 K, every 10 steps."""
    atoms = molecule("CH3CH2OH")
    system = MLPotential(NAME, model=smooth_model()).createSystem(topology_of(atoms), removeCMMotion=False)
    integrator = openmm.VerletIntegrator(dt_fs * unit.femtosecond)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(atoms.positions / 10.0)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 0)
    total, potential = [], []
    for _ in range(steps // 10 + 1):
        state = context.getState(getEnergy=True)
        potential.append(state.getPotentialEnergy().value_in_unit(KJ_MOL) / EV_IN_KJ_MOL)
        total.append(potential[-1] + state.getKineticEnergy().value_in_unit(KJ_MOL) / EV_IN_KJ_MOL)
        integrator.step(10)
    total = np.asarray(total)
    return float(np.abs(total - total[0]).max()), float(np.ptp(potential))


def test_nve_over_1000_steps_conserves_the_total_energy_of_a_smooth_model():
    deviation, potential_range = nve_deviation(1000)
    assert potential_range > 50 * NVE_BOUND_EV  # the atoms really moved on the energy surface
    assert deviation < NVE_BOUND_EV


def test_nve_bound_is_exceeded_by_a_force_with_the_wrong_sign(monkeypatch):
    call = SchNetComputation.__call__
    monkeypatch.setattr(SchNetComputation, "__call__", lambda self, state: (lambda e, f: (e, -f))(*call(self, state)))
    deviation, _ = nve_deviation(200)
    assert deviation > 10 * NVE_BOUND_EV


# ------------------------------------------------------------------------------------------- bad input
def test_a_periodic_system_needs_a_model_with_a_cutoff(tmp_path):
    potential = MLPotential(NAME, modelPath=saved(tmp_path, small_model(cutoff=None)))
    with pytest.raises(ValueError, match=r"the system is periodic .* the model has no cutoff \(cutoff=None"):
        potential.createSystem(topology_of(periodic_silicon()))
    _, topology, mm_system, _ = water_box(periodic=True)  # a periodic force field, the topology's box gone
    topology.setPeriodicBoxVectors(None)
    with pytest.raises(ValueError, match="the system is periodic"):
        potential.createMixedSystem(topology, mm_system, [0, 1, 2])
    potential.createSystem(topology_of(distorted_ethanol()))  # a molecule is fine


def test_an_element_the_model_never_saw(tmp_path):
    potential = MLPotential(NAME, modelPath=saved(tmp_path, small_model(elements=(1, 6, 8))))
    atoms = distorted_ethanol()
    atoms.numbers[2] = 17  # Cl in place of O
    topology = topology_of(atoms)
    message = r"topology atom 2 \(name 'Cl2', residue MOL 1, chain 1\): atom 2 is Cl \(Z = 17\), an element this model never saw"
    with pytest.warns(UnseenElementWarning, match=message + r".*pass unseenElements='error' to refuse them"):
        potential.createSystem(topology)
    with pytest.raises(UnseenElementError, match=message):
        potential.createSystem(topology, unseenElements="error")
    with pytest.raises(ValueError, match="unseenElements must be one of"):
        potential.createSystem(topology, unseenElements="refuse")
    # in a mixed system the message counts the ML region's atoms and names the topology's
    _, water_topology, mm_system, _ = water_box(periodic=False)
    chlorine = MLPotential(NAME, modelPath=saved(tmp_path, small_model(elements=(6, 17)), "c.pt"))
    with pytest.raises(UnseenElementError, match=r"ML atom 0 = topology atom 3 \(name 'O', residue HOH 2"):
        chlorine.createMixedSystem(water_topology, mm_system, [3, 4, 5], unseenElements="error")


def test_a_topology_atom_without_an_element(tmp_path):
    potential = MLPotential(NAME, modelPath=saved(tmp_path, small_model()))
    topology = topology_of(distorted_ethanol())
    residue = next(topology.residues())
    topology.addAtom("EP", None, residue)  # an extra particle, as a virtual site's
    with pytest.raises(ValueError, match=r"topology atom 9 \(name 'EP', residue MOL 1, chain 1\) has no element"):
        potential.createSystem(topology)
    salt = topology_of(Atoms("HNa", positions=[[0, 0, 0], [0, 0, 2.0]]))
    with pytest.raises(
        ValueError, match=r"topology atom 1 .* is Na \(Z = 11\), outside the model's embedding \(atomic numbers 1 to 9"
    ):
        MLPotential(NAME, model=small_model(max_z=10)).createSystem(salt)


def test_bad_options_are_refused(tmp_path):
    path = saved(tmp_path, small_model())
    with pytest.raises(ValueError, match="give exactly one of modelPath .* or model"):
        MLPotential(NAME)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        MLPotential(NAME, modelPath=tmp_path / "nope.pt")
    with pytest.raises(TypeError, match=r"unknown keyword\(s\) \['precision'\].* options of createSystem"):
        MLPotential(NAME, modelPath=path, precision="double")
    with pytest.raises(ValueError, match="energyUnit.*'eV' contradicts the energy unit the model records, 'kcal/mol'"):
        MLPotential(NAME, modelPath=path, energyUnit="eV")
    potential = MLPotential(NAME, modelPath=path)
    topology = topology_of(distorted_ethanol())
    with pytest.raises(ValueError, match=r"precision must be one of \('float64', 'double', 'float32', 'single'\)"):
        potential.createSystem(topology, precision="half")
    with pytest.raises(ValueError, match="ML atom index 42 is outside the topology's 9 atoms"):
        potential.createMixedSystem(topology, openmm.System(), [0, 42])
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        potential.createSystem(topology, threads=0)
    with pytest.raises(ValueError, match=r"method must be one of \('exact', 'tabulated', 'autograd'\), got 'fast'"):
        potential.createSystem(topology, method="fast")


def test_non_finite_numbers_stop_the_simulation_with_a_message():
    """OpenMM passes the Python error on as an OpenMMException with its message."""
    atoms = distorted_ethanol()
    topology = topology_of(atoms)
    positions = atoms.positions.copy()
    positions[0] = np.nan
    system = MLPotential(NAME, model=small_model()).createSystem(topology)
    with pytest.raises(openmm.OpenMMException, match=r"atom 0 .* has a non-finite position \[nan, nan, nan\]"):
        openmm_energy_forces(context_of(system, positions))
    broken = small_model()
    with torch.no_grad():
        next(broken.head.parameters()).fill_(float("nan"))
    system = MLPotential(NAME, model=broken).createSystem(topology, method="autograd")
    with pytest.raises(openmm.OpenMMException, match=r"the model returned a non-finite energy \(nan kJ/mol\)"):
        openmm_energy_forces(context_of(system, atoms.positions))


# ---------------------------------------------------------------------------------------- entry point
def test_pyproject_declares_the_entry_point():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project.get("entry-points", {}).get("openmmml.potentials", {}).get(NAME) == ENTRY_POINT
    entry = importlib.metadata.EntryPoint(NAME, ENTRY_POINT, "openmmml.potentials")
    assert entry.load() is SchNetPotentialImplFactory


#: A fresh process: MLPotential("pyg-schnet") by name, the entry point added by a shim of importlib.metadata
#: (or the installed one), importing this package's module first or OpenMM-ML first.
BY_NAME = textwrap.dedent(
    """
    import importlib.metadata as md, sys
    order, path, shim = sys.argv[1:]
    if shim == "shim":
        real = md.entry_points
        def entry_points(**selection):
            found = real(**selection)
            if selection.get("group") == "openmmml.potentials" and "pyg-schnet" not in found.names:
                extra = md.EntryPoint("pyg-schnet", "{value}", "openmmml.potentials")
                found = md.EntryPoints([*found, extra])
            return found
        md.entry_points = entry_points
    if order == "ours-first":
        import pyg_schnet.simulation.openmm
    import openmm.app
    from openmmml import MLPotential
    topology = openmm.app.Topology()
    residue = topology.addResidue("MOL", topology.addChain())
    topology.addAtom("O", openmm.app.element.oxygen, residue)
    system = MLPotential("pyg-schnet", modelPath=path).createSystem(topology)
    print([system.getForce(k).getName() for k in range(system.getNumForces())])
    """
).replace("{value}", ENTRY_POINT)


def run_by_name(tmp_path, order: str, shim: str) -> str:
    path = saved(tmp_path, small_model())
    done = subprocess.run(
        [sys.executable, "-c", BY_NAME, order, str(path), shim], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_entry_point_resolves_when_this_module_is_imported_first(tmp_path):
    """OpenMM-ML loads entry points at the end of its import, which this module's import of openmmml
    re-enters when it comes first: a circular import the factory's place in the module avoids. (OpenMM-ML
    imported first is the installed entry point's test below.)"""
    assert f"'{NAME} ({tmp_path / 'model.pt'})'" in run_by_name(tmp_path, "ours-first", "shim")


def test_the_installed_entry_point(tmp_path):
    if not installed_entry_point():
        pytest.skip(
            "the installed pyg-schnet metadata has no openmmml.potentials entry point yet: "
            "reinstall (pip install --no-build-isolation --no-deps -e .)"
        )
    assert f"'{NAME} ({tmp_path / 'model.pt'})'" in run_by_name(tmp_path, "openmmml-first", "installed")


def test_importing_openmmml_costs_no_torch_import():
    """OpenMM-ML loads every entry point's factory on ``import openmmml``: ours (pyg_schnet.simulation.openmm_entry,
    under a lazy top level) imports neither torch nor the model until a potential is created."""
    if not installed_entry_point():
        pytest.skip("the installed pyg-schnet metadata has no openmmml.potentials entry point yet: reinstall")
    code = (
        "import sys, openmmml\n"
        "from openmmml.mlpotential import MLPotential\n"
        "print('pyg-schnet' in MLPotential._implFactories, sorted(m for m in sys.modules if m.startswith(('torch', "
        "'pyg_schnet.models'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "True []"


# ------------------------------------------------------------------------------------------- benchmark
def test_benchmark_quick(load_repo_file, capsys):
    bench = load_repo_file("benchmarks/openmm_step.py")
    rows = bench.main(["--quick"])
    out = capsys.readouterr().out
    assert "| OpenMM" in out and "| ASE" in out and "python benchmarks/openmm_step.py --quick" in out
    assert all(row["ms_per_step"] > 0 for row in rows)
    assert rows[0]["parity_energy_rel"] < 1e-6
