"""ASEDataset: the real MD17 ethanol frames written as extended XYZ and as ASE databases (energies in eV)
read back equal to what MD17 reads from the npz; periodic structures with stress; lists of Atoms; the
rebuild when a file changes; every bad input with its message.

The extended XYZ files are written here line by line with 17 significant digits (ASE's own writer
rounds arrays to 8 decimals), so the unit round trip kcal/mol -> eV -> kcal/mol can be compared to 1e-9.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import chemical_symbols
from torch_geometric.data import Batch

from pyg_schnet import SchNet
from pyg_schnet.datasets import MD17, ASEDataset, RawFileError
from pyg_schnet.datasets.iso17 import read_ase_db
from pyg_schnet.datasets.split import count_of, random_split, split_sizes

KCAL_PER_EV = 1.0 / (units.kcal / units.mol)  # independent of pyg_schnet.io.units


def _g(x: float) -> str:
    return "%.17g" % float(x)


def write_extxyz(
    path: Path,
    z: np.ndarray,
    positions: np.ndarray,
    energies: Optional[Sequence[object]],
    forces: Optional[np.ndarray],
    energy_key: str = "REF_energy",
    forces_key: str = "REF_forces",
    symbols: Optional[Sequence[str]] = None,
    force_columns: int = 3,
) -> Path:
    """An extended XYZ file, one frame per row of ``positions`` (M, n, 3), floats to 17 digits; an
    energy of ``None`` leaves the key out of that frame."""
    symbols = list(symbols) if symbols is not None else [chemical_symbols[int(k)] for k in z]
    lines = []
    for m in range(positions.shape[0]):
        props = "species:S:1:pos:R:3" + (f":{forces_key}:R:{force_columns}" if forces is not None else "")
        info = f'Properties={props} pbc="F F F"'
        if energies is not None and energies[m] is not None:
            value = energies[m] if isinstance(energies[m], str) else _g(energies[m])
            info += f" {energy_key}={value}"
        lines += [str(len(symbols)), info]
        for i, symbol in enumerate(symbols):
            row = [symbol, *(_g(c) for c in positions[m, i])]
            if forces is not None:
                row += [_g(c) for c in forces[m, i, :force_columns]]
            lines.append(" ".join(row))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def ethanol(shared_data) -> Dict[str, np.ndarray]:
    with np.load(shared_data / "md17" / "md17_ethanol.npz") as f:
        return {k: f[k] for k in ("z", "R", "E", "F")}


@pytest.fixture(scope="module")
def md17(shared_data, tmp_path_factory) -> MD17:
    root = tmp_path_factory.mktemp("md17")
    (root / "raw").mkdir()
    os.symlink(shared_data / "md17" / "md17_ethanol.npz", root / "raw" / "md17_ethanol.npz")
    return MD17(root, "ethanol", log=False)


def _assert_same_frames(ds: ASEDataset, md17: MD17) -> None:
    """Same atoms, positions, energies and forces (float64 comparison, 1e-9 kcal/mol and kcal/mol/Angstrom)."""
    a, b = ds._data, md17._data
    assert len(ds) == len(md17) == 1500
    assert torch.equal(a.z, b.z)
    assert torch.equal(a.pos, b.pos)  # float32 of the same float64 positions
    assert a.energy.dtype == torch.float64
    assert torch.allclose(a.energy, b.energy, rtol=0, atol=1e-9)
    assert torch.allclose(a.force.double(), b.force.double(), rtol=0, atol=1e-9)
    assert ds.energy_unit == md17.energy_unit == "kcal/mol"


def test_extxyz_in_ev_reads_as_md17_reads_the_npz(ethanol, md17, tmp_path):
    path = write_extxyz(
        tmp_path / "ethanol.extxyz",
        ethanol["z"],
        ethanol["R"],
        ethanol["E"][:, 0] / KCAL_PER_EV,
        ethanol["F"] / KCAL_PER_EV,
    )
    ds = ASEDataset(tmp_path / "root", path, units="eV", energy_key="REF_energy", forces_key="REF_forces", log=False)
    _assert_same_frames(ds, md17)
    assert ds.file_units == {"energy": "eV", "forces": "eV/Angstrom", "stress": None}
    assert ds.force_unit == "kcal/mol/Angstrom" and not ds.periodic
    assert ds[7].frame_index.item() == 7 and ds[7].file_index.item() == 0
    # the processed file holds tensors only and records the raw file's sha256
    assert ds.build_record["raw_files"][0]["name"] == str(path)
    assert ds.summary["frames_per_file"] == [1500]
    again = ASEDataset(tmp_path / "root", path, units="eV", energy_key="REF_energy", forces_key="REF_forces")
    assert again.rebuild_reason is None and torch.equal(again._data.energy, ds._data.energy)


def _calculator_atoms(ethanol, frames: Sequence[int]):
    for k in frames:
        atoms = Atoms(numbers=ethanol["z"], positions=ethanol["R"][k])
        atoms.calc = SinglePointCalculator(
            atoms, energy=float(ethanol["E"][k, 0]) / KCAL_PER_EV, forces=ethanol["F"][k] / KCAL_PER_EV
        )
        yield atoms


def test_ase_database_reads_as_md17_reads_the_npz(ethanol, md17, tmp_path):
    import ase.db

    path = tmp_path / "ethanol.db"
    with ase.db.connect(path, append=False) as db:  # a row's energy and forces, as ASE stores a calculator's
        for atoms in _calculator_atoms(ethanol, range(1500)):
            db.write(atoms)
    ds = ASEDataset(tmp_path / "root", path, units="eV", log=False)
    _assert_same_frames(ds, md17)
    assert ds._data.frame_index.tolist() == list(range(1, 1501))  # database row ids


def test_database_key_value_pairs_and_data_as_iso17_reads_them(shared_data, tmp_path):
    """ISO17's own layout: energy in the row's key-value pairs, forces in its data (eV, eV/Angstrom)."""
    path = tmp_path / "reference.db"  # a copy: ASE opens a database read-write
    shutil.copyfile(shared_data / "iso17" / "iso17_eq_sample.db", path)
    keys = dict(units="eV", energy_key="total_energy", forces_key="atomic_forces")
    ds = ASEDataset(tmp_path / "root", path, **keys)
    assert ASEDataset(tmp_path / "root", path, **keys).rebuild_reason is None  # reading left the file as it was
    table = read_ase_db(path)
    assert len(ds) == len(table) == 40
    assert torch.equal(ds._data.z, table.atom_fields["z"])
    assert torch.allclose(ds._data.energy, table.graph_fields["energy"] * KCAL_PER_EV, rtol=1e-15, atol=0)
    assert torch.equal(ds._data.frame_index, table.graph_fields["idx"])
    assert torch.equal(ds._data.force, table.atom_fields["force"])  # zero at equilibrium, as published


def test_a_list_of_atoms_with_live_and_stored_calculators(ethanol):
    stored = list(_calculator_atoms(ethanol, range(3)))
    live = bulk("Cu", "fcc", a=3.6, cubic=True)
    live.rattle(0.05, seed=1)
    live.calc = EMT()
    ds = ASEDataset(None, stored + [live], units="eV", log=False)  # nothing cached for a list
    assert ds.in_memory_only and len(ds) == 4 and ds.periodic
    reference = live.copy()
    reference.calc = EMT()
    assert ds[3].energy.item() == pytest.approx(reference.get_potential_energy() * KCAL_PER_EV, rel=1e-12)
    assert torch.allclose(ds[3].force.double(), torch.as_tensor(reference.get_forces()) * KCAL_PER_EV, atol=1e-5)
    assert ds[0].energy.item() == pytest.approx(float(ethanol["E"][0, 0]), abs=1e-9)
    assert ds[0].pbc.tolist() == [[False, False, False]] and ds[3].pbc.tolist() == [[True, True, True]]
    stored[0].info["REF_energy"] = -4215.0
    with pytest.raises(
        RawFileError,
        match=r"^the list of ase.Atoms: atoms\[1\]: no energy key 'REF_energy' \(a structure without the requested "
        r"property\); the frame has calculator results \['energy', 'forces'\]$",
    ):
        ASEDataset(None, stored, units="eV", energy_key="REF_energy")
    unknown = Atoms("U2", positions=[[0, 0, 0], [0, 0, 2.5]])  # EMT knows no uranium
    unknown.calc = EMT()
    with pytest.raises(
        RawFileError, match=r"atoms\[0\]: the attached calculator failed to compute energy key 'energy'"
    ):
        ASEDataset(None, [unknown], units="eV")
    with pytest.raises(TypeError, match="item 1 is str"):
        ASEDataset(None, [stored[0], "x.extxyz"], units="eV")


def _emt_cells(count: int, seed: int = 0):
    """Copper cells of 4 and 8 atoms, rattled, with EMT energies, forces and stress (eV, eV/A, eV/A^3)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        atoms = bulk("Cu", "fcc", a=3.6 + 0.05 * rng.standard_normal(), cubic=True)
        if k % 2:
            atoms = atoms.repeat((2, 1, 1))
        atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
        atoms.calc = EMT()
        atoms.get_potential_energy(), atoms.get_stress()
        out.append(atoms)
    return out


