"""Audit cases of the data sets (issue 8): planted pickles, stale caches, corrupt and absurd raw files.

Every case builds its raw files from scratch in its temporary folder (ASE's molecules, fixed seeds), so
the audit needs no downloaded data and gives the same table on every run.
"""

from __future__ import annotations

import bz2
import io
import tarfile
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

from pyg_schnet.datasets import ISO17, MD17, QM9, RawFileError

from .registry import case

# ----------------------------------------------------------------------------------------------
# Small raw files in the published layouts
# ----------------------------------------------------------------------------------------------


class _Payload:
    """Unpickling this object calls ``open(marker, "w")``, creating the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _ethanol(frames: int = 8) -> Dict[str, np.ndarray]:
    """MD17-layout arrays: ASE's ethanol moved by up to 0.05 Angstrom per frame (seed 0)."""
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    rng = np.random.default_rng(0)
    pos = atoms.positions[None] + rng.uniform(-0.05, 0.05, (frames, len(atoms), 3))
    return {
        "z": atoms.numbers.astype(np.int64),
        "R": pos,
        "E": -97000.0 + rng.normal(0.0, 4.0, (frames, 1)),
        "F": rng.normal(0.0, 20.0, (frames, len(atoms), 3)),
    }


def _md17_root(tmp: Path, arrays: Dict[str, np.ndarray]) -> Path:
    raw = tmp / "md17" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    with open(raw / "md17_ethanol.npz", "wb") as handle:
        np.savez(handle, **arrays)
    return tmp / "md17"


def _qm9_members(molecules: Sequence[str] = ("CH4", "NH3", "H2O", "C2H6", "HCN")) -> List[Tuple[str, str]]:
    from ase.build import molecule

    from pyg_schnet.datasets._qm9_writer import format_qm9_xyz, member_name

    members = []
    for gdb_id, name in enumerate(molecules, 1):
        atoms = molecule(name)
        properties = [float(k + 1) for k in range(15)]
        members.append((member_name(gdb_id), format_qm9_xyz(gdb_id, atoms.numbers, atoms.positions, properties)))
    return members


def _qm9_root(tmp: Path, members: List[Tuple[str, str]]) -> Path:
    from pyg_schnet.datasets._qm9_writer import write_qm9_archive

    raw = tmp / "qm9" / "raw"
    raw.mkdir(parents=True)
    write_qm9_archive(raw / "dsgdb9nsd.xyz.tar.bz2", members)
    (raw / "atomref.txt").write_text(
        "\n".join(f"   {s}     0.000000     -1.0      -1.0       -1.0       -1.0       2.981" for s in "HCNOF") + "\n"
    )
    (raw / "uncharacterized.txt").write_text("    9999   C   C   C   1.0\n")
    return tmp / "qm9"


def _edit_qm9_field(text: str, line: int, field: int, value: str) -> str:
    lines = text.split("\n")
    parts = lines[line - 1].split("\t")
    parts[field] = value
    lines[line - 1] = "\t".join(parts)
    return "\n".join(lines)


def _iso17_rows(count: int = 3) -> List[Dict[str, object]]:
    """C7O2H10 on a 1.5 Angstrom grid (19 atoms), zero forces, energies in eV."""
    numbers = np.array([6] * 7 + [8] * 2 + [1] * 10)
    grid = np.array([[x, y, z] for x in range(3) for y in range(3) for z in range(3)][:19], dtype=np.float64) * 1.5
    return [
        dict(
            numbers=numbers.copy(),
            positions=grid + 0.01 * k,
            total_energy=-11500.0 - k,
            atomic_forces=np.zeros((19, 3)),
        )
        for k in range(count)
    ]


def _iso17_root(tmp: Path, rows: List[Dict[str, object]], split: str = "reference") -> Path:
    import ase.db
    from ase import Atoms

    path = tmp / "iso17" / "raw" / "iso17" / f"{split}.db"
    path.parent.mkdir(parents=True)
    with ase.db.connect(str(path), type="db") as db:
        for row in rows:
            db.write(
                Atoms(numbers=row["numbers"], positions=row["positions"]),
                key_value_pairs={"total_energy": row["total_energy"]},
                data={"atomic_forces": row["atomic_forces"]},
            )
    return tmp / "iso17"


# ----------------------------------------------------------------------------------------------
# defect 1: opening a data folder runs no code
# ----------------------------------------------------------------------------------------------
def _planted_beside(tmp: Path, name: str) -> str:
    root = _md17_root(tmp, _ethanol())
    MD17(root, "ethanol", log=False)
    marker = tmp / "marker"
    torch.save(_Payload(marker), root / "processed" / name)
    ds = MD17(root, "ethanol", log=False)
    if marker.exists():
        raise AssertionError(f"opening the data set executed processed/{name}")
    return f"payload not executed; {name} never read; {len(ds)} frames loaded from the processed file"


