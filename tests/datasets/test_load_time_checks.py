"""Issue 8, data side: corrupt or absurd raw data is refused at load time, naming the file and the
frame, row or molecule in it (never a mini-batch index later in training).

One check serves the three readers (:meth:`AtomsTable.validate`): atomic numbers in 1..118, finite
values, coordinates within 1e4 Angstrom, no two atoms of a molecule closer than 0.01 Angstrom.
"""

from __future__ import annotations

import bz2
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from pyg_schnet.datasets import ISO17, MD17, QM9, AtomsTable, RawFileError
from pyg_schnet.datasets.table import MIN_ATOM_DISTANCE
from pyg_schnet.validation import MAX_ABS_POSITION, MAX_ATOMIC_NUMBER


@pytest.fixture(scope="module")
def ethanol(shared_data: Path):
    with np.load(shared_data / "md17" / "md17_ethanol.npz") as f:
        return {k: np.array(f[k]) for k in ("z", "R", "E", "F")}


def md17_root(tmp_path: Path, arrays) -> Path:
    raw = tmp_path / "md17" / "raw"
    raw.mkdir(parents=True)
    with open(raw / "md17_ethanol.npz", "wb") as handle:
        np.savez(handle, **arrays)
    return tmp_path / "md17"


def edited(ethanol, edit):
    arrays = {k: v.copy() for k, v in ethanol.items()}
    edit(arrays)
    return arrays


# ----------------------------------------------------------------------------------------------
# defect 8: MD17 faults named by file, key and frame (the frame index in the file)
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda a: a["R"][483].__setitem__(1, a["R"][483][0]),
            r"md17_ethanol\.npz: frame 483: atoms 0 and 1 are 0 Angstrom apart in key 'R', closer than 0\.01 Angstrom",
        ),
        (
            lambda a: a["R"][900].__setitem__(5, a["R"][900][2] + 0.004),
            r"md17_ethanol\.npz: frame 900: atoms 2 and 5 are 0\.0069\d* Angstrom apart",
        ),
        (
            lambda a: a["z"].__setitem__(4, 150),
            r"md17_ethanol\.npz: frame 0: key 'z' holds atomic number 150 at atom 4, outside 1\.\.118",
        ),
        (lambda a: a["z"].__setitem__(0, 0), r"md17_ethanol\.npz: frame 0: key 'z' holds atomic number 0 at atom 0"),
        (
            lambda a: a["R"][3].__setitem__((1, 0), 3e19),
            r"md17_ethanol\.npz: frame 3: atom 1 is at \[3e\+19, [-\d.]+, [-\d.]+\] Angstrom in key 'R', beyond \+-10000",
        ),
        (
            lambda a: a["R"][77].__setitem__((8, 2), np.inf),
            r"md17_ethanol\.npz: frame 77: non-finite key 'R' at atom 8",
        ),
        (
            lambda a: a["F"][1499].__setitem__((0, 1), np.nan),
            r"md17_ethanol\.npz: frame 1499: non-finite key 'F' at atom 0",
        ),
    ],
    ids=["coincident", "closer-than-bound", "z=150", "z=0", "far", "inf-position", "nan-force"],
)
def test_md17_faults_name_file_key_and_frame(tmp_path, ethanol, edit, message):
    root = md17_root(tmp_path, edited(ethanol, edit))
    with pytest.raises(RawFileError, match=message):
        MD17(root, "ethanol")
    assert not list((root / "processed").glob("*.pt"))  # nothing written


def test_shortest_real_distance_passes_and_the_bound_is_the_documented_one(ethanol):
    # the 1,500 real frames pass; their closest pair is far above the bound
    n = ethanol["z"].size
    table = AtomsTable(
        num_atoms=torch.full((1500,), n),
        atom_fields={
            "z": torch.from_numpy(ethanol["z"]).repeat(1500),
            "pos": torch.from_numpy(ethanol["R"].reshape(-1, 3)),
        },
    )
    table.validate()
    diff = ethanol["R"][:, :, None] - ethanol["R"][:, None]
    i, j = np.triu_indices(n, 1)
    distances = np.linalg.norm(diff, axis=-1)[:, i, j]
    assert distances.min() > 50 * MIN_ATOM_DISTANCE
    assert table.closest_pair_below(float(distances.min()) + 1e-6) is not None  # the search does find pairs
    assert MAX_ABS_POSITION == 1e4 and MAX_ATOMIC_NUMBER == 118


