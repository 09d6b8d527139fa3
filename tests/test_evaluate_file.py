"""``pyg-schnet evaluate MODEL --dataset file --files ...``: a saved (untrained) model's errors on the user's
own files against a hand computation -- the model run by hand on the file's geometry, the file's values
converted by hand with :mod:`ase.units` -- for real MD17 ethanol frames in eV evaluated by a kcal/mol
model, and for periodic EMT copper cells with stress; the split of a training run, and ``train file`` then
``evaluate --dataset file`` reproducing the run's test errors; every refusal with its message.

Precision: a ``model.pt`` loads in float32 (:func:`pyg_schnet.load_model`), and ASEDataset stores
positions, cells and forces in float32, energies and stresses in float64. The hand computation runs the
same parameters in float64 on the same float32-rounded geometry, so the MAEs and RMSEs agree to the float32
model's precision: 1e-6 relative (measured: up to 5e-8). The ethanol energies are written relative to
the mean of the frames (a constant shift, as files of relative energies hold), so that float32 keeps 7
digits of them; the total energies (-97,000 kcal/mol) would keep only 0.01 kcal/mol. The same frames in
eV and in kcal/mol give the same errors to 1e-12 (energies) and 1e-7 (forces, float32) relative.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pytest
import torch
from ase import units

sys.path.insert(0, str(Path(__file__).resolve().parent / "datasets"))
from test_ase_files import _emt_cells, write_extxyz  # noqa: E402

from pyg_schnet import SchNet  # noqa: E402
from pyg_schnet.cli import main  # noqa: E402
from pyg_schnet.datasets import RawFileError, SplitIndices  # noqa: E402
from pyg_schnet.io.model_file import load_model, save_model  # noqa: E402

KCAL_MOL = units.kcal / units.mol  # 1 kcal/mol in eV, from ase.units alone
FRAMES = 12
TINY = dict(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=20)
RTOL = 1e-6  # the float32 model's precision (module docstring)


@pytest.fixture(scope="module")
def ethanol(shared_data) -> Dict[str, np.ndarray]:
    """12 real MD17 ethanol frames: energies relative to their mean (kcal/mol), forces (kcal/mol/A)."""
    with np.load(shared_data / "md17" / "md17_ethanol.npz") as f:
        z, R, E, F = f["z"], f["R"][:FRAMES], f["E"][:FRAMES, 0], f["F"][:FRAMES]
    return {"z": z, "R": R, "E": E - E.mean(), "F": F}


def _save(path: Path, energy_unit: str = "kcal/mol", seed: int = 0, **options) -> Path:
    torch.manual_seed(seed)
    model = SchNet(**TINY, **options)
    model.units = {"energy": energy_unit, "length": "Angstrom"}
    save_model(model, path)
    return path


def _hand_errors(
    model_path: Path,
    z: List[np.ndarray],
    pos: List[np.ndarray],
    energy: np.ndarray,
    forces: List[np.ndarray],
    cell: Optional[List[np.ndarray]] = None,
    stress: Optional[np.ndarray] = None,
) -> Dict[str, float]:
    """MAE / RMSE of the saved model, run in float64 frame by frame on the float32-rounded geometry, against
    true values already in the model's unit."""
    model = load_model(model_path).double()
    e_err, f_err, s_err = [], [], []
    for k in range(len(z)):
        zk = torch.as_tensor(z[k], dtype=torch.long)
        pk = torch.as_tensor(pos[k], dtype=torch.float32).double().requires_grad_(True)
        batch = torch.zeros(len(zk), dtype=torch.long)
        if cell is None:
            e, f = model.energy_and_forces(zk, pk, batch)
        else:
            ck = torch.as_tensor(cell[k], dtype=torch.float32).double().reshape(1, 3, 3)
            pbc = torch.ones(1, 3, dtype=torch.bool)
            e, f, s = model.energy_forces_stress(zk, pk, batch, ck, pbc)
            s_err.append(s.detach().numpy().reshape(3, 3) - stress[k])
        e_err.append(float(e.detach()) - energy[k])
        f_err.append(f.detach().numpy() - forces[k])
    de, df = np.array(e_err), np.concatenate(f_err)
    out = {
        "energy_mae": np.abs(de).mean(),
        "energy_rmse": np.sqrt((de**2).mean()),
        "force_mae": np.abs(df).mean(),
        "force_rmse": np.sqrt((df**2).mean()),
    }
    if s_err:
        ds = np.array(s_err)
        out["stress_mae"], out["stress_rmse"] = np.abs(ds).mean(), np.sqrt((ds**2).mean())
    return out