@case(
    "data",
    "MD17 folder with a malicious pickle planted at processed/pre_transform.pt",
    None,
    r"payload not executed; pre_transform\.pt never read; 8 frames",
)
def _(tmp: Path) -> str:
    return _planted_beside(tmp, "pre_transform.pt")


@case(
    "data",
    "MD17 folder with a malicious pickle planted at processed/pre_filter.pt",
    None,
    r"payload not executed; pre_filter\.pt never read; 8 frames",
)
def _(tmp: Path) -> str:
    return _planted_beside(tmp, "pre_filter.pt")


@case(
    "data",
    "MD17 processed file replaced by a malicious pickle",
    None,
    r"payload not executed; rebuilt: .*md17_ethanol_v2\.pt is not a tensors-only file and was not unpickled \(it asks for io\.open\)",
)
def _(tmp: Path) -> str:
    root = _md17_root(tmp, _ethanol())
    MD17(root, "ethanol", log=False)
    marker = tmp / "marker"
    torch.save(_Payload(marker), root / "processed" / "md17_ethanol_v2.pt")
    ds = MD17(root, "ethanol", log=False)
    if marker.exists():
        raise AssertionError("opening the data set executed the processed file")
    return f"payload not executed; rebuilt: {ds.rebuild_reason}"


# ----------------------------------------------------------------------------------------------
# defect 5: stale processed cache
# ----------------------------------------------------------------------------------------------
@case(
    "data",
    "MD17 raw npz replaced (8 -> 5 frames) after processing",
    None,
    r"rebuilt, 5 frames: the raw file .*md17_ethanol\.npz changed since it was processed \(size \d+ -> \d+ bytes\)",
)
def _(tmp: Path) -> str:
    arrays = _ethanol()
    root = _md17_root(tmp, arrays)
    MD17(root, "ethanol", log=False)
    _md17_root(tmp, {k: (v if k == "z" else v[3:]) for k, v in arrays.items()})
    ds = MD17(root, "ethanol", log=False)
    return f"rebuilt, {len(ds)} frames: {ds.rebuild_reason}"