def test_periodic_cells_with_stress_reach_the_data_and_a_model(tmp_path):
    import ase.io

    cells = _emt_cells(6)
    path = tmp_path / "copper.extxyz"
    ase.io.write(path, cells)  # ASE's writer: energy, forces, stress and the lattice from the calculator
    ds = ASEDataset(tmp_path / "root", path, units="eV", stress_key="stress", log=False)
    assert ds.periodic and ds.summary["periodic_structures"] == 6
    assert [ds[k].num_nodes for k in range(6)] == [4, 8, 4, 8, 4, 8]
    for k, atoms in enumerate(cells):
        item = ds[k]
        assert item.cell.shape == (1, 3, 3) and item.pbc.shape == (1, 3) and item.stress.shape == (1, 3, 3)
        assert torch.allclose(item.cell[0].double(), torch.as_tensor(atoms.cell.array), atol=1e-6)
        assert item.pbc[0].tolist() == [True, True, True]
        expected = torch.as_tensor(atoms.get_stress(voigt=False)) * KCAL_PER_EV  # kcal/mol/A^3
        assert torch.allclose(item.stress[0], expected, rtol=1e-7, atol=1e-12)
        assert item.energy.item() == pytest.approx(atoms.get_potential_energy() * KCAL_PER_EV, rel=1e-9)
    assert ds.stress_unit == "kcal/mol/Angstrom/Angstrom/Angstrom"
    # the same cells as an ASE trajectory (.traj, the calculator's results stored): the same data
    ase.io.write(tmp_path / "copper.traj", cells)
    traj = ASEDataset(None, tmp_path / "copper.traj", units="eV", stress_key="stress", log=False)
    for key in ("z", "energy", "force", "stress", "cell", "pbc"):
        assert torch.allclose(traj._data[key].double(), ds._data[key].double(), atol=1e-6), key
    # GPa in the file: converted to kcal/mol/A^3 the same
    gpa = ASEDataset(None, cells, units="eV", stress_key="stress", stress_unit="GPa", log=False)
    assert torch.allclose(gpa._data.stress, ds._data.stress * (units.GPa / 1.0), rtol=1e-12)
    # a model takes the batch as the trainer does (cell, pbc) and returns a stress per structure
    model = SchNet(hidden_channels=16, num_filters=16, num_interactions=1, num_gaussians=20, cutoff=4.0, rbf_stop=4.0)
    batch = Batch.from_data_list([ds[k] for k in range(6)])
    energy, forces, stress = model.energy_forces_stress(batch.z, batch.pos, batch.batch, batch.cell, batch.pbc)
    assert energy.shape == (6,) and forces.shape == (36, 3) and stress.shape == (6, 3, 3)
    assert torch.isfinite(stress).all()


