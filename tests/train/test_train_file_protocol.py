"""``pyg-schnet train file`` end to end: the real MD17 ethanol frames as extended XYZ and as an ASE database
(energies in eV), periodic copper cells with EMT stress, the three kinds of split, and bad input refused
before the output folder is written.

The first run goes through ``pyg_schnet.cli.main``; the others call the protocol module as the console
command does (``build_parser(prog).parse_args`` then ``run``); a tiny model, one epoch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import numpy as np
import pytest
import torch
from _trainer_tiny_data import TINY_FLAGS
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from pyg_schnet import load_model
from pyg_schnet.datasets import ASEDataset, RawFileError
from pyg_schnet.experiments.protocols import file as protocol

KCAL_PER_EV = 1.0 / (units.kcal / units.mol)
PROG = "pyg-schnet train file"


def train(argv: List[str]) -> dict:
    args = protocol.build_parser(prog=PROG).parse_args(argv)
    return protocol.run(args, command=["pyg-schnet", "train", "file", *argv])


def _frames(ethanol, frames) -> List[Atoms]:
    out = []
    for k in frames:
        atoms = Atoms(numbers=ethanol["z"], positions=ethanol["R"][k])
        atoms.info["REF_energy"] = float(ethanol["E"][k, 0]) / KCAL_PER_EV
        atoms.arrays["REF_forces"] = ethanol["F"][k] / KCAL_PER_EV
        out.append(atoms)
    return out


@pytest.fixture(scope="module")
def ethanol(shared_data):
    with np.load(shared_data / "md17" / "md17_ethanol.npz") as f:
        return {k: f[k] for k in ("z", "R", "E", "F")}


@pytest.fixture(scope="module")
def ethanol_extxyz(ethanol, tmp_path_factory) -> Path:
    import ase.io

    path = tmp_path_factory.mktemp("files") / "ethanol.extxyz"
    ase.io.write(path, _frames(ethanol, range(300)), format="extxyz")
    return path


def _common(out: Path, root: Path) -> List[str]:
    return ["--out", str(out), "--root", str(root), "--max-epochs", "1", "--batch-size", "16", "--seed", "2"]


KEYS = ["--units", "eV", "--energy-key", "REF_energy", "--forces-key", "REF_forces"]


def test_extxyz_run_records_units_and_the_calculator_converts_back(ethanol, ethanol_extxyz, tmp_path):
    from pyg_schnet.cli import main

    out, root = tmp_path / "run", tmp_path / "data"
    results = main(  # the console command itself
        ["train", "file", str(ethanol_extxyz), *KEYS, "--n-train", "64", "--n-val", "0.1", "--n-test", "32"]
        + _common(out, root)
        + TINY_FLAGS
    )
    assert results["benchmark"] == "file" and results["command"].startswith("pyg-schnet train file")
    assert results["row"] == "ethanol.extxyz, N = 64, energies + forces (rho = 100)"
    assert results["split"]["n_train"] == 64 and results["split"]["n_val"] == 30 and results["split"]["n_test"] == 32
    assert results["data"]["file_units"] == {"energy": "eV", "forces": "eV/Angstrom", "stress": None}
    assert results["data"]["units"] == {"energy": "kcal/mol", "force": "kcal/mol/Angstrom"}
    assert results["data"]["files"][0]["resolved"] == str(ethanol_extxyz.resolve())
    assert np.isfinite(results["test"]["energy_mae"]) and np.isfinite(results["test"]["force_mae"])
    assert json.loads((out / "results.json").read_text())["benchmark"] == "file"
    model = load_model(out / "model.pt")
    assert model.units["energy"] == "kcal/mol"
    # the calculator reports eV: the model's kcal/mol divided by the factor, for a test frame
    from pyg_schnet.simulation.ase import SchNetCalculator

    with np.load(out / "split.npz") as split:
        k = int(split["test"][0])
    atoms = Atoms(numbers=ethanol["z"], positions=ethanol["R"][k])
    atoms.calc = SchNetCalculator(out / "model.pt")
    z = torch.as_tensor(ethanol["z"])
    with torch.no_grad():
        kcal = model(z, torch.as_tensor(ethanol["R"][k], dtype=torch.float32)).item()
    assert atoms.get_potential_energy() == pytest.approx(kcal / KCAL_PER_EV, rel=1e-5)


def test_database_run_with_separate_validation_and_test_files(ethanol, tmp_path):
    import ase.db
    import ase.io

    db = tmp_path / "train.db"
    with ase.db.connect(db, append=False) as con:
        for atoms in _frames(ethanol, range(80)):
            energy = atoms.info.pop("REF_energy")
            forces = atoms.arrays.pop("REF_forces")
            atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
            con.write(atoms)
    val, test = tmp_path / "val.extxyz", tmp_path / "test.extxyz"
    ase.io.write(val, _frames(ethanol, range(80, 100)))
    ase.io.write(test, _frames(ethanol, range(100, 130)))
    out, root = tmp_path / "run", tmp_path / "data"
    with pytest.raises(ValueError, match="--n-val and --val-file both give the validation set"):
        train([str(db), "--units", "eV", "--val-file", str(val), "--n-val", "10"] + _common(out, root) + TINY_FLAGS)
    assert not out.exists()
    # the database's energies and forces are its rows' (keys 'energy', 'forces'); val/test files use REF_ keys
    with pytest.raises(RawFileError, match=rf"{val}: frame 0: no energy key 'energy'"):
        train([str(db), "--units", "eV", "--val-file", str(val), "--test-file", str(test)] + _common(out, root))
    assert not out.exists()
    for path in (val, test):  # the same keys for every file: rewrite them as a calculator's results
        frames = []
        for atoms in ase.io.read(path, ":"):
            atoms.calc = SinglePointCalculator(
                atoms, energy=atoms.info.pop("REF_energy"), forces=atoms.arrays.pop("REF_forces")
            )
            frames.append(atoms)
        ase.io.write(path, frames)
    results = train(
        [str(db), "--units", "eV", "--val-file", str(val), "--test-file", str(test)] + _common(out, root) + TINY_FLAGS
    )
    assert results["split"]["n_train"] == 80 and results["split"]["n_val"] == 20 and results["split"]["n_test"] == 30
    assert results["data"]["sets"] == {"train": "the 80 frames of PATH", "val": "--val-file", "test": "--test-file"}
    assert [Path(r["path"]).name for r in results["data"]["test_files"]] == ["test.extxyz"]
    assert np.isfinite(results["test"]["energy_mae"])


def test_split_file_repeats_an_earlier_split(ethanol_extxyz, tmp_path):
    root = tmp_path / "data"
    first = train(
        [str(ethanol_extxyz), *KEYS, "--n-train", "0.2", "--n-val", "30", "--max-epochs", "1"]
        + _common(tmp_path / "a", root)
        + TINY_FLAGS
    )
    assert first["split"]["n_train"] == 60 and first["split"]["n_test"] == 300 - 60 - 30
    with pytest.raises(ValueError, match="--split-file gives the whole split; leave out --n-train"):
        train([str(ethanol_extxyz), *KEYS, "--split-file", str(tmp_path / "a" / "split.npz"), "--n-train", "5"])
    second = train(
        [str(ethanol_extxyz), *KEYS, "--split-file", str(tmp_path / "a" / "split.npz")]
        + _common(tmp_path / "b", root)
        + TINY_FLAGS
    )
    with np.load(tmp_path / "a" / "split.npz") as a, np.load(tmp_path / "b" / "split.npz") as b:
        assert all(np.array_equal(a[k], b[k]) for k in ("train", "val", "test"))
    assert second["split"]["n_test"] == first["split"]["n_test"]


def _copper(path: Path, count: int) -> Path:
    import ase.io

    rng = np.random.default_rng(0)
    cells = []
    for k in range(count):
        atoms = bulk("Cu", "fcc", a=3.6 + 0.03 * rng.standard_normal(), cubic=True)
        if k % 3 == 0:
            atoms = atoms.repeat((2, 1, 1))
        atoms.rattle(0.05, seed=k)
        atoms.calc = EMT()
        atoms.get_potential_energy(), atoms.get_stress()
        cells.append(atoms)
    ase.io.write(path, cells)
    return path


def test_periodic_cells_with_stress_train_and_the_model_predicts_their_stress(tmp_path, capsys):
    path = _copper(tmp_path / "copper.extxyz", 24)
    out, root = tmp_path / "run", tmp_path / "data"
    flags = [str(path), "--units", "eV", "--stress-key", "stress", "--n-train", "12", "--n-val", "6"]
    with pytest.raises(ValueError, match=r"copper.extxyz holds periodic structures .* pass --cutoff"):
        train(flags + _common(out, root) + TINY_FLAGS)
    assert not out.exists()
    results = train(flags + ["--cutoff", "4.0"] + _common(out, root) + TINY_FLAGS)
    assert "no stress loss" not in capsys.readouterr().out  # --stress-key trains on the stress (weight 1000)
    assert results["config"]["train"]["stress_weight"] == 1000.0 and np.isfinite(results["test"]["stress_mae"])
    assert (
        results["data"]["periodic"] is True
        and results["data"]["file_units"]["stress"] == "eV/Angstrom/Angstrom/Angstrom"
    )
    assert np.isfinite(results["test"]["energy_mae"]) and np.isfinite(results["test"]["force_mae"])
    model = load_model(out / "model.pt")
    ds = ASEDataset(root, path, units="eV", stress_key="stress", log=False)
    assert ds.rebuild_reason is None  # the run's processed file, reused
    item = ds[0]
    energy, forces, stress = model.energy_forces_stress(
        item.z, item.pos, torch.zeros(item.num_nodes, dtype=torch.long), item.cell, item.pbc
    )
    assert stress.shape == item.stress.shape == (1, 3, 3) and torch.isfinite(stress).all()
    assert item.stress.abs().max() > 0  # the EMT stress travelled with the data


def test_bad_flags_are_refused_before_any_file(ethanol_extxyz, tmp_path, capsys):
    out, root = tmp_path / "run", tmp_path / "data"
    with pytest.raises(SystemExit):
        protocol.build_parser(prog=PROG).parse_args([str(ethanol_extxyz), "--n-train", "10"])
    assert "the following arguments are required: --units" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        protocol.build_parser(prog=PROG).parse_args([str(ethanol_extxyz), "--units", "eV", "--n-train", "1.5"])
    assert "'1.5': a fraction must lie in (0, 1]" in capsys.readouterr().err
    cases = [
        (["--units", "eVV", "--n-train", "10", "--n-val", "5"], ValueError, r"units: unknown unit 'eVV'"),
        ([*KEYS, "--n-val", "5"], ValueError, r"--n-train is required \(a count like 800 or a fraction like 0.8\)"),
        ([*KEYS, "--n-train", "10"], ValueError, r"--n-val is required"),
        ([*KEYS, "--n-train", "250", "--n-val", "50"], ValueError, r"leave no test frame of the 300 frames of PATH"),
        (["--units", "eV", "--n-train", "10", "--n-val", "5"], RawFileError, r"frame 0: no energy key 'energy'"),
        (["--units", "eV", "--forces-key", "none", "--rho", "5"], ValueError, r"--forces-key none reads no forces"),
        ([*KEYS, "--test-file", str(tmp_path / "absent.xyz")], FileNotFoundError, r"absent.xyz: no such file"),
    ]
    for flags, error, message in cases:
        with pytest.raises(error, match=message):
            train([str(ethanol_extxyz), *flags] + _common(out, root))
        assert not out.exists(), flags