def test_validate_reports_the_first_fault_in_file_order_across_molecule_sizes():
    # molecules of 2, 3 and 2 atoms; molecules 1 and 2 both have coincident atoms: molecule 1 is named
    pos = torch.tensor(
        [[0, 0, 0], [1, 0, 0], [0, 0, 0], [2, 0, 0], [2, 0, 0.005], [5, 5, 5], [5, 5, 5]], dtype=torch.float32
    )
    table = AtomsTable(
        num_atoms=torch.tensor([2, 3, 2]),
        atom_fields={"z": torch.ones(7, dtype=torch.long), "pos": pos},
        source="f.xyz",
        origin="record {}",
        origin_ids=torch.tensor([10, 11, 12]),
    )
    with pytest.raises(RawFileError, match=r"^f\.xyz: record 11: atoms 1 and 2 are 0\.005 Angstrom apart"):
        table.validate()
    reordered = table.select([2, 0])  # ids follow the molecules
    with pytest.raises(RawFileError, match=r"^f\.xyz: record 12: atoms 0 and 1 are 0 Angstrom apart"):
        reordered.validate()
    table.select([0]).validate()


# ----------------------------------------------------------------------------------------------
# defects 3 and 8: QM9 faults named by archive and member
# ----------------------------------------------------------------------------------------------
def edit_field(text: str, line: int, field: int, value: str) -> str:
    lines = text.split("\n")
    parts = lines[line - 1].split("\t")
    parts[field] = value
    lines[line - 1] = "\t".join(parts)
    return "\n".join(lines)


def copy_coordinates(line: int, source: int):
    """An edit giving the atom on ``line`` the coordinates of the atom on line ``source``."""

    def edit(text: str) -> str:
        xyz = text.split("\n")[source - 1].split("\t")[1:4]
        for k, value in enumerate(xyz, 1):
            text = edit_field(text, line, k, value)
        return text

    return edit


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda t: edit_field(t, 4, 1, "nan"),
            r"member dsgdb9nsd_000003\.xyz\): non-finite coordinates at atom 1 \(\[nan,",
        ),
        (
            lambda t: edit_field(t, 3, 3, "-inf"),
            r"member dsgdb9nsd_000003\.xyz\): non-finite coordinates at atom 0 \(\[.*-inf\]\)",
        ),
        (
            lambda t: edit_field(t, 2, 11, "NaN"),
            r"molecule 3 \(member dsgdb9nsd_000003\.xyz\): non-finite line 2 property U0 \(nan\)",
        ),
        (
            lambda t: edit_field(t, 2, 1, "inf"),
            r"molecule 3 \(member dsgdb9nsd_000003\.xyz\): non-finite line 2 property A \(inf\)",
        ),
        (
            lambda t: edit_field(t, 4, 2, "2.5e5"),
            r"molecule 3 \(member dsgdb9nsd_000003\.xyz\): atom 1 is at \[[-\d.]+, 250000, [-\d.]+\] Angstrom in coordinates, beyond \+-10000",
        ),
        (
            copy_coordinates(line=5, source=4),
            r"molecule 3 \(member dsgdb9nsd_000003\.xyz\): atoms 1 and 2 are 0 Angstrom apart",
        ),
    ],
    ids=["nan-x", "-inf-z", "nan-U0", "inf-A", "far", "coincident"],
)
def test_qm9_faults_name_archive_and_molecule(qm9_builder, tmp_path, edit, message):
    members = qm9_builder.members(range(1, 6), fortran_ids=())
    members[2] = (members[2][0], edit(members[2][1]))
    root = qm9_builder.write_root(tmp_path / "qm9", members=members, exclude=())
    with pytest.raises(RawFileError, match=message) as info:
        QM9(root)
    assert str(root / "raw" / "dsgdb9nsd.xyz.tar.bz2") in str(info.value)
    assert not list((root / "processed").glob("*.pt"))


