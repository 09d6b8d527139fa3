"""MD through the calculator: energy conservation (and that a broken force fails it), the analysis
functions, and ``pyg-schnet md`` end to end on a tiny run."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import molecule
from ase.io import read, write

from pyg_schnet import SchNet
from pyg_schnet.experiments.md_command import main as md_main
from pyg_schnet.io.model_file import save_model
from pyg_schnet.nn.cutoff import CosineCutoff
from pyg_schnet.simulation.ase import SchNetCalculator
from pyg_schnet.simulation.md import (
    CSV_COLUMNS,
    DistanceHistogram,
    StabilityMonitor,
    bond_lengths,
    bonded_pairs,
    energy_drift,
    hr_mae,
    initial_velocities,
    run_md,
)

#: Largest |E_tot(t) - E_tot(0)| (eV) allowed in the NVE test: 200 steps of 0.25 fs at 300 K. The smooth
#: model stays near 1e-6 eV; a sign error in the forces reaches about 2e-2 eV and a hard cutoff about
#: 7e-3 eV (measured 2026-11-22), while the potential energy itself moves by about 1e-2 eV.
NVE_BOUND_EV = 1e-4


def smooth_model(seed: int = 0) -> SchNet:
    """A small SchNet with a cosine cutoff at 3 A: smooth energy, many pairs near the cutoff in ethanol."""
    torch.manual_seed(seed)
    model = SchNet(
        hidden_channels=16,
        num_filters=16,
        num_interactions=2,
        num_gaussians=25,
        rbf_stop=3.0,
        cutoff=3.0,
        output_hidden=8,
    )
    model.set_standardization(mean=0.0, std=1.0)
    model.units = {"energy": "kcal/mol", "length": "Angstrom"}
    return model


def nve_deviation(steps: int = 200, dt_fs: float = 0.25, method: str = "exact"):
    atoms = molecule("CH3CH2OH")
    atoms.calc = SchNetCalculator(smooth_model(), method=method)
    result = run_md(
        atoms, steps, dt_fs, "nve", temperature_K=300.0, seed=0, log_interval=1, traj_interval=0, progress=False
    )
    assert result.steps_done == steps
    total = result.total_eV
    return float(np.abs(total - total[0]).max()), float(np.ptp(result.potential_eV))


@pytest.mark.parametrize("method", ["exact", "autograd", "tabulated"])
def test_nve_conserves_the_total_energy_of_a_smooth_model(method):
    deviation, potential_range = nve_deviation(method=method)
    assert potential_range > 50 * NVE_BOUND_EV  # the atoms really moved on the energy surface
    assert deviation < NVE_BOUND_EV


def test_nve_bound_is_exceeded_by_a_force_with_the_wrong_sign(monkeypatch):
    calculate = SchNetCalculator.calculate

    def flipped(self, *args, **kwargs):
        calculate(self, *args, **kwargs)
        self.results["forces"] = -self.results["forces"]

    monkeypatch.setattr(SchNetCalculator, "calculate", flipped)
    deviation, _ = nve_deviation()
    assert deviation > 10 * NVE_BOUND_EV


def test_nve_bound_is_exceeded_by_a_hard_cutoff(monkeypatch):
    """Without the cosine term the energy jumps whenever a pair crosses 3 A: not conserved. (The patch
    reaches the model's modules, so this runs the calculator's autograd path.)"""
    monkeypatch.setattr(CosineCutoff, "forward", lambda self, d: (d < self.cutoff).to(d.dtype))
    deviation, _ = nve_deviation(method="autograd")
    assert deviation > 10 * NVE_BOUND_EV


def test_initial_velocities_are_seeded_and_have_no_total_momentum():
    a, b, c = (molecule("CH3CH2OH") for _ in range(3))
    initial_velocities(a, 300.0, seed=1)
    initial_velocities(b, 300.0, seed=1)
    initial_velocities(c, 300.0, seed=2)
    np.testing.assert_array_equal(a.get_momenta(), b.get_momenta())
    assert not np.allclose(a.get_momenta(), c.get_momenta())
    np.testing.assert_allclose(a.get_momenta().sum(axis=0), 0.0, atol=1e-12)
    assert 50.0 < a.get_temperature() < 900.0
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0 K"):
        initial_velocities(a, -5.0, seed=0)


def test_langevin_is_reproducible_with_its_seed():
    def run(seed: int):
        atoms = molecule("CH3CH2OH")
        atoms.calc = SchNetCalculator(smooth_model())
        return run_md(
            atoms,
            20,
            0.5,
            "langevin",
            500.0,
            friction_per_fs=0.05,
            seed=seed,
            log_interval=5,
            traj_interval=0,
            progress=False,
        )

    first, again, other = run(3), run(3), run(4)
    atoms = molecule("CH3CH2OH")
    atoms.calc = SchNetCalculator(smooth_model())
    run_md(atoms, 10, 0.5, "langevin", 500.0, seed=0, log_interval=5, traj_interval=0, progress=False)
    np.testing.assert_allclose(atoms.get_momenta().sum(axis=0), 0.0, atol=1e-10)  # FixCom, not fixcm=True
    np.testing.assert_array_equal(first.total_eV, again.total_eV)
    assert not np.allclose(first.total_eV, other.total_eV)
    assert first.drift is None  # drift is reported for NVE only


def test_a_time_limit_ends_the_run_and_still_writes_its_files(tmp_path):
    atoms = molecule("CH3CH2OH")
    atoms.calc = SchNetCalculator(smooth_model())
    result = run_md(
        atoms, 1000, 0.5, "nve", 300.0, out=tmp_path, log_interval=10, traj_interval=10, progress=False, max_minutes=0.0
    )
    assert result.stop_reason == "time limit" and result.steps_done == 0 and result.drift is None
    assert len(read(tmp_path / "trajectory", ":")) == 1
    assert len((tmp_path / "energies.csv").read_text().splitlines()) == 2


def test_energy_drift_recovers_a_known_slope():
    t = np.arange(0.0, 10_000.0, 5.0)  # fs
    slope = 2e-6  # eV/fs
    noise = 1e-4 * np.sin(0.37 * t)
    drift = energy_drift(t, -100.0 + slope * t + noise, num_atoms=9)
    assert drift.slope_eV_per_fs == pytest.approx(slope, rel=1e-2)
    assert drift.meV_per_atom_per_ps == pytest.approx(slope * 1e6 / 9, rel=1e-2)
    assert drift.kcal_mol_per_ps == pytest.approx(slope * 1e3 / (units.kcal / units.mol), rel=1e-2)
    assert drift.std_eV == pytest.approx(np.std(slope * t + noise), rel=1e-9)
    with pytest.raises(ValueError, match="at least two samples"):
        energy_drift(t[:1], t[:1], 9)
    with pytest.raises(ValueError, match="not finite at sample 3"):
        energy_drift(t[:5], np.array([0.0, 0.0, 0.0, np.nan, 0.0]), 9)


def test_bonded_pairs_of_ethanol_are_its_eight_bonds():
    atoms = molecule("CH3CH2OH")
    pairs = bonded_pairs(atoms)
    assert len(pairs) == 8
    lengths = bond_lengths(atoms.positions, pairs)
    assert lengths.max() < 1.6 and lengths.min() > 0.9


def test_stability_monitor_flags_the_first_bond_beyond_the_tolerance():
    atoms = molecule("CH3CH2OH")
    pairs = bonded_pairs(atoms)
    d = bond_lengths(atoms.positions, pairs)
    monitor = StabilityMonitor(pairs, d - 0.1, d + 0.1, tolerance=0.5)
    i, j = (int(k) for k in pairs[-1])
    pos = atoms.positions.copy()
    direction = (pos[j] - pos[i]) / np.linalg.norm(pos[j] - pos[i])
    pos[j] += 0.55 * direction  # 0.45 A beyond the range: still stable
    assert monitor.check(10.0, pos) and monitor.stable
    pos[j] += 0.1 * direction  # 0.55 A beyond
    assert not monitor.check(20.0, pos)
    assert monitor.instability.time_fs == 20.0 and monitor.instability.pair == (i, j)
    assert not monitor.check(30.0, atoms.positions)  # stays unstable from the first bad frame on


def test_hr_mae_is_zero_for_equal_and_two_for_disjoint_distributions():
    a, b, c = DistanceHistogram(4.0, 40), DistanceHistogram(4.0, 40), DistanceHistogram(4.0, 40)
    two = np.array([[0.0, 0.0, 0.0], [1.05, 0.0, 0.0]])
    a.add(two)
    b.add(np.stack([two, two]))
    c.add(two * 3)
    assert hr_mae(a, b) == 0.0
    assert hr_mae(a, c) == pytest.approx(2.0)
    assert (a.density() * a.width).sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same bins"):
        hr_mae(a, DistanceHistogram(5.0, 40))


@pytest.fixture
def md_inputs(tmp_path):
    """A saved model, an ethanol start file and a small reference 'training set' of its distortions."""
    model_path = tmp_path / "model.pt"
    save_model(smooth_model(), model_path)
    atoms = molecule("CH3CH2OH")
    start = tmp_path / "start.xyz"
    write(start, atoms)
    rng = np.random.default_rng(0)
    frames = atoms.positions + rng.normal(scale=0.03, size=(20, len(atoms), 3))
    reference = tmp_path / "reference.npz"
    np.savez(reference, R=frames, z=atoms.numbers)
    return model_path, start, reference


def test_md_command_writes_trajectory_energies_plots_and_verdict(md_inputs, tmp_path, capsys):
    model_path, start, reference = md_inputs
    out = tmp_path / "run"
    summary = md_main(
        [
            str(model_path),
            str(start),
            "--steps",
            "40",
            "--dt",
            "0.25",
            "--temperature",
            "200",
            "--ensemble",
            "nve",
            "--log-interval",
            "5",
            "--traj-interval",
            "10",
            "--out",
            str(out),
            "--reference",
            str(reference),
            "--no-progress",
        ]
    )
    printed = capsys.readouterr().out
    assert "meV/atom/ps" in printed and "stable: no bond left" in printed and "MAE of h(r)" in printed
    frames = read(out / "trajectory", ":")
    assert len(frames) == 5  # steps 0, 10, 20, 30, 40
    assert frames[-1].get_potential_energy() == pytest.approx(
        SchNetCalculator(model_path).get_potential_energy(frames[-1]), rel=1e-12
    )
    with open(out / "energies.csv") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 1 + 9
    table = np.array(rows[1:], dtype=float)
    np.testing.assert_allclose(table[:, 0], np.arange(0, 41, 5) * 0.25)
    np.testing.assert_allclose(table[:, 3], table[:, 1] + table[:, 2], atol=1e-9)
    for png in ("energies.png", "hr.png"):
        assert (out / png).stat().st_size > 1000
    results = json.loads((out / "results.json").read_text())
    assert results == json.loads(json.dumps(summary))
    assert results["steps_done"] == 40 and results["stability"]["stable"]
    assert abs(results["drift"]["meV_per_atom_per_ps"]) < 10.0
    assert 0.0 <= results["hr_mae"] <= 2.0
    assert not list(out.glob(".*tmp-*"))  # no temporary file left behind


def test_md_command_stops_at_the_first_unstable_frame(md_inputs, tmp_path, capsys):
    """A tolerance of 0 A around a narrow reference range: the run ends at the first checked frame
    that leaves it, and says so."""
    model_path, start, reference = md_inputs
    out = tmp_path / "run"
    summary = md_main(
        [
            str(model_path),
            str(start),
            "--steps",
            "200",
            "--dt",
            "0.5",
            "--temperature",
            "600",
            "--ensemble",
            "langevin",
            "--log-interval",
            "5",
            "--traj-interval",
            "0",
            "--bond-tolerance",
            "0.0",
            "--out",
            str(out),
            "--reference",
            str(reference),
            "--no-progress",
        ]
    )
    assert "unstable at" in capsys.readouterr().out
    assert not summary["stability"]["stable"] and summary["steps_done"] < 200
    assert summary["stop_reason"] == "unstable"
    assert summary["stability"]["stable_ps"] == pytest.approx(summary["steps_done"] * 0.5 / 1000)
    assert summary["drift"] is None and not (out / "trajectory").exists()


def test_md_command_refuses_a_reference_of_other_atoms(md_inputs, tmp_path):
    model_path, start, _ = md_inputs
    water = tmp_path / "water.npz"
    np.savez(water, R=molecule("H2O").positions[None], z=molecule("H2O").numbers)
    with pytest.raises(ValueError, match=r"water\.npz: frames of 3 atoms, but START has 9"):
        md_main(
            [
                str(model_path),
                str(start),
                "--steps",
                "2",
                "--out",
                str(tmp_path / "o"),
                "--reference",
                str(water),
                "--no-progress",
            ]
        )
    shuffled = tmp_path / "shuffled.xyz"
    atoms = read(start)
    write(shuffled, Atoms(numbers=atoms.numbers, positions=atoms.positions[[0, 1, 2, 3, 4, 5, 8, 7, 6]][::-1]))
    with pytest.raises(ValueError, match="same atoms in the same order"):
        md_main(
            [
                str(model_path),
                str(shuffled),
                "--steps",
                "2",
                "--out",
                str(tmp_path / "o"),
                "--reference",
                str(md_inputs[2]),
                "--no-progress",
            ]
        )
    assert not (tmp_path / "o").exists()


def test_md_command_starts_from_a_frame_of_an_md17_npz(shared_data, tmp_path, capsys):
    """START may be an MD17-layout npz: ``--frame 3`` starts from ``R[3]`` with the file's ``z``."""
    npz = shared_data / "md17" / "md17_ethanol.npz"
    with np.load(npz) as data:
        expected_positions, expected_numbers = np.asarray(data["R"][3]), np.asarray(data["z"])
    model_path = tmp_path / "model.pt"
    save_model(smooth_model(), model_path)
    out = tmp_path / "run"
    summary = md_main(
        [str(model_path), str(npz), "--frame", "3", "--steps", "4", "--dt", "0.25", "--log-interval", "2"]
        + ["--traj-interval", "2", "--out", str(out), "--no-progress"]
    )
    assert f"from {npz}" in capsys.readouterr().out
    assert summary["frame"] == "3" and summary["steps_done"] == 4
    frames = read(out / "trajectory", ":")
    assert len(frames) == 3  # steps 0, 2, 4
    np.testing.assert_array_equal(frames[0].numbers, expected_numbers)
    np.testing.assert_array_equal(frames[0].positions, expected_positions)  # float64, not rounded on the way
    assert not np.array_equal(frames[-1].positions, expected_positions)  # and it moved from there


