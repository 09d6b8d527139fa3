"""Audit cases of issue 20 for data sets and periodic cells: links in the QM9 archive, CR-only QM9
records, symbolic link loops, repeated MD17 frames, ISO17 rows that are no C7O2H10 molecule or are
stored periodic; nearly degenerate cells, atoms on (or 0.003 Angstrom from) images, the search's memory.

Raw files are built from scratch in the case's folder (the helpers of :mod:`.cases_data`), so the
audit needs no downloaded data.
"""

from __future__ import annotations

import io
import tarfile
import warnings
from pathlib import Path

import numpy as np
import torch

from pyg_schnet.datasets import ISO17, MD17, QM9, RawFileError
from pyg_schnet.datasets.errors import DuplicateFramesWarning, SymlinkLoopError

from .cases_data import _ethanol, _iso17_root, _iso17_rows, _md17_root, _qm9_members, _qm9_root
from .registry import case


def _with_link(tmp: Path, kind: bytes) -> Path:
    root = _qm9_root(tmp, _qm9_members())
    archive = root / "raw" / "dsgdb9nsd.xyz.tar.bz2"
    with tarfile.open(archive, "r:bz2") as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(archive, "w:bz2") as tar:
        for member, payload in members:
            tar.addfile(member, io.BytesIO(payload))
        link = tarfile.TarInfo("dsgdb9nsd_000006.xyz")
        link.type, link.linkname = kind, "dsgdb9nsd_000005.xyz"
        tar.addfile(link)
    return root


@case(
    "data",
    "QM9 archive with a member that is a symbolic link (dropped silently before: 19 of 20 loaded)",
    RawFileError,
    r"1 member\(s\) are not regular files .*dsgdb9nsd_000006\.xyz \(symbolic link to dsgdb9nsd_000005\.xyz\)",
)
def _(tmp: Path) -> None:
    QM9(_with_link(tmp, tarfile.SYMTYPE), log=False)


@case(
    "data",
    "QM9 archive with a member that is a hard link",
    RawFileError,
    r"dsgdb9nsd_000006\.xyz \(hard link to dsgdb9nsd_000005\.xyz\)",
)
def _(tmp: Path) -> None:
    QM9(_with_link(tmp, tarfile.LNKTYPE), log=False)


@case("data", "QM9 records with CR-only (old Mac) line endings", None, r"5 molecules loaded, positions equal")
def _(tmp: Path) -> str:
    members = _qm9_members()
    unix = QM9(_qm9_root(tmp / "lf", members), log=False)
    mac = QM9(_qm9_root(tmp / "cr", [(name, text.replace("\n", "\r")) for name, text in members]), log=False)
    same = all(torch.equal(a.pos, b.pos) and torch.equal(a.y, b.y) for a, b in zip(mac, unix))
    return f"{len(mac)} molecules loaded, positions equal to the LF records: {same}"


@case(
    "data",
    "data root that is a symbolic link to itself",
    SymlinkLoopError,
    r"MD17: data root <tmp>/loop: the path runs through a symbolic link loop \(<tmp>/loop -> loop\)",
)
def _(tmp: Path) -> None:
    (tmp / "loop").symlink_to("loop")
    MD17(tmp / "loop", "ethanol", log=False)


@case(
    "data",
    "raw file that is a loop of two symbolic links",
    SymlinkLoopError,
    r"MD17: raw file <tmp>/md17/raw/md17_ethanol\.npz: .*symbolic link loop \(.*md17_ethanol\.npz -> a -> b -> a\)",
)
def _(tmp: Path) -> None:
    raw = tmp / "md17" / "raw"
    raw.mkdir(parents=True)
    (raw / "a").symlink_to("b")
    (raw / "b").symlink_to("a")
    (raw / "md17_ethanol.npz").symlink_to("a")
    MD17(tmp / "md17", "ethanol", log=False)