@pytest.mark.parametrize("delta", [-1, 1, 2])
def test_qm9_atom_count_off_by_one_is_named(qm9_builder, tmp_path, delta):
    members = qm9_builder.members(range(1, 4), fortran_ids=())
    text = members[1][1]  # molecule 2: NH3, 4 atoms
    count = int(text.split("\n")[0])
    members[1] = (members[1][0], f"{count + delta}" + text[text.index("\n") :])
    root = qm9_builder.write_root(tmp_path / "qm9", members=members, exclude=())
    with pytest.raises(
        RawFileError,
        match=(
            rf"dsgdb9nsd\.xyz\.tar\.bz2: member dsgdb9nsd_000002\.xyz, line 1: the atom count says {count + delta} "
            rf"atoms but the record has {count} atom lines"
        ),
    ):
        QM9(root)


# ----------------------------------------------------------------------------------------------
# defect 8: ISO17 faults named by database and row id
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda r: r["positions"].__setitem__(4, r["positions"][7]),
            r"row id 2: atoms 4 and 7 are 0 Angstrom apart in positions",
        ),
        (
            lambda r: r["positions"].__setitem__((0, 0), 2e4),
            r"row id 2: atom 0 is at \[20000, [-\d.]+, [-\d.]+\] Angstrom in positions, beyond",
        ),
        (
            lambda r: r["atomic_forces"].__setitem__((3, 1), np.inf),
            r"row id 2: non-finite data 'atomic_forces' at atom 3",
        ),
        (
            lambda r: r["numbers"].__setitem__(0, 0),
            r"row id 2: numbers holds atomic number 0 at atom 0, outside 1\.\.118",
        ),
    ],
    ids=["coincident", "far", "inf-force", "z=0"],
)
def test_iso17_faults_name_database_and_row(tmp_path, iso17_rows, iso17_tools, edit, message):
    rows = [
        {k: (np.array(v, copy=True) if isinstance(v, np.ndarray) else v) for k, v in r.items()} for r in iso17_rows[:3]
    ]
    edit(rows[1])
    iso17_tools.write_db(tmp_path / "raw" / "iso17" / "reference.db", rows)
    with pytest.raises(RawFileError, match=r"reference\.db: " + message):
        ISO17(tmp_path, "reference")


# ----------------------------------------------------------------------------------------------
# defect 12: errors that name their cause
# ----------------------------------------------------------------------------------------------
def test_npy_renamed_npz_and_text_file_as_npz(tmp_path, ethanol):
    raw = tmp_path / "raw"
    raw.mkdir()
    path = raw / "md17_ethanol.npz"
    with open(path, "wb") as handle:
        np.save(handle, ethanol["R"])
    with pytest.raises(RawFileError, match=r"md17_ethanol\.npz: a single \.npy array, not an \.npz archive"):
        MD17(tmp_path, "ethanol")
    path.write_text("frame energy\n0 -97000.1\n")
    with pytest.raises(
        RawFileError,
        match=r"md17_ethanol\.npz: not an npz file \(a zip archive of named arrays\); "
        r"it is a file starting with b'frame en'",
    ):
        MD17(tmp_path, "ethanol")
    path.write_bytes(b"")
    with pytest.raises(RawFileError, match=r"md17_ethanol\.npz: not an npz file .* it is an empty file"):
        MD17(tmp_path, "ethanol")


@pytest.mark.parametrize(
    "energy, message",
    [
        ("-11503.2 eV", r"key 'total_energy' holds str '-11503\.2 eV', expected a number \(eV\)"),
        (True, r"key 'total_energy' holds bool True, expected a number"),
    ],
)
def test_iso17_non_numeric_energy_names_row_and_key(tmp_path, iso17_rows, iso17_tools, energy, message):
    rows = [dict(r) for r in iso17_rows[:3]]
    rows[2]["total_energy"] = energy
    iso17_tools.write_db(tmp_path / "raw" / "iso17" / "reference.db", rows)
    with pytest.raises(RawFileError, match=r"reference\.db: row id 3: " + message):
        ISO17(tmp_path, "reference")