class _EnergyBelow:
    """A pre_filter whose repr states its parameter."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def __call__(self, data) -> bool:
        return float(data.energy) < self.threshold

    def __repr__(self) -> str:
        return f"EnergyBelow({self.threshold})"


@case(
    "data",
    "MD17 reopened with another pre_filter",
    None,
    r"rebuilt, 5 of 8 frames: the pre_filter differs from the one it was built with "
    r"\(built with EnergyBelow\(-96990\.0\); now EnergyBelow\(-97000\.0\)\)",
)
def _(tmp: Path) -> str:
    root = _md17_root(tmp, _ethanol())
    MD17(root, "ethanol", pre_filter=_EnergyBelow(-96990.0), log=False)
    ds = MD17(root, "ethanol", pre_filter=_EnergyBelow(-97000.0), log=False)
    return f"rebuilt, {len(ds)} of 8 frames: {ds.rebuild_reason}"


# ----------------------------------------------------------------------------------------------
# defects 3 and 8: non-finite and absurd values, named by file and frame / molecule / row
# ----------------------------------------------------------------------------------------------
@case(
    "data",
    "MD17 frame 6 with two coincident atoms",
    RawFileError,
    r"md17_ethanol\.npz: frame 6: atoms 2 and 3 are 0 Angstrom apart in key 'R'",
)
def _(tmp: Path) -> None:
    arrays = _ethanol()
    arrays["R"][6, 3] = arrays["R"][6, 2]
    MD17(_md17_root(tmp, arrays), "ethanol", log=False)


@case(
    "data",
    "MD17 npz with z = 150",
    RawFileError,
    r"md17_ethanol\.npz: frame 0: key 'z' holds atomic number 150 at atom 1, outside 1\.\.118",
)
def _(tmp: Path) -> None:
    arrays = _ethanol()
    arrays["z"][1] = 150
    MD17(_md17_root(tmp, arrays), "ethanol", log=False)


@case(
    "data",
    "MD17 frame 3 with a coordinate of 3e19 Angstrom",
    RawFileError,
    r"md17_ethanol\.npz: frame 3: atom 1 is at \[3e\+19, [-\d.]+, [-\d.]+\] Angstrom in key 'R', beyond \+-10000 Angstrom",
)
def _(tmp: Path) -> None:
    arrays = _ethanol()
    arrays["R"][3, 1, 0] = 3e19
    MD17(_md17_root(tmp, arrays), "ethanol", log=False)


@case(
    "data",
    "QM9 record with a NaN coordinate",
    RawFileError,
    r"dsgdb9nsd\.xyz\.tar\.bz2: molecule 2 \(member dsgdb9nsd_000002\.xyz\): non-finite coordinates at atom 0",
)
def _(tmp: Path) -> None:
    members = _qm9_members()
    members[1] = (members[1][0], _edit_qm9_field(members[1][1], 3, 2, "nan"))
    QM9(_qm9_root(tmp, members), log=False)


@case(
    "data",
    "QM9 record with U0 = inf",
    RawFileError,
    r"dsgdb9nsd\.xyz\.tar\.bz2: molecule 4 \(member dsgdb9nsd_000004\.xyz\): non-finite line 2 property U0 \(inf\)",
)
def _(tmp: Path) -> None:
    members = _qm9_members()
    members[3] = (members[3][0], _edit_qm9_field(members[3][1], 2, 11, "inf"))
    QM9(_qm9_root(tmp, members), log=False)


@case(
    "data",
    "QM9 record with two atoms 0.005 Angstrom apart",
    RawFileError,
    r"molecule 1 \(member dsgdb9nsd_000001\.xyz\): atoms 0 and 1 are 0\.005 Angstrom apart",
)
def _(tmp: Path) -> None:
    from ase.build import molecule

    from pyg_schnet.datasets._qm9_writer import format_qm9_xyz

    members = _qm9_members()
    atoms = molecule("CH4")
    atoms.positions[1] = atoms.positions[0] + [0.005, 0.0, 0.0]
    members[0] = (members[0][0], format_qm9_xyz(1, atoms.numbers, atoms.positions, [1.0] * 15))
    QM9(_qm9_root(tmp, members), log=False)


@case(
    "data",
    "ISO17 row with a coordinate of 2e4 Angstrom",
    RawFileError,
    r"reference\.db: row id 2: atom 0 is at \[20000, 0\.01, 0\.01\] Angstrom in positions, beyond \+-10000 Angstrom",
)
def _(tmp: Path) -> None:
    rows = _iso17_rows()
    rows[1]["positions"][0, 0] = 2e4
    ISO17(_iso17_root(tmp, rows), "reference", log=False)


# ----------------------------------------------------------------------------------------------
# defect 11: a tar truncated inside a valid bz2 stream
# ----------------------------------------------------------------------------------------------
@case(
    "data",
    "QM9 archive: tar cut after 2 of 5 members inside a valid bz2 stream",
    RawFileError,
    r"dsgdb9nsd\.xyz\.tar\.bz2: corrupt or truncated archive after member dsgdb9nsd_000002\.xyz: "
    r"the tar stream ends at byte \d+ without its end-of-archive marker",
)
def _(tmp: Path) -> None:
    root = _qm9_root(tmp, _qm9_members())
    archive = root / "raw" / "dsgdb9nsd.xyz.tar.bz2"
    tar_bytes = bz2.decompress(archive.read_bytes())
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
        cut = tar.getmembers()[2].offset
    archive.write_bytes(bz2.compress(tar_bytes[:cut]))
    QM9(root, log=False)


# ----------------------------------------------------------------------------------------------
# defect 12: errors that name their cause
# ----------------------------------------------------------------------------------------------
@case(
    "data",
    "MD17: a .npy file renamed .npz",
    RawFileError,
    r"md17_ethanol\.npz: a single \.npy array, not an \.npz archive of named arrays",
)
def _(tmp: Path) -> None:
    raw = tmp / "raw"
    raw.mkdir()
    with open(raw / "md17_ethanol.npz", "wb") as handle:
        np.save(handle, _ethanol()["R"])
    MD17(tmp, "ethanol", log=False)


@case(
    "data",
    "MD17: a text file named .npz",
    RawFileError,
    r"md17_ethanol\.npz: not an npz file \(a zip archive of named arrays\); it is a file starting with b'frame,en'",
)
def _(tmp: Path) -> None:
    raw = tmp / "raw"
    raw.mkdir()
    (raw / "md17_ethanol.npz").write_text("frame,energy\n0,-97000.1\n")
    MD17(tmp, "ethanol", log=False)


@case(
    "data",
    "QM9 record whose atom count is one too small",
    RawFileError,
    r"member dsgdb9nsd_000002\.xyz, line 1: the atom count says 3 atoms but the record has 4 atom lines",
)
def _(tmp: Path) -> None:
    members = _qm9_members()
    name, text = members[1]  # NH3: 4 atoms
    members[1] = (name, "3" + text[text.index("\n") :])
    QM9(_qm9_root(tmp, members), log=False)


@case(
    "data",
    "ISO17 row whose total_energy is a string",
    RawFileError,
    r"reference\.db: row id 2: key 'total_energy' holds str '-11501 eV', expected a number \(eV\)",
)
def _(tmp: Path) -> None:
    rows = _iso17_rows()
    rows[1]["total_energy"] = "-11501 eV"
    ISO17(_iso17_root(tmp, rows), "reference", log=False)