def test_extra_properties_per_structure_and_per_atom(ethanol, tmp_path):
    frames = []
    for k, atoms in enumerate(_calculator_atoms(ethanol, range(4))):
        atoms.info["dipole_vec"] = np.array([k, 2.0 * k, 0.5])
        atoms.set_initial_charges(np.linspace(-1, 1, len(atoms)) * k)
        frames.append(atoms)
    ds = ASEDataset(
        None,
        frames,
        units="eV",
        properties={"dipole": ("dipole_vec", "Debye")},
        atom_properties={"charges": "initial_charges"},
    )
    assert ds[2].dipole.tolist() == [[2.0, 4.0, 0.5]] and ds[2].dipole.dtype == torch.float64
    assert ds[3].charges.shape == (9,) and ds[3].charges[-1].item() == pytest.approx(3.0)
    assert ds.property_units == {"dipole": "Debye", "charges": None}
    frames[3].info["dipole_vec"] = np.array([1.0, 2.0])
    with pytest.raises(
        RawFileError,
        match=r"atoms\[3\]: property 'dipole' \(key 'dipole_vec'\) has shape \(2,\), but .*atoms\[0\] had \(3,\)",
    ):
        ASEDataset(None, frames, units="eV", properties={"dipole": "dipole_vec"})
    with pytest.raises(ValueError, match="properties: 'energy' is a field of the data set itself"):
        ASEDataset(None, frames, units="eV", properties={"energy": "dipole_vec"})
    with pytest.raises(ValueError, match=r"properties\['dipole'\]: unknown unit 'Debeye'"):
        ASEDataset(None, frames, units="eV", properties={"dipole": ("dipole_vec", "Debeye")})


