"""MD runs that lose nothing (issue 20, defects 2, 4, 6, 11-13): trajectory and energies written as the
run goes and kept after SIGTERM, ``kill -9`` or an exception; a diverging run named as such with its step;
Langevin leaves fixed atoms and the caller's constraints alone; flags no run can use are refused."""

from __future__ import annotations

import csv
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import molecule
from ase.calculators.calculator import Calculator, all_changes
from ase.constraints import FixAtoms, FixBondLength
from ase.io import read, write

from pyg_schnet import SchNet
from pyg_schnet.experiments.md_command import main as md_main
from pyg_schnet.io.model_file import save_model
from pyg_schnet.io.run_lock import LOCK_NAME
from pyg_schnet.simulation.ase import SchNetCalculator
from pyg_schnet.simulation.md import StabilityMonitor, bond_lengths, bonded_pairs, run_md


def small_model() -> SchNet:
    torch.manual_seed(0)
    model = SchNet(
        hidden_channels=8,
        num_filters=8,
        num_interactions=1,
        num_gaussians=20,
        rbf_stop=3.0,
        cutoff=3.0,
        output_hidden=8,
    )
    model.set_standardization(mean=0.0, std=1.0)
    model.units = {"energy": "kcal/mol", "length": "Angstrom"}
    return model


@pytest.fixture
def inputs(tmp_path):
    model_path = save_model(small_model(), tmp_path / "model.pt")
    write(tmp_path / "start.xyz", molecule("CH3CH2OH"))
    return model_path, tmp_path / "start.xyz"


def csv_rows(path: Path) -> np.ndarray:
    with open(path) as handle:
        rows = list(csv.reader(handle))
    return np.array(rows[1:], dtype=float)


