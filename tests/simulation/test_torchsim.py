"""TorchSim (issue 17, item 1): SchNetModel passes TorchSim's own validate_model_outputs, equals SchNetCalculator
on molecules and periodic boxes (energies, forces, stress; float64, 1e-6 relative), a batched state of mixed
sizes equals per-system calls, TorchSim's NVE conserves the energy of a smooth model over 1,000 steps within
the ASE NVE test's bound, TorchSim's FIRE with its autobatcher relaxes, and bad input gets clear errors."""

from __future__ import annotations

import warnings
from typing import Dict, List

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import bulk, molecule
from ase.stress import voigt_6_to_full_3x3_stress

ts = pytest.importorskip("torch_sim", reason="torch-sim-atomistic is not installed (pip install torch-sim-atomistic)")
from _md_reference import NVE_BOUND_EV, smooth_model  # noqa: E402
from torch_sim.autobatching import InFlightAutoBatcher  # noqa: E402
from torch_sim.models.interface import validate_model_outputs  # noqa: E402
from torch_sim.quantities import calc_kinetic_energy  # noqa: E402
from torch_sim.runners import generate_force_convergence_fn  # noqa: E402
from torch_sim.units import MetalUnits  # noqa: E402

from pyg_schnet import SchNet, save_model  # noqa: E402
from pyg_schnet.models.domain import TrainingDomain, UnseenElementError, UnseenElementWarning  # noqa: E402
from pyg_schnet.simulation.ase import SchNetCalculator  # noqa: E402
from pyg_schnet.simulation.torchsim import SchNetModel  # noqa: E402

KCAL_MOL_IN_EV = units.kcal / units.mol
CPU = torch.device("cpu")
F64 = torch.float64
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")),
]


def tiny_model(cutoff=4.0, seed=0, energy_unit="kcal/mol") -> SchNet:
    """A small SchNet with random weights and a non-trivial standardisation (as in test_ase_calculator.py)."""
    torch.manual_seed(seed)
    model = SchNet(
        hidden_channels=16,
        num_filters=16,
        num_interactions=2,
        num_gaussians=30,
        rbf_stop=cutoff if cutoff else 6.0,
        cutoff=cutoff,
        output_hidden=8,
    )
    model.set_standardization(mean=-3.0, std=2.5)
    model.units = {"energy": energy_unit, "length": "Angstrom"}
    return model


@pytest.fixture
def model_file(tmp_path):
    return save_model(tiny_model(), tmp_path / "model.pt")


def rattled(atoms: Atoms, seed: int, scale: float = 0.05) -> Atoms:
    atoms = atoms.copy()
    atoms.positions += np.random.default_rng(seed).normal(scale=scale, size=atoms.positions.shape)
    return atoms