@case(
    "data",
    "MD17 file whose frames 8-9 repeat frames 2 and 5 (leaked into train and test before)",
    None,
    r"DuplicateFramesWarning: MD17: 2 of 10 examples repeat earlier ones .*8 = 2, 9 = 5.*; unique=True: 8 "
    r"distinct frames split, no copy shared",
)
def _(tmp: Path) -> str:
    arrays = _ethanol(8)
    order = np.array([0, 1, 2, 3, 4, 5, 6, 7, 2, 5])
    ds = MD17(_md17_root(tmp, {k: (v[order] if k != "z" else v) for k, v in arrays.items()}), "ethanol", log=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds.random_split(4, n_val=2)
    warned = [w for w in caught if issubclass(w.category, DuplicateFramesWarning)]
    split = ds.random_split(4, n_val=2, unique=True)
    chosen = torch.cat([split.train, split.val, split.test]).tolist()
    shared = any(int(ds.repeated_frames()[i]) != i for i in chosen)
    return (
        f"DuplicateFramesWarning: {warned[0].message}; unique=True: {len(chosen)} distinct frames split, "
        f"{'a copy shared' if shared else 'no copy shared'}"
    )


@case(
    "data",
    "ISO17 row that is C7O2H9F (19 atoms, not C7O2H10)",
    RawFileError,
    r"reference\.db: row id 2 is C7O2H9F, not C7O2H10",
)
def _(tmp: Path) -> None:
    rows = _iso17_rows()
    rows[1]["numbers"] = rows[1]["numbers"].copy()
    rows[1]["numbers"][-1] = 9
    ISO17(_iso17_root(tmp, rows), "reference", log=False)


@case(
    "data",
    "ISO17 row stored periodic (pbc True, a 10 Angstrom cell)",
    RawFileError,
    r"reference\.db: row id 3 is stored periodic \(pbc \[True, True, True\]",
)
def _(tmp: Path) -> None:
    import ase.db
    from ase import Atoms

    root = _iso17_root(tmp, _iso17_rows(2))
    row = _iso17_rows(3)[2]
    with ase.db.connect(str(root / "raw" / "iso17" / "reference.db"), type="db") as db:
        db.write(
            Atoms(numbers=row["numbers"], positions=row["positions"], cell=[10.0] * 3, pbc=True),
            key_value_pairs={"total_energy": row["total_energy"]},
            data={"atomic_forces": row["atomic_forces"]},
        )
    ISO17(root, "reference", log=False)


# ----------------------------------------------------------------------------------------------
# periodic cells
# ----------------------------------------------------------------------------------------------
def _model(cutoff: float = 4.0):
    from pyg_schnet import SchNet

    torch.manual_seed(0)
    return SchNet(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=8, cutoff=cutoff).double()


def _run(pos, cell, pbc=(True, True, True), cutoff: float = 4.0, z=None) -> None:
    pos = torch.as_tensor(pos, dtype=torch.float64)
    z = torch.full((len(pos),), 6) if z is None else z
    _model(cutoff)(z, pos, None, torch.as_tensor(cell, dtype=torch.float64)[None], torch.tensor([list(pbc)]))


@case(
    "periodic",
    "nearly degenerate cell: third vector tilted onto the first by t = 1e-4 (no answer after 200 s before)",
    ValueError,
    r"structure 0: the cell .* is nearly degenerate for the neighbour search: its heights .* are \[0\.0003, 3, "
    r"0\.0003\] Angstrom .* 3\.56e\+09 image cells, more than the limit .*MAX_IMAGE_CELLS.*minkowski_reduce",
)
def _(tmp: Path) -> None:
    t = 1e-4
    _run([[0.1, 0.2, 0.0], [1.5, 1.5, 0.0001]], [[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [3.0 * (1 - t), 0.0, 3.0 * t]])


@case(
    "periodic",
    "lattice vector 0.003 Angstrom long (atoms 0.003 Angstrom from their own images, accepted before)",
    ValueError,
    r"structure 0: lattice vector 0 of the cell .* is 0\.003 Angstrom long, so every atom is that close to its own "
    r"periodic image",
)
def _(tmp: Path) -> None:
    _run([[0.0, 0.0, 0.0], [0.0, 1.5, 1.5]], np.diag([0.003, 3.0, 3.0]))


@case(
    "periodic",
    "atom 0.0028 Angstrom from its own image through a_3 - a_1 (each lattice vector 3 Angstrom long)",
    ValueError,
    r"atom 0 of structure 0 is 0\.00283 Angstrom from its own periodic image shifted by .* closer than 0\.01",
)
def _(tmp: Path) -> None:
    _run([[0.3, 0.4, 0.5]], [[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [3.002, 0.0, 0.002]], (True, False, True), cutoff=0.5)


@case(
    "periodic",
    "atom 0.003 Angstrom from a periodic image of another atom",
    ValueError,
    r"atoms 0 and 1 of structure 0 are 0\.003 Angstrom apart \(atom 1 near atom 0.s image shifted by \[0, 1, 0\]",
)
def _(tmp: Path) -> None:
    _run([[0.5, 0.5, 0.5], [0.503, 3.5, 0.5]], 3.0 * np.eye(3))


@case(
    "periodic",
    "4,000 atoms in a 5 Angstrom periodic cube (a unit mistake): the search's memory",
    MemoryError,
    r"the periodic neighbour search of this batch would return about 3\.35e\+07 pairs and need about 6\.2 GiB, "
    r"more than the limit of 4\.0 GiB",
)
def _(tmp: Path) -> None:
    pos = np.random.default_rng(0).uniform(0.0, 5.0, (4000, 3))
    _run(pos, 5.0 * np.eye(3), cutoff=5.0)