def test_md_command_names_the_npz_and_what_is_wrong_with_the_start(shared_data, tmp_path):
    npz = shared_data / "md17" / "md17_ethanol.npz"
    model_path = tmp_path / "model.pt"
    save_model(smooth_model(), model_path)

    def run(start, frame: str = "0") -> None:
        md_main([str(model_path), str(start), "--frame", frame, "--steps", "2", "--out", str(tmp_path / "o")])

    with pytest.raises(ValueError, match=r"md17_ethanol\.npz: --frame 1500 is out of range: field 'R' holds 1500"):
        run(npz, "1500")
    with pytest.raises(ValueError, match=r"md17_ethanol\.npz: --frame -1501 is out of range"):
        run(npz, "-1501")
    with pytest.raises(ValueError, match=r"md17_ethanol\.npz: --frame ':' is not one frame index"):
        run(npz, ":")
    with np.load(npz) as data:
        positions = np.asarray(data["R"][:5])
    no_z = tmp_path / "positions_only.npz"
    np.savez(no_z, R=positions)
    with pytest.raises(ValueError, match=r"positions_only\.npz: no field 'z' in this npz.*fields: \['R'\]"):
        run(no_z)
    no_r = tmp_path / "numbers_only.npz"
    np.savez(no_r, z=np.arange(1, 10), E=np.zeros(5))
    with pytest.raises(ValueError, match=r"numbers_only\.npz: no field 'R' in this npz"):
        run(no_r)
    wrong_z = tmp_path / "wrong_z.npz"
    np.savez(wrong_z, R=positions, z=np.ones(3, dtype=np.int64))
    with pytest.raises(ValueError, match=r"wrong_z\.npz: field 'z' must hold one integer atomic number per atom"):
        run(wrong_z)
    assert not (tmp_path / "o").exists()