def copper_box() -> Atoms:
    """4 Cu atoms, a sheared (not symmetric) cell, rattled: a cell with its columns for rows gives other images."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    shear = np.array([[1.0, 0.04, -0.03], [0.02, 0.98, 0.05], [-0.01, 0.03, 1.02]])
    atoms.set_cell(atoms.cell.array @ shear, scale_atoms=True)
    return rattled(atoms, 1)


def silicon_primitive() -> Atoms:
    """2 Si atoms in the fcc primitive cell (3.84 A vectors at 60 degrees): the 4 A cutoff reaches many images."""
    return rattled(bulk("Si", "diamond", a=5.43), 2, 0.08)


def in_vacuum_box(atoms: Atoms, length: float, shift=(0.0, 0.0, 0.0)) -> Atoms:
    """``atoms`` in a periodic cube of ``length`` A, moved by ``shift`` and wrapped into the box."""
    atoms = atoms.copy()
    atoms.set_cell([length] * 3)
    atoms.center()
    atoms.positions += shift
    atoms.pbc = True
    atoms.wrap()
    return atoms


def calculator_results(calc: SchNetCalculator, atoms: Atoms, stress: bool) -> Dict[str, np.ndarray]:
    atoms = atoms.copy()
    atoms.calc = calc
    out = {"energy": np.array(atoms.get_potential_energy()), "forces": atoms.get_forces()}
    if stress:
        out["stress"] = voigt_6_to_full_3x3_stress(atoms.get_stress())
    return out


def assert_close(actual: torch.Tensor, expected: np.ndarray, rel: float = 1e-6) -> None:
    """Equal to ``rel`` of the largest magnitude of ``expected`` (1e-6 relative, as the issue asks)."""
    expected = np.asarray(expected, dtype=np.float64)
    scale = float(np.abs(expected).max())
    assert scale > 0
    np.testing.assert_allclose(actual.detach().cpu().numpy(), expected, rtol=0, atol=rel * scale)


def split_by_system(out: Dict[str, torch.Tensor], counts: List[int]) -> List[Dict[str, torch.Tensor]]:
    edges = np.cumsum([0, *counts])
    parts = []
    for g, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        part = {"energy": out["energy"][g : g + 1], "forces": out["forces"][a:b]}
        if "stress" in out:
            part["stress"] = out["stress"][g : g + 1]
        parts.append(part)
    return parts


# ------------------------------------------------------------------------------------ TorchSim's own check
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_torchsim_validate_model_outputs_passes(model_file, device, dtype):
    model = SchNetModel(model_file, device=device, dtype=dtype)
    validate_model_outputs(model, torch.device(device), dtype)  # Si and Fe boxes, batched and alone, with stress
    assert model.compute_stress and model.compute_forces
    assert model.device == torch.device(device) and model.dtype == dtype


# ------------------------------------------------------------------------------------------------ parity
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "make", [lambda: rattled(molecule("CH3CH2OH"), 0), lambda: rattled(molecule("C6H6"), 3)], ids=["ethanol", "benzene"]
)
def test_molecule_equals_schnet_calculator(model_file, device, make):
    atoms = make()
    model = SchNetModel(model_file, device=device)
    out = model(ts.io.atoms_to_state([atoms], torch.device(device), F64))
    assert set(out) == {"energy", "forces"}  # a molecule has no stress
    expected = calculator_results(SchNetCalculator(model_file, device="cpu"), atoms, stress=False)
    assert_close(out["energy"], expected["energy"][None])
    assert_close(out["forces"], expected["forces"])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("make", [copper_box, silicon_primitive], ids=["Cu-sheared-box", "Si-primitive"])
def test_periodic_box_equals_schnet_calculator_with_stress(model_file, device, make):
    atoms = make()
    model = SchNetModel(model_file, device=device)
    state = ts.io.atoms_to_state([atoms], torch.device(device), F64)
    out = model(state)
    expected = calculator_results(SchNetCalculator(model_file, device="cpu"), atoms, stress=True)
    assert_close(out["energy"], expected["energy"][None])
    assert_close(out["forces"], expected["forces"])
    assert out["stress"].shape == (1, 3, 3)
    assert_close(out["stress"][0], expected["stress"])
    if np.allclose(atoms.cell.array, atoms.cell.array.T):
        return  # the fcc primitive cell is symmetric: rows and columns are the same vectors
    # the state stores the lattice vectors as columns: read as rows, this sheared cell is another crystal
    wrong = state.clone()
    wrong.cell = wrong.cell.mT.contiguous()
    assert abs(float(model(wrong)["energy"][0]) - float(expected["energy"])) > 1e-4 * abs(float(expected["energy"]))


@pytest.mark.parametrize("unit, factor", [("kcal/mol", KCAL_MOL_IN_EV), ("eV", 1.0), ("Hartree", units.Hartree)])
def test_energies_forces_and_stress_are_converted_from_the_model_file_units(tmp_path, unit, factor):
    path = save_model(tiny_model(energy_unit=unit), tmp_path / "model.pt")
    raw = tiny_model().double().eval()  # the same weights, in its own units
    atoms = copper_box()
    out = SchNetModel(path)(ts.io.atoms_to_state([atoms], CPU, F64))
    z = torch.as_tensor(atoms.numbers)
    pos = torch.as_tensor(atoms.positions)
    cell = torch.as_tensor(atoms.cell.array)[None]
    pbc = torch.ones(1, 3, dtype=torch.bool)
    energy, forces, stress = raw.energy_forces_stress(z, pos, None, cell, pbc)
    torch.testing.assert_close(out["energy"], energy * factor, rtol=1e-12, atol=0)
    torch.testing.assert_close(out["forces"], forces * factor, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(out["stress"], stress * factor, rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------------------- batched states
def test_periodic_batch_of_mixed_sizes_equals_per_system_calls_and_the_calculator(model_file):
    """A molecule in a vacuum box (wrapped across the box's faces), a Cu box and a second molecule in one
    periodic state: equal to each system alone, and the boxed molecules to the isolated molecule (box 12 A
    > extent + cutoff)."""
    ethanol, water = rattled(molecule("CH3CH2OH"), 4), rattled(molecule("H2O"), 5)
    systems = [in_vacuum_box(ethanol, 12.0, shift=(5.0, -4.0, 6.0)), copper_box(), in_vacuum_box(water, 11.0)]
    assert np.ptp(systems[0].positions, axis=0).max() > 10.0  # the wrapped ethanol spans the box
    model = SchNetModel(model_file)
    batched = model(ts.io.atoms_to_state(systems, CPU, F64))
    assert (
        batched["energy"].shape == (3,) and batched["forces"].shape == (16, 3) and batched["stress"].shape == (3, 3, 3)
    )
    calc = SchNetCalculator(model_file, device="cpu")
    for g, (atoms, part) in enumerate(zip(systems, split_by_system(batched, [len(a) for a in systems]))):
        alone = model(ts.io.atoms_to_state([atoms], CPU, F64))
        for key in ("energy", "forces", "stress"):
            torch.testing.assert_close(part[key], alone[key], rtol=1e-10, atol=1e-12, msg=f"system {g}: {key}")
        if g != 1:
            expected = calculator_results(calc, ethanol if g == 0 else water, stress=False)
            assert_close(part["energy"], expected["energy"][None])
            assert_close(part["forces"], expected["forces"])


def test_molecular_batch_of_mixed_sizes_equals_per_system_calls(model_file):
    systems = [rattled(molecule(name), seed) for seed, name in enumerate(("C6H6", "H2O", "CH3CH2OH", "CH4"))]
    model = SchNetModel(model_file)
    batched = model(ts.io.atoms_to_state(systems, CPU, F64))
    calc = SchNetCalculator(model_file, device="cpu")
    for g, (atoms, part) in enumerate(zip(systems, split_by_system(batched, [len(a) for a in systems]))):
        alone = model(ts.io.atoms_to_state([atoms], CPU, F64))
        torch.testing.assert_close(part["energy"], alone["energy"], rtol=1e-10, atol=0, msg=f"system {g}")
        torch.testing.assert_close(part["forces"], alone["forces"], rtol=1e-10, atol=1e-12, msg=f"system {g}")
        expected = calculator_results(calc, atoms, stress=False)
        assert_close(part["energy"], expected["energy"][None])
        assert_close(part["forces"], expected["forces"])


def test_without_forces_and_stress_only_the_energy_is_returned(model_file):
    state = ts.io.atoms_to_state([copper_box(), silicon_primitive()], CPU, F64)
    full = SchNetModel(model_file)(state)
    model = SchNetModel(model_file, compute_forces=False, compute_stress=False)
    out = model(state)
    assert set(out) == {"energy"}
    torch.testing.assert_close(out["energy"], full["energy"], rtol=1e-12, atol=0)
    model.compute_stress = True  # TorchSim's flags are settable (validate_model_outputs sets them)
    out = model(state)
    assert set(out) == {"energy", "stress"}
    torch.testing.assert_close(out["stress"], full["stress"], rtol=1e-12, atol=1e-15)


def test_a_dict_state_and_inference_mode_give_the_same_results(model_file):
    state = ts.io.atoms_to_state([copper_box()], CPU, F64)
    model = SchNetModel(model_file)
    reference = model(state)
    fields = {k: getattr(state, k) for k in ("positions", "cell", "pbc", "atomic_numbers", "system_idx")}
    for key, value in model(fields).items():
        torch.testing.assert_close(value, reference[key], rtol=0, atol=0)
    with torch.inference_mode():
        inference_state = ts.io.atoms_to_state([copper_box()], CPU, F64)  # tensors made in inference mode
        out = model(inference_state)
    for key, value in out.items():
        torch.testing.assert_close(value, reference[key], rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------------------------------- NVE
def nve_energies(model: SchNetModel, systems: List[Atoms], steps: int, dt_fs: float = 0.25, temperature_K=300.0):
    """Potential and total energy (eV) of each system after every step of TorchSim's NVE integrator."""
    state = ts.io.atoms_to_state(systems, model.device, model.dtype)
    dt = torch.tensor(dt_fs * 1e-3 * MetalUnits.time, dtype=model.dtype)  # TorchSim's time unit: ps / MetalUnits.time
    assert float(dt) == pytest.approx(dt_fs * units.fs, rel=1e-6)  # the same step in ASE's time unit
    kT = torch.tensor(temperature_K * MetalUnits.temperature, dtype=model.dtype)
    init, update = ts.integrators.nve(model, dt=dt, kT=kT, seed=0)
    state = init(state)
    potential, total = [], []
    for _ in range(steps + 1):
        kinetic = calc_kinetic_energy(masses=state.masses, momenta=state.momenta, system_idx=state.system_idx)
        potential.append(state.energy.clone())
        total.append(state.energy + kinetic)
        state = update(state)
    nve_energies.final_state = state  # type: ignore[attr-defined]
    return torch.stack(potential).numpy(), torch.stack(total).numpy()


def test_torchsim_nve_conserves_the_energy_of_a_smooth_model_over_1000_steps():
    """Ethanol and water in one state, 1,000 steps of 0.25 fs from 300 K: each system's total energy stays
    within the ASE NVE test's bound while its potential energy moves by much more."""
    model = SchNetModel(smooth_model())
    potential, total = nve_energies(model, [molecule("CH3CH2OH"), molecule("H2O")], steps=1000)
    deviation = np.abs(total - total[0]).max(axis=0)
    assert np.ptp(potential, axis=0).min() > 50 * NVE_BOUND_EV  # the atoms really moved on the energy surface
    assert (deviation < NVE_BOUND_EV).all(), deviation


def test_torchsim_nve_of_a_periodic_box_conserves_the_energy_across_the_faces():
    """8 Cu atoms put just outside the box's faces: TorchSim wraps them into the box in the first step (its
    position_step); the model's periodic images make that invisible to the energy."""
    box = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 1, 1))
    box.positions -= 0.002
    potential, total = nve_energies(SchNetModel(smooth_model()), [box], steps=200, temperature_K=600.0)
    final = nve_energies.final_state.positions  # type: ignore[attr-defined]
    assert float((final - torch.as_tensor(box.positions)).abs().max()) > 3.0  # a coordinate jumped by a box length
    assert np.ptp(potential) > 10 * NVE_BOUND_EV
    assert np.abs(total - total[0]).max() < NVE_BOUND_EV