def test_several_files_an_index_and_errors_name_the_file_and_frame(ethanol, tmp_path):
    e, f = ethanol["E"][:, 0] / KCAL_PER_EV, ethanol["F"] / KCAL_PER_EV
    first = write_extxyz(tmp_path / "a.extxyz", ethanol["z"], ethanol["R"][:10], e[:10], f[:10])
    second = write_extxyz(tmp_path / "b.extxyz", ethanol["z"], ethanol["R"][10:16], e[10:16], f[10:16])
    keys = dict(units="eV", energy_key="REF_energy", forces_key="REF_forces", log=False)
    ds = ASEDataset(tmp_path / "root", [first, second], index="::2", **keys)
    assert len(ds) == 5 + 3 and ds.files == [str(first), str(second)]
    assert ds._data.file_index.tolist() == [0] * 5 + [1] * 3
    assert ds._data.frame_index.tolist() == [0, 2, 4, 6, 8, 0, 2, 4]
    assert torch.allclose(ds._data.energy[5:], torch.as_tensor(ethanol["E"][[10, 12, 14], 0]), atol=1e-9)
    # frame 4 of the second file lacks the energy: the message names that file and frame (index '::2')
    energies = list(e[10:16])
    energies[4] = None
    write_extxyz(second, ethanol["z"], ethanol["R"][10:16], energies, f[10:16])
    with pytest.raises(
        RawFileError,
        match=rf"{second}: frame 4: no energy key 'REF_energy' \(a structure without the requested property\); "
        r"the frame has arrays \['REF_forces'\]$",
    ):
        ASEDataset(tmp_path / "root", [first, second], index="::2", **keys)


def test_rebuilt_when_a_file_or_a_setting_changes(ethanol, tmp_path):
    e, f = ethanol["E"][:20, 0] / KCAL_PER_EV, ethanol["F"][:20] / KCAL_PER_EV
    path = write_extxyz(tmp_path / "a.extxyz", ethanol["z"], ethanol["R"][:20], e, f)
    keys = dict(energy_key="REF_energy", forces_key="REF_forces", log=False)
    ASEDataset(tmp_path / "root", path, units="eV", **keys)
    e2 = e.copy()
    e2[3] += 0.5  # eV
    write_extxyz(path, ethanol["z"], ethanol["R"][:20], e2, f)
    ds = ASEDataset(tmp_path / "root", path, units="eV", **keys)
    assert "changed since it was processed" in ds.rebuild_reason and str(path) in ds.rebuild_reason
    assert ds[3].energy.item() == pytest.approx(float(ethanol["E"][3, 0]) + 0.5 * KCAL_PER_EV, abs=1e-9)
    touched = ASEDataset(tmp_path / "root", path, units="eV", **keys)
    assert touched.rebuild_reason is None
    os.utime(path, ns=(1, 1))  # same bytes, another modification time: the sha256 decides, no rebuild
    assert ASEDataset(tmp_path / "root", path, units="eV", **keys).rebuild_reason is None
    other = ASEDataset(tmp_path / "root", path, units="kcal/mol", **keys)
    assert "energy 'REF_energy' [eV]" in other.rebuild_reason and "[kcal/mol]" in other.rebuild_reason
    assert other[3].energy.item() == pytest.approx(e2[3], abs=1e-9)  # kcal/mol in the file: not scaled


def _tiny_frames(z=(8, 1, 1), pos=None, energies=(1.0, 2.0, 3.0)) -> np.ndarray:
    base = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]]) if pos is None else pos
    return np.stack([base + 0.01 * k for k in range(len(energies))])