# ------------------------------------------------------------------------------- signals, kills
def _start_md(inputs, out: Path) -> subprocess.Popen:
    model_path, start = inputs
    command = [sys.executable, "-m", "pyg_schnet", "md", str(model_path), str(start), "--steps", "10000000"]
    command += ["--dt", "0.1", "--log-interval", "5", "--traj-interval", "5", "--out", str(out), "--no-progress"]
    command += ["--threads", "1", "--keep-going"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_frames(proc: subprocess.Popen, out: Path, frames: int, timeout_s: float = 240.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"md ended early: {proc.communicate()}")
        csv_file = out / "energies.csv"
        if csv_file.exists() and len(csv_file.read_text().splitlines()) > frames:
            return
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("md wrote no frames in time")


def test_sigterm_stops_md_cleanly_and_keeps_what_was_written(inputs, tmp_path):
    out = tmp_path / "run"
    proc = _start_md(inputs, out)
    _wait_for_frames(proc, out, 4)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "stopped: terminated" in stdout and "SIGTERM: the run stopped cleanly after step" in stdout
    results = json.loads((out / "results.json").read_text())
    assert results["stop_reason"] == "terminated" and results["steps_done"] >= 20
    frames = read(out / "trajectory", ":")
    table = csv_rows(out / "energies.csv")
    assert len(frames) == len(table) == results["steps_done"] // 5 + 1  # every recorded step, both files
    np.testing.assert_allclose([f.get_potential_energy() for f in frames], table[:, 1], rtol=0, atol=1e-9)
    assert sorted(p.name for p in out.iterdir()) == ["energies.csv", "energies.png", "results.json", "trajectory"]


def test_after_kill_9_the_frames_so_far_are_readable_and_the_lock_is_taken_over(inputs, tmp_path):
    out = tmp_path / "run"
    proc = _start_md(inputs, out)
    _wait_for_frames(proc, out, 4)
    proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate(timeout=60)
    frames = read(out / "trajectory", ":")  # readable: every frame flushed as a whole
    table = csv_rows(out / "energies.csv")
    assert len(frames) >= 4 and len(table) >= len(frames) - 1
    np.testing.assert_allclose(
        [f.get_potential_energy() for f in frames[:-1]], table[: len(frames) - 1, 1], rtol=0, atol=1e-9
    )
    assert (out / LOCK_NAME).exists() and not list(out.glob(".*tmp-*"))
    model_path, start = inputs
    flags = ["--steps", "4", "--log-interval", "2", "--traj-interval", "2", "--no-progress", "--out", str(out)]
    summary = md_main([str(model_path), str(start), *flags])  # the dead run's lock does not block
    assert summary["steps_done"] == 4 and len(read(out / "trajectory", ":")) == 3
    assert not (out / LOCK_NAME).exists()


def test_a_second_md_run_into_the_same_folder_is_refused(inputs, tmp_path):
    from pyg_schnet.io.run_lock import RunFolderLocked

    out = tmp_path / "run"
    proc = _start_md(inputs, out)
    try:
        _wait_for_frames(proc, out, 1)
        model_path, start = inputs
        with pytest.raises(RunFolderLocked, match=rf"run is being written by another run \(process {proc.pid}"):
            md_main([str(model_path), str(start), "--steps", "2", "--out", str(out), "--no-progress"])
    finally:
        proc.kill()
        proc.communicate()


# --------------------------------------------------------------------------- errors, blow-ups
def test_an_exception_mid_run_keeps_the_frames_written(tmp_path, monkeypatch, capsys):
    calculate = SchNetCalculator.calculate
    calls = []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 33:
            raise RuntimeError("disk full, say")
        calculate(self, *args, **kwargs)

    monkeypatch.setattr(SchNetCalculator, "calculate", failing)
    atoms = molecule("CH3CH2OH")
    atoms.calc = SchNetCalculator(small_model())
    with pytest.raises(RuntimeError, match="disk full"):
        run_md(atoms, 100, 0.25, out=tmp_path / "run", log_interval=5, traj_interval=10, progress=False)
    # call 1 is step 0, call k the forces of step k - 1: step 30 was the last one recorded
    frames = read(tmp_path / "run" / "trajectory", ":")
    assert len(frames) == 4  # steps 0, 10, 20, 30
    table = csv_rows(tmp_path / "run" / "energies.csv")
    np.testing.assert_allclose(table[:, 0], np.arange(0, 31, 5) * 0.25)
    assert "MD stopped by an error after step 31; kept 4 trajectory frames and 7 energy rows" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["energies.csv", "trajectory"]


def test_a_run_that_flies_apart_is_reported_as_a_blow_up_at_its_step(tmp_path, monkeypatch):
    """From the 23rd model call on, atom 0 feels 1e9 eV/A: at step 23 it is far beyond 10,000 A, and the
    calculator refuses to evaluate there. That is the run diverging, not a unit mistake in the input."""
    calculate = SchNetCalculator.calculate
    calls = []

    def exploding(self, *args, **kwargs):
        calculate(self, *args, **kwargs)
        calls.append(1)
        if len(calls) >= 23:
            self.results["forces"] = self.results["forces"].copy()
            self.results["forces"][0] += 1e9

    monkeypatch.setattr(SchNetCalculator, "calculate", exploding)
    atoms = molecule("CH3CH2OH")
    atoms.calc = SchNetCalculator(small_model())
    result = run_md(atoms, 100, 0.5, out=tmp_path / "run", log_interval=5, traj_interval=5, progress=False)
    assert result.stop_reason == "blew up" and result.blow_up.step == 23
    text = result.blow_up.summary()
    assert text.startswith("the simulation blew up at step 23 (0.0115 ps): atom 0 flew apart to position")
    assert "beyond 10,000 A" in text and "unit mistake" not in text
    assert result.steps_done == 20 and len(read(tmp_path / "run" / "trajectory", ":")) == 5  # steps 0..20 kept


class NaNAfter(Calculator):
    """A harmonic toy potential whose energy turns NaN after ``calls`` evaluations."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, calls: int):
        super().__init__()
        self.left = calls

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        d = self.atoms.positions - self.atoms.get_center_of_mass()
        self.left -= 1
        self.results = {"energy": 0.5 * float((d**2).sum()) if self.left > 0 else float("nan"), "forces": -d}


def test_a_non_finite_energy_is_a_blow_up_at_the_step_recorded():
    atoms = molecule("CH3CH2OH")
    atoms.calc = NaNAfter(12)
    result = run_md(atoms, 100, 0.5, log_interval=5, traj_interval=0, progress=False)
    assert result.stop_reason == "blew up" and result.blow_up.step == 15
    assert "the potential energy is nan" in result.blow_up.summary()
    assert np.isfinite(result.potential_eV).all() and len(result.potential_eV) == 3  # steps 0, 5, 10


class RefusesNonFiniteAfter(NaNAfter):
    """NaNAfter as SchNetCalculator behaves: a non-finite result is refused with a FloatingPointError."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if not np.isfinite(self.results["energy"]):
            self.results = {}
            raise FloatingPointError("SchNetCalculator: the model returned a non-finite energy (nan)")


def test_a_calculator_refusing_a_non_finite_result_is_a_blow_up_at_that_step():
    atoms = molecule("CH3CH2OH")
    atoms.calc = RefusesNonFiniteAfter(12)
    result = run_md(atoms, 100, 0.5, log_interval=5, traj_interval=0, progress=False)
    assert result.stop_reason == "blew up" and result.blow_up.step == 11  # call 12: the forces of step 11
    assert "the calculator returned no finite result (SchNetCalculator: the model returned" in result.blow_up.summary()
    assert np.isfinite(result.potential_eV).all() and len(result.potential_eV) == 3  # steps 0, 5, 10


# ---------------------------------------------------------------------------------- constraints
def test_langevin_does_not_move_fixed_atoms_and_restores_the_callers_constraints():
    atoms = molecule("CH3CH2OH")
    fixed = FixAtoms(indices=[0, 2])
    atoms.set_constraint(fixed)
    before = atoms.positions.copy()
    atoms.calc = SchNetCalculator(small_model())
    run_md(atoms, 40, 0.5, "langevin", 500.0, friction_per_fs=0.05, log_interval=5, traj_interval=0, progress=False)
    np.testing.assert_allclose(atoms.positions[[0, 2]], before[[0, 2]], rtol=0, atol=1e-12)
    assert not np.allclose(atoms.positions[1], before[1])  # the others moved
    assert atoms.constraints == [fixed]

    free = molecule("CH3CH2OH")
    bond = FixBondLength(0, 1)
    free.set_constraint(bond)
    free.calc = SchNetCalculator(small_model())
    run_md(free, 20, 0.5, "langevin", 500.0, log_interval=5, traj_interval=0, progress=False)
    assert free.constraints == [bond]  # the FixCom the run used is gone again
    bare = molecule("CH3CH2OH")
    bare.calc = SchNetCalculator(small_model())
    run_md(bare, 10, 0.5, "langevin", 500.0, log_interval=5, traj_interval=0, progress=False)
    assert bare.constraints == []


# ------------------------------------------------------------------------------ flags and inputs
def test_the_instability_message_uses_the_tolerance_given(inputs, tmp_path, capsys):
    atoms = molecule("CH3CH2OH")
    pairs = bonded_pairs(atoms)
    d = bond_lengths(atoms.positions, pairs)
    monitor = StabilityMonitor(pairs, d, d, tolerance=0.2)
    pos = atoms.positions.copy()
    pos[pairs[0, 1]] += 1.0
    assert not monitor.check(5.0, pos)
    assert "by more than 0.2 A" in monitor.instability.summary()
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"StabilityMonitor: tolerance \(Angstrom\) must be a finite number"):
            StabilityMonitor(pairs, d, d, tolerance=bad)
    model_path, start = inputs
    md_main([str(model_path), str(start), "--steps", "200", "--dt", "0.5", "--temperature", "600"] + [
        "--bond-tolerance", "0.01", "--log-interval", "5", "--out", str(tmp_path / "run"), "--no-progress"
    ])  # fmt: skip
    assert "by more than 0.01 A" in capsys.readouterr().out


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--max-minutes", "-1"], r"--max-minutes must be a finite number in \[0, inf\), got -1\.0"),
        (["--max-minutes", "nan"], r"--max-minutes must be a finite number in \[0, inf\), got nan"),
        (["--bond-tolerance", "-0.5"], r"--bond-tolerance \(Angstrom\) must be a finite number in \[0, inf\)"),
        (["--seed", str(2**64)], r"--seed must be an integer from 0 to 2\*\*64 - 1 = 18446744073709551615"),
        (["--seed", "-1"], r"--seed must be an integer from 0 to 2\*\*64 - 1 .*got -1"),
    ],
)
def test_md_refuses_flags_no_run_can_use_and_creates_no_folder(inputs, tmp_path, flags, message):
    model_path, start = inputs
    with pytest.raises(ValueError, match=message):
        md_main([str(model_path), str(start), "--steps", "5", "--out", str(tmp_path / "o"), "--no-progress", *flags])
    assert not (tmp_path / "o").exists()