def test_torchsim_nve_bound_is_exceeded_by_a_force_with_the_wrong_sign(monkeypatch):
    forward = SchNetModel.forward

    def flipped(self, state, **kwargs):
        out = forward(self, state, **kwargs)
        out["forces"] = -out["forces"]
        return out

    monkeypatch.setattr(SchNetModel, "forward", flipped)
    _, total = nve_energies(SchNetModel(smooth_model()), [molecule("CH3CH2OH")], steps=200)
    assert np.abs(total - total[0]).max() > 10 * NVE_BOUND_EV


# -------------------------------------------------------------------------------- optimizer, autobatcher
def test_fire_with_the_in_flight_autobatcher_relaxes_each_molecule_as_alone():
    """TorchSim's FIRE through ts.optimize: batches of at most 12 atoms swapped in and out equal one batch of
    all, and every relaxed molecule has SchNetCalculator forces below the tolerance."""
    fmax = 0.01
    model = SchNetModel(tiny_model())
    systems = [rattled(molecule(name), seed, 0.1) for seed, name in enumerate(("H2O", "CH3CH2OH", "CH4", "NH3"))]
    convergence = generate_force_convergence_fn(fmax, include_cell_forces=False)
    state = ts.io.atoms_to_state(systems, CPU, F64)
    together = ts.optimize(state, model, optimizer=ts.optimizers.fire, convergence_fn=convergence, max_steps=2000)
    batcher = InFlightAutoBatcher(model, memory_scales_with="n_atoms", max_memory_scaler=12)
    swapped = ts.optimize(
        state, model, optimizer=ts.optimizers.fire, convergence_fn=convergence, autobatcher=batcher, max_steps=2000
    )
    torch.testing.assert_close(swapped.positions, together.positions, rtol=0, atol=1e-8)
    calc = SchNetCalculator(tiny_model(), device="cpu")
    for start, relaxed in zip(systems, together.to_atoms()):
        before, after = calculator_results(calc, start, stress=False), calculator_results(calc, relaxed, stress=False)
        assert np.linalg.norm(before["forces"], axis=1).max() > 2 * fmax  # there was something to relax
        assert np.linalg.norm(after["forces"], axis=1).max() < fmax
        assert after["energy"] < before["energy"]