def _no_processed_file(root: Path) -> bool:
    return not list((root / "processed").glob("*.pt")) if (root / "processed").exists() else True


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda p, F, E: (p, F, [E[0], "abc", E[2]]),
            r"frame 1: energy key 'REF_energy' holds str 'abc', expected numbers",
        ),
        (lambda p, F, E: (p, F, [E[0], E[1], float("nan")]), r"frame 2: non-finite key 'REF_energy' \(nan\)"),
        (
            lambda p, F, E: (p, np.where(np.arange(3)[None, :, None] == 1, np.inf, F), E),
            r"frame 0: non-finite key 'REF_forces' at atom 1 \(\[inf, inf, inf\]\)",
        ),
        (
            lambda p, F, E: (p + np.where(np.arange(3)[None, :, None] == 2, 2e4, 0.0), F, E),
            r"frame 0: atom 2 is at \[19999.8, 20000.9, 20000\] Angstrom in positions, beyond \+-10000 Angstrom",
        ),
    ],
    ids=["string energy", "nan energy", "inf force", "absurd coordinate"],
)
def test_bad_values_are_refused_naming_file_frame_and_key(tmp_path, edit, message):
    pos = _tiny_frames()
    forces = np.ones_like(pos)
    pos, forces, energies = edit(pos, forces, [1.0, 2.0, 3.0])
    path = write_extxyz(tmp_path / "bad.extxyz", np.array([8, 1, 1]), pos, energies, forces)
    root = tmp_path / "root"
    with pytest.raises(RawFileError, match=rf"{path}: " + message):
        ASEDataset(root, path, units="eV", energy_key="REF_energy", forces_key="REF_forces", log=False)
    assert _no_processed_file(root)


def test_coincident_atoms_message(tmp_path):
    pos = _tiny_frames()
    pos[1, 2] = pos[1, 0]
    path = write_extxyz(tmp_path / "bad.extxyz", np.array([8, 1, 1]), pos, [1.0, 2.0, 3.0], np.ones_like(pos))
    with pytest.raises(RawFileError, match=rf"{path}: frame 1: atoms 0 and 2 are 0 Angstrom apart in positions"):
        ASEDataset(tmp_path / "root", path, units="eV", energy_key="REF_energy", forces_key="REF_forces")


def test_missing_keys_and_wrong_shapes(tmp_path):
    pos = _tiny_frames()
    path = write_extxyz(tmp_path / "a.extxyz", np.array([8, 1, 1]), pos, [1.0, 2.0, 3.0], np.ones_like(pos))
    root = tmp_path / "root"
    with pytest.raises(
        RawFileError,
        match=rf"{path}: frame 0: no energy key 'energy' \(a structure without the requested property\); the frame has "
        r"info \['REF_energy'\]; arrays \['REF_forces'\]",
    ):
        ASEDataset(root, path, units="eV", forces_key="REF_forces")
    with pytest.raises(RawFileError, match=rf"{path}: frame 0: no forces key 'forces'"):
        ASEDataset(root, path, units="eV", energy_key="REF_energy")
    assert _no_processed_file(root)
    two = write_extxyz(tmp_path / "b.extxyz", np.array([8, 1, 1]), pos, [1.0] * 3, np.ones_like(pos), force_columns=2)
    with pytest.raises(
        RawFileError, match=rf"{two}: frame 0: forces key 'REF_forces' has shape \(3, 2\), expected \(3, 3\)"
    ):
        ASEDataset(root, two, units="eV", energy_key="REF_energy", forces_key="REF_forces")
    # energies only: forces_key=None
    ds = ASEDataset(root, path, units="eV", energy_key="REF_energy", forces_key=None, log=False)
    assert "force" not in ds[0] and ds[0].energy.item() == pytest.approx(KCAL_PER_EV, rel=1e-12)


def test_unknown_elements(tmp_path):
    pos = _tiny_frames()
    path = write_extxyz(tmp_path / "a.extxyz", None, pos, [1.0] * 3, None, symbols=["O", "Xq", "H"])
    with pytest.raises(RawFileError, match=rf"{path}: frame 0 cannot be read: unknown element symbol 'Xq'"):
        ASEDataset(tmp_path / "root", path, units="eV", energy_key="REF_energy", forces_key=None)
    dummy = write_extxyz(tmp_path / "b.extxyz", None, pos, [1.0] * 3, None, symbols=["O", "X", "H"])
    with pytest.raises(
        RawFileError, match=rf"{dummy}: frame 0: numbers holds atomic number 0 at atom 1, outside 1..118"
    ):
        ASEDataset(tmp_path / "root", dummy, units="eV", energy_key="REF_energy", forces_key=None)