ETHANOL_KEYS = ["--energy-key", "REF_energy", "--forces-key", "REF_forces"]


def test_ev_file_on_a_kcal_model_equals_the_hand_computation(ethanol, tmp_path, capsys):
    e_ev, f_ev = ethanol["E"] * KCAL_MOL, ethanol["F"] * KCAL_MOL  # what a DFT code writes: eV, eV/A
    ev_file = write_extxyz(tmp_path / "ethanol_ev.extxyz", ethanol["z"], ethanol["R"], e_ev, f_ev)
    model = _save(tmp_path / "model.pt")
    out = tmp_path / "eval.json"
    res = main(["evaluate", str(model), "--dataset", "file", "--files", str(ev_file), "--units", "eV"] + ETHANOL_KEYS)
    res_json = main(
        ["evaluate", str(model), "--dataset", "file", "--files", str(ev_file), "--units", "eV", "--out", str(out)]
        + ETHANOL_KEYS
    )
    # by hand: the file's eV values divided by 1 kcal/mol in eV (ase.units), the model run in float64
    hand = _hand_errors(model, [ethanol["z"]] * FRAMES, list(ethanol["R"]), e_ev / KCAL_MOL, list(f_ev / KCAL_MOL))
    for key, value in hand.items():
        assert res[key] == pytest.approx(value, rel=RTOL), key
    assert res["num_molecules"] == FRAMES and res["unit"] == "kcal/mol" and res["subset"] == "all"
    assert res["dataset"] == "file" and res["files"] == [str(ev_file)]
    assert res["file_units"] == {"energy": "eV", "forces": "eV/Angstrom", "stress": None}
    assert "stress_mae" not in res
    # the file's values taken as kcal/mol unconverted would give other errors: the check can tell
    unconverted = _hand_errors(model, [ethanol["z"]] * FRAMES, list(ethanol["R"]), e_ev, list(f_ev))
    assert abs(unconverted["force_mae"] - res["force_mae"]) > 0.1 * res["force_mae"]
    assert abs(unconverted["energy_mae"] - res["energy_mae"]) > 0.01 * res["energy_mae"]
    printed = capsys.readouterr().out
    assert f"{model} on file (all, {FRAMES} molecules): energy MAE {res['energy_mae']:.4f} kcal/mol" in printed
    assert f"force MAE {res['force_mae']:.4f} kcal/mol/Å" in printed
    written = json.loads(out.read_text())
    assert written["energy_mae"] == res_json["energy_mae"] == res["energy_mae"]
    assert written["force_rmse"] == res["force_rmse"]

    # the same frames in kcal/mol: the same errors (energies float64, forces stored in float32)
    kcal_file = write_extxyz(tmp_path / "ethanol_kcal.extxyz", ethanol["z"], ethanol["R"], ethanol["E"], ethanol["F"])
    kcal = main(
        ["evaluate", str(model), "--dataset", "file", "--files", str(kcal_file), "--units", "kcal/mol"] + ETHANOL_KEYS
    )
    assert kcal["energy_mae"] == pytest.approx(res["energy_mae"], rel=1e-12)
    assert kcal["energy_rmse"] == pytest.approx(res["energy_rmse"], rel=1e-12)
    assert kcal["force_mae"] == pytest.approx(res["force_mae"], rel=1e-7)

    # a model recording eV: the eV file is read unconverted, the errors come out in eV
    ev_model = _save(tmp_path / "model_ev.pt", energy_unit="eV")
    in_ev = main(
        ["evaluate", str(ev_model), "--dataset", "file", "--files", str(ev_file), "--units", "eV"] + ETHANOL_KEYS
    )
    hand_ev = _hand_errors(ev_model, [ethanol["z"]] * FRAMES, list(ethanol["R"]), e_ev, list(f_ev))
    assert in_ev["unit"] == "eV"
    for key, value in hand_ev.items():
        assert in_ev[key] == pytest.approx(value, rel=RTOL), key