def test_integrate_with_the_binning_autobatcher_keeps_every_system():
    model = SchNetModel(smooth_model())
    systems = [molecule("H2O"), molecule("CH3CH2OH"), molecule("CH4")]
    batcher = ts.autobatching.BinningAutoBatcher(model, memory_scales_with="n_atoms", max_memory_scaler=10)
    final = ts.integrate(
        systems,
        model,
        integrator=ts.integrators.nve,
        n_steps=5,
        temperature=300.0,
        timestep=0.00025,
        autobatcher=batcher,
    )
    assert [len(a) for a in final.to_atoms()] == [3, 9, 5]
    assert torch.isfinite(final.energy).all() and final.energy.shape == (3,)


# ----------------------------------------------------------------------------------------------- errors
def test_a_periodic_state_and_a_model_without_cutoff_is_refused(tmp_path):
    path = save_model(tiny_model(cutoff=None), tmp_path / "allpairs.pt")
    model = SchNetModel(path)
    molecules = ts.io.atoms_to_state([molecule("H2O"), molecule("CH4")], CPU, F64)
    assert model(molecules)["energy"].shape == (2,)  # molecules are fine
    with pytest.raises(ValueError, match=r"periodic \(pbc = True\) but this SchNet has cutoff=None"):
        model(ts.io.atoms_to_state([copper_box()], CPU, F64))