def test_units_files_and_options_are_checked_before_reading(tmp_path):
    pos = _tiny_frames()
    path = write_extxyz(tmp_path / "a.extxyz", np.array([8, 1, 1]), pos, [1.0] * 3, np.ones_like(pos))
    root = tmp_path / "root"
    with pytest.raises(ValueError, match=r"units: unknown unit 'eVV': 'eVV' is not a symbol of ase.units"):
        ASEDataset(root, path, units="eVV")
    with pytest.raises(ValueError, match=r"forces_unit: unknown unit 'eV/Bohrr': 'Bohrr' is not a symbol"):
        ASEDataset(root, path, units="eV", forces_unit="eV/Bohrr")
    with pytest.raises(ValueError, match=r"stress_unit: unknown unit 'GPaa'"):
        ASEDataset(root, path, units="eV", stress_key="stress", stress_unit="GPaa")
    with pytest.raises(ValueError, match=r"train_unit: unknown unit 'kcal/mool'"):
        ASEDataset(root, path, units="eV", train_unit="kcal/mool")
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / 'nope.extxyz'}: no such file"):
        ASEDataset(root, tmp_path / "nope.extxyz", units="eV")
    with pytest.raises(ValueError, match=r"index 'every other' is not a frame selection"):
        ASEDataset(root, path, units="eV", index="every other")
    assert not root.exists()  # nothing written, not even the folder


def test_bad_databases_and_periodic_input(tmp_path):
    import ase.db

    text = tmp_path / "notes.db"
    text.write_text("not a database\n")
    with pytest.raises(RawFileError, match=rf"{text}: not an SQLite database"):
        ASEDataset(tmp_path / "root", text, units="eV")
    path = tmp_path / "rows.db"
    with ase.db.connect(path, append=False) as db:
        atoms = Atoms("H2O", positions=_tiny_frames()[0])
        db.write(atoms, total_energy=1.0, data={"atomic_forces": np.zeros((3, 3))})
    with pytest.raises(
        RawFileError,
        match=rf"{path}: row id 1: no energy key 'energy' .*key-value pairs \['total_energy'\]; data \['atomic_forces'\]",
    ):
        ASEDataset(tmp_path / "root", path, units="eV")
    ds = ASEDataset(tmp_path / "root", path, units="eV", energy_key="total_energy", forces_key="atomic_forces")
    assert ds[0].energy.item() == pytest.approx(KCAL_PER_EV)
    # a stress asks for a periodic structure; a periodic cell must span its periodic axes
    with pytest.raises(
        RawFileError, match=r"atoms\[0\]: stress key 'stress' is given for a structure without a periodic axis"
    ):
        molecule = Atoms("H2O", positions=_tiny_frames()[0])
        molecule.calc = SinglePointCalculator(molecule, energy=1.0, forces=np.zeros((3, 3)), stress=np.zeros(6))
        ASEDataset(None, [molecule], units="eV", stress_key="stress")
    flat = bulk("Cu", "fcc", a=3.6, cubic=True)
    flat.cell[2] = flat.cell[0]
    flat.calc = SinglePointCalculator(flat, energy=1.0, forces=np.zeros((4, 3)))
    with pytest.raises(
        RawFileError, match=r"atoms\[0\]: the structure is periodic along axes \[0, 1, 2\] but its lattice"
    ):
        ASEDataset(None, [flat], units="eV")


def test_split_counts_and_fractions(ethanol):
    assert count_of("n_train", 0.8, 1499) == 1199 and count_of("n_train", 800, 1499) == 800
    assert split_sizes(1000, 0.8, 0.1) == (800, 100, None) and split_sizes(1000, 0.5, 100, 0.25) == (500, 100, 250)
    for bad in (1.5, 0.0, -3, True, "0.8"):
        with pytest.raises(ValueError, match="n_val must be a (count|non-negative integer)"):
            count_of("n_val", bad, 100)
    ds = ASEDataset(None, list(_calculator_atoms(ethanol, range(50))), units="eV")
    split = ds.random_split(0.5, n_val=0.2, seed=3)
    expected = random_split(50, 25, n_val=10, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(split, expected)) and split.sizes() == (25, 10, 15)