def test_iso17_text_forces_name_row_and_key(tmp_path, iso17_rows, iso17_tools):
    rows = [dict(r) for r in iso17_rows[:2]]
    rows[1]["atomic_forces"] = np.array([["0.1", "x", "y"]] * 19)  # a string array: ASE cannot read it back
    iso17_tools.write_db(tmp_path / "raw" / "iso17" / "reference.db", rows)
    with pytest.raises(
        RawFileError,
        match=r"reference\.db: not a readable ASE database \(the row after row id 1 "
        r"cannot be read: data type 'str96' not understood\)",
    ):
        ISO17(tmp_path, "reference")
    rows = [dict(r) for r in iso17_rows[:2]]
    rows[0]["atomic_forces"] = [["0.1", "x", "y"]] * 19  # stored as JSON text
    iso17_tools.write_db(tmp_path / "b" / "raw" / "iso17" / "reference.db", rows)
    with pytest.raises(
        RawFileError, match=r"reference\.db: row id 1: data 'atomic_forces' has dtype <U3, expected numbers"
    ):
        ISO17(tmp_path / "b", "reference")


# ----------------------------------------------------------------------------------------------
# defect 11: a tar truncated inside a valid compressed stream
# ----------------------------------------------------------------------------------------------
def truncate_tar_at_member(archive: Path, keep: int) -> int:
    """Rewrite ``archive`` (tar.bz2) as a valid bz2 stream of its tar cut after ``keep`` members."""
    tar_bytes = bz2.decompress(archive.read_bytes())
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
        cut = tar.getmembers()[keep].offset  # the header of member `keep`: a block boundary
    archive.write_bytes(bz2.compress(tar_bytes[:cut]))
    return cut


def test_truncated_tar_inside_valid_bz2_is_refused(qm9_builder, tmp_path):
    root = qm9_builder.write_root(tmp_path / "qm9")
    archive = root / "raw" / "dsgdb9nsd.xyz.tar.bz2"
    cut = truncate_tar_at_member(archive, keep=4)
    # what Python's tarfile does with it: 4 of 20 members and no error
    with tarfile.open(archive, mode="r|bz2") as tar:
        assert len([m for m in tar]) == 4
    with pytest.raises(
        RawFileError,
        match=(
            rf"dsgdb9nsd\.xyz\.tar\.bz2: corrupt or truncated archive after member dsgdb9nsd_000004\.xyz: "
            rf"the tar stream ends at byte {cut} without its end-of-archive marker"
        ),
    ):
        QM9(root)
    assert not (root / "processed" / "qm9_v2.pt").exists()


def test_corrupt_tar_header_inside_valid_bz2_is_refused(qm9_builder, tmp_path):
    root = qm9_builder.write_root(tmp_path / "qm9")
    archive = root / "raw" / "dsgdb9nsd.xyz.tar.bz2"
    tar_bytes = bytearray(bz2.decompress(archive.read_bytes()))
    with tarfile.open(fileobj=io.BytesIO(bytes(tar_bytes)), mode="r:") as tar:
        offset = tar.getmembers()[6].offset
    tar_bytes[offset + 148 : offset + 156] = b"9999999\0"  # the header checksum
    archive.write_bytes(bz2.compress(bytes(tar_bytes)))
    with pytest.raises(RawFileError, match=rf"after member dsgdb9nsd_000006\.xyz: corrupt tar header at byte {offset}"):
        QM9(root)


def test_truncated_archive_placed_by_hand_is_refused(tmp_path, iso17_template, no_network, monkeypatch):
    import gzip

    from pyg_schnet.datasets import DownloadVerificationError

    monkeypatch.setenv("PYG_SCHNET_OFFLINE", "1")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:") as tar:
        for fold in ("reference", "reference_eq", "test_within", "test_other", "test_eq"):
            tar.add(iso17_template / "raw" / "iso17" / f"{fold}.db", arcname=f"iso17/{fold}.db")
    with tarfile.open(fileobj=io.BytesIO(buffer.getvalue()), mode="r:") as tar:
        cut = tar.getmembers()[2].offset
    root = tmp_path / "root"
    (root / "raw").mkdir(parents=True)
    (root / "raw" / "iso17.tar.gz").write_bytes(gzip.compress(buffer.getvalue()[:cut]))
    with pytest.raises(DownloadVerificationError, match=r"iso17\.tar\.gz .*without its end-of-archive marker"):
        ISO17(root, "reference")
    assert not (root / "raw" / "iso17").exists()