def test_split_of_a_training_run_selects_the_subset(ethanol, tmp_path):
    path = write_extxyz(tmp_path / "ethanol.extxyz", ethanol["z"], ethanol["R"], ethanol["E"], ethanol["F"])
    model = _save(tmp_path / "model.pt", seed=1)
    test = [2, 7, 11]
    SplitIndices(train=torch.tensor([0, 1, 3, 4, 5, 6]), val=torch.tensor([8, 9, 10]), test=torch.tensor(test)).save(
        tmp_path / "split.npz"
    )
    flags = ["--dataset", "file", "--files", str(path), "--units", "kcal/mol", "--root", str(tmp_path / "root")]
    res = main(["evaluate", str(model), *flags, *ETHANOL_KEYS, "--split", str(tmp_path / "split.npz")])
    hand = _hand_errors(
        model, [ethanol["z"]] * 3, list(ethanol["R"][test]), ethanol["E"][test], list(ethanol["F"][test])
    )
    assert res["subset"] == "test" and res["num_molecules"] == 3
    for key, value in hand.items():
        assert res[key] == pytest.approx(value, rel=RTOL), key
    assert any((tmp_path / "root" / "processed").iterdir())  # --root caches the processed file
    # --energies-only: the file need hold no forces
    energies = write_extxyz(tmp_path / "energies.extxyz", ethanol["z"], ethanol["R"], ethanol["E"], None)
    only = main(
        ["evaluate", str(model), "--dataset", "file", "--files", str(energies), "--units", "kcal/mol"]
        + ["--energy-key", "REF_energy", "--energies-only"]
    )
    assert only["force_mae"] != only["force_mae"]  # NaN: not evaluated
    full = _hand_errors(model, [ethanol["z"]] * FRAMES, list(ethanol["R"]), ethanol["E"], list(ethanol["F"]))
    assert only["energy_mae"] == pytest.approx(full["energy_mae"], rel=RTOL)


def test_periodic_copper_with_stress_equals_the_hand_computation(tmp_path, capsys):
    import ase.io

    path = tmp_path / "copper.extxyz"
    ase.io.write(path, _emt_cells(6))  # EMT energy, forces, stress (eV, eV/A, eV/A^3) and the lattice
    frames = ase.io.read(path, ":")  # the values as the file holds them
    model = _save(tmp_path / "model.pt", cutoff=4.0, rbf_stop=4.0)
    res = main(
        ["evaluate", str(model), "--dataset", "file", "--files", str(path), "--units", "eV", "--stress-key", "stress"]
    )
    hand = _hand_errors(
        model,
        [a.numbers for a in frames],
        [a.positions for a in frames],
        np.array([a.get_potential_energy() for a in frames]) / KCAL_MOL,
        [a.get_forces() / KCAL_MOL for a in frames],
        cell=[a.cell.array for a in frames],
        stress=np.array([a.get_stress(voigt=False) for a in frames]) / KCAL_MOL,  # kcal/mol/A^3
    )
    assert set(hand) == {"energy_mae", "energy_rmse", "force_mae", "force_rmse", "stress_mae", "stress_rmse"}
    for key, value in hand.items():
        assert res[key] == pytest.approx(value, rel=RTOL), key
    assert res["file_units"]["stress"] == "eV/Angstrom/Angstrom/Angstrom"
    assert f"stress MAE {res['stress_mae']:.4f} kcal/mol/Å³" in capsys.readouterr().out
    # the stress in GPa in the file: the same errors once converted
    gpa = tmp_path / "copper_gpa.extxyz"
    for atoms in frames:
        atoms.info["stress_gpa"] = atoms.get_stress(voigt=False) / units.GPa
    ase.io.write(gpa, frames)
    in_gpa = main(
        ["evaluate", str(model), "--dataset", "file", "--files", str(gpa), "--units", "eV"]
        + ["--stress-key", "stress_gpa", "--stress-unit", "GPa"]
    )
    assert in_gpa["stress_mae"] == pytest.approx(hand["stress_mae"], rel=RTOL)