def test_pickled_npz_files_are_refused_naming_the_file(inputs, tmp_path):
    model_path, start = inputs
    atoms = molecule("CH3CH2OH")
    pickled = tmp_path / "pickled.npz"
    pickled.write_bytes(pickle.dumps({"R": atoms.positions[None], "z": atoms.numbers}))
    objects = tmp_path / "objects.npz"
    np.savez(objects, R=np.array([atoms.positions], dtype=object), z=atoms.numbers)
    good = tmp_path / "reference.npz"
    np.savez(good, R=atoms.positions[None] + np.zeros((3, 1, 1)), z=atoms.numbers)
    split = tmp_path / "split.npz"
    np.savez(split, train=np.array([0, 1], dtype=object), val=np.array([2]), test=np.array([], dtype=np.int64))

    def run(*flags):
        md_main([str(model_path), str(start), "--steps", "2", "--out", str(tmp_path / "o"), "--no-progress", *flags])

    for bad in (pickled, objects):
        with pytest.raises(ValueError, match=rf"{bad.name}: holds pickled Python objects .* never loaded"):
            run("--reference", str(bad))
    for bad in (pickled, split):  # a pickle, and a split.npz with an object array
        with pytest.raises(ValueError, match=rf"{bad.name}: holds pickled Python objects"):
            run("--reference", str(good), "--reference-split", str(bad))
    assert not (tmp_path / "o").exists()


def test_a_run_failing_at_its_first_step_leaves_no_empty_out_folder(inputs, tmp_path):
    """The calculator refuses the start structure at step 0 (an element beyond the model's embedding):
    the folder the run created for its files is gone again."""
    model_path, _ = inputs
    atoms = molecule("CH3CH2OH")
    atoms.numbers[0] = 105  # beyond max_z = 100
    write(tmp_path / "start.xyz", atoms)
    with pytest.raises(ValueError, match="atomic number 105"):
        md_main([str(model_path), str(tmp_path / "start.xyz"), "--steps", "5", "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    with pytest.raises(ValueError, match="atomic number 105"):
        md_main([str(model_path), str(tmp_path / "start.xyz"), "--steps", "5", "--out", str(kept)])
    assert kept.is_dir() and not any(kept.iterdir())  # a folder that was there stays
    assert os.listdir(tmp_path)  # (the inputs)