def test_elements_outside_the_training_set_warn_or_are_refused(tmp_path):
    trained = tiny_model()
    trained.training_domain = TrainingDomain(elements=(1, 6, 8), num_structures=10, max_atoms=9)
    path = save_model(trained, tmp_path / "model.pt")
    chloro = molecule("CH3Cl")  # C, Cl, H, H, H: Cl is atom 1 of system 1
    state = ts.io.atoms_to_state([molecule("H2O"), chloro], CPU, F64)
    with pytest.warns(UnseenElementWarning, match=r"SchNetModel: structure 1, atom 1 is Cl \(Z = 17\)"):
        SchNetModel(path)(state)
    with pytest.raises(UnseenElementError, match=r"structure 1, atom 1 is Cl \(Z = 17\).*trained on H, C, O"):
        SchNetModel(path, unseen_elements="error")(state)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SchNetModel(path, unseen_elements="ignore")(state)
        SchNetModel(path)(ts.io.atoms_to_state([molecule("CH3CH2OH")], CPU, F64))  # inside the domain: silent


def test_bad_arguments_and_states_get_clear_errors(model_file, tmp_path):
    with pytest.raises(ValueError, match="dtype must be torch.float64 or torch.float32"):
        SchNetModel(model_file, dtype=torch.float16)
    with pytest.raises(ValueError, match="unseen_elements must be one of"):
        SchNetModel(model_file, unseen_elements="skip")
    with pytest.raises(ValueError, match="memory_scales_with must be one of"):
        SchNetModel(model_file, memory_scales_with="n_pairs")
    with pytest.raises(TypeError, match="model must be a SchNet or the path of a model.pt"):
        SchNetModel(42)
    with pytest.raises(TypeError, match="compute_stress must be True or False"):
        SchNetModel(model_file, compute_stress="yes")
    with pytest.raises(ValueError, match="'eV' contradicts the energy unit the model records, 'kcal/mol'"):
        SchNetModel(model_file, energy_unit="eV")
    unitless = tiny_model()
    unitless.units = None
    with pytest.raises(ValueError, match=r"units are unknown.*SchNetModel\(\.\.\., energy_unit=\.\.\.\)"):
        SchNetModel(unitless)
    model = SchNetModel(model_file)
    with pytest.raises(
        ValueError, match=r"state.positions is torch.float32 on cpu, the model computes in torch.float64"
    ):
        model(ts.io.atoms_to_state([molecule("H2O")], CPU, torch.float32))
    with pytest.raises(ValueError, match=r"the state dict lacks \['cell'\]"):
        model(
            {"positions": torch.zeros(1, 3, dtype=F64), "pbc": False, "atomic_numbers": torch.ones(1, dtype=torch.long)}
        )


def test_a_non_finite_result_is_an_error_naming_the_system():
    broken = tiny_model()
    with torch.no_grad():
        broken.head.output_layer.bias.fill_(float("inf"))
    with pytest.raises(FloatingPointError, match="non-finite energy for system 0"):
        SchNetModel(broken)(ts.io.atoms_to_state([molecule("H2O"), molecule("CH4")], CPU, F64))


# --------------------------------------------------------------------------------------------- benchmark
def test_relax_benchmark_quick_smoke(capsys, load_repo_file):
    bench = load_repo_file("benchmarks/torchsim_relax.py")
    bench.main(["--quick"])
    out = capsys.readouterr().out
    assert "command: python benchmarks/torchsim_relax.py --quick" in out
    assert "| molecules |" in out and "\n| 1 |" in out and "\n| 2 |" in out