def test_bad_input_is_refused_with_a_message(ethanol, tmp_path):
    import ase.io

    path = write_extxyz(tmp_path / "ethanol.extxyz", ethanol["z"], ethanol["R"], ethanol["E"], ethanol["F"])
    model = _save(tmp_path / "model.pt")
    base = ["evaluate", str(model), "--dataset", "file", "--files", str(path)]
    with pytest.raises(
        RawFileError,
        match=rf"{path}: frame 0: no energy key 'energy' \(a structure without the requested property\); the frame "
        r"has info \['REF_energy'\]; arrays \['REF_forces'\]",
    ):
        main([*base, "--units", "eV", "--forces-key", "REF_forces"])
    with pytest.raises(RawFileError, match=rf"{path}: frame 0: no forces key 'forces'.*arrays \['REF_forces'\]"):
        main([*base, "--units", "eV", "--energy-key", "REF_energy"])
    with pytest.raises(ValueError, match=r"units: unknown unit 'eVV': 'eVV' is not a symbol of ase.units"):
        main([*base, "--units", "eVV", *ETHANOL_KEYS])
    with pytest.raises(ValueError, match=r"forces_unit: unknown unit 'eV/Bohrr': 'Bohrr' is not a symbol"):
        main([*base, "--units", "eV", "--forces-unit", "eV/Bohrr", *ETHANOL_KEYS])
    with pytest.raises(ValueError, match=r"--dataset file needs --units, the energy unit of the files"):
        main([*base, *ETHANOL_KEYS])
    with pytest.raises(ValueError, match=r"--dataset file needs --files PATH"):
        main(["evaluate", str(model), "--dataset", "file", "--units", "eV"])
    with pytest.raises(ValueError, match=r"--files and --units apply to --dataset file only, not md17"):
        main(
            [
                "evaluate",
                str(model),
                "--dataset",
                "md17",
                "--root",
                str(tmp_path),
                "--files",
                str(path),
                "--units",
                "eV",
            ]
        )
    with pytest.raises(ValueError, match=r"--dataset md17 needs --root"):
        main(["evaluate", str(model), "--dataset", "md17"])
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / 'nope.extxyz'}: no such file"):
        main(["evaluate", str(model), "--dataset", "file", "--files", str(tmp_path / "nope.extxyz"), "--units", "eV"])
    with pytest.raises(ValueError, match=r"forces are to be evaluated, but --forces-key none reads no forces"):
        from pyg_schnet.experiments.evaluate import evaluate_model

        evaluate_model(model, "file", None, files=[path], file_options={"units": "eV", "forces_key": None}, forces=True)
    # a periodic file and a model without a cutoff
    copper = tmp_path / "copper.extxyz"
    ase.io.write(copper, _emt_cells(2))
    with pytest.raises(
        ValueError,
        match=rf"{copper}: frame 0 is periodic \(a cell and pbc \[True, True, True\]\), but the model {model} has "
        r"cutoff=None \(all pairs\): a periodic structure needs a model with a finite cutoff",
    ):
        main(["evaluate", str(model), "--dataset", "file", "--files", str(copper), "--units", "eV"])


def test_train_file_then_evaluate_file_reproduces_the_test_errors(shared_data, tmp_path):
    with np.load(shared_data / "md17" / "md17_ethanol.npz") as f:  # total energies, as a DFT code writes them
        z, R, E, F = f["z"], f["R"][:48], f["E"][:48, 0], f["F"][:48]
    path = write_extxyz(tmp_path / "ethanol.extxyz", z, R, E * KCAL_MOL, F * KCAL_MOL)
    out, keys = tmp_path / "run", ["--units", "eV", *ETHANOL_KEYS]
    tiny = ["--hidden-channels", "8", "--num-filters", "8", "--num-interactions", "1", "--num-gaussians", "20"]
    results = main(
        ["train", "file", str(path), *keys, "--n-train", "24", "--n-val", "8", "--out", str(out), "--max-epochs", "1"]
        + ["--root", str(tmp_path / "data"), "--threads", "1", "--no-progress", *tiny]
    )
    errors = main(
        ["evaluate", str(out / "model.pt"), "--dataset", "file", "--files", str(path), *keys]
        + ["--split", str(out / "split.npz"), "--subset", "test"]
    )
    assert errors["num_molecules"] == results["test"]["num_molecules"] == 16
    for key in ("energy_mae", "energy_rmse", "force_mae", "force_rmse"):
        assert errors[key] == pytest.approx(results["test"][key], rel=1e-6), key
