"""ISO17 (Schütt et al., NeurIPS 2017, section 5.3) from the published ``iso17.tar.gz``.

129 isomers of C7O2H10 from QM9, a 5,000-step MD trajectory each (645,000 conformations, PBE+vdW-TS).
The archive unpacks to ``root/raw/iso17/`` with one ASE SQLite database per fold -- key-value pair
``total_energy`` (eV) and data ``atomic_forces`` (eV/Angstrom, (19, 3)) per row -- plus the id
lists the paper used to split ``reference`` into training and validation:

====================  ==========================================================================
``reference``         80% of the steps of 80% of the trajectories (training and validation)
``reference_eq``      the equilibrium conformations of those molecules
``test_within``       the other 20% of steps of the same trajectories (known molecules)
``test_other``        every step of the remaining 20% of trajectories (unseen molecules)
``test_eq``           the equilibrium conformations of the unseen molecules
``train_ids.txt``,    ids of ``reference`` rows for training / validation
``validation_ids.txt``
====================  ==========================================================================
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from pyg_schnet.datasets.base import AtomsDataset, AtomsTable, RawFileError, RemoteFile
from pyg_schnet.datasets.split import random_split
from pyg_schnet.io.units import EV_TO_KCAL_PER_MOL

PathLike = Union[str, "os.PathLike[str]"]

ISO17_URL = "http://quantum-machine.org/datasets/iso17.tar.gz"
SPLITS: Tuple[str, ...] = ("reference", "reference_eq", "test_within", "test_other", "test_eq")
ID_FILES: Tuple[str, str] = ("train_ids.txt", "validation_ids.txt")
NUM_ATOMS = 19
#: ISO17's composition, C7O2H10: atomic number -> atoms per molecule.
COMPOSITION: Dict[int, int] = {6: 7, 8: 2, 1: 10}
#: The paper's validation size when the archive's id lists are absent (section 5).
DEFAULT_NUM_VAL = 1000


def _check_ase_sqlite(path: str) -> None:
    """Open read-only and look for ASE's ``systems`` table (ASE itself would write to a blank file)."""
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            rows = con.execute("SELECT COUNT(*) FROM systems").fetchone()[0] if "systems" in tables else None
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise RawFileError(f"{path}: not an SQLite database: {exc}") from exc
    if rows is None:
        raise RawFileError(f"{path}: not an ASE database (no 'systems' table; tables: {sorted(tables)})")
    if rows == 0:
        raise RawFileError(f"{path}: the database is empty (no rows)")


def _row_energy(path: str, row_id: int, key: str, value: object) -> float:
    """The row's energy as a float; a string, bool or array there is an error naming the row and key."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise RawFileError(
            f"{path}: row id {row_id}: key '{key}' holds {type(value).__name__} {value!r}, expected a number (eV)"
        )
    return float(value)


def _row_forces(path: str, row_id: int, key: str, value: object, shape: Tuple[int, ...]) -> np.ndarray:
    """The row's forces as float64 ``shape``; anything else is an error naming the row and key."""
    array = np.asarray(value)
    if array.dtype.kind not in "iuf":
        raise RawFileError(
            f"{path}: row id {row_id}: data '{key}' has dtype {array.dtype}, expected numbers (eV/Angstrom)"
        )
    if array.shape != shape:
        raise RawFileError(f"{path}: row id {row_id}: '{key}' has shape {array.shape}, positions {shape}")
    return array.astype(np.float64)


def read_ase_db(path: PathLike, energy_key: str = "total_energy", force_key: str = "atomic_forces") -> AtomsTable:
    """Read every row of an ASE database: ``z``, ``pos``, ``force`` per atom; ``energy``, ``idx`` per row.

    ``idx`` is the row's database id (1-based). An empty database, a missing key, an energy that is
    not a number, forces that are not numbers of the positions' shape, or a row stored periodic (a
    ``pbc`` flag set: the table holds molecules, whose cell would be dropped) raise
    :class:`RawFileError` naming the file, the row id and the key. The table names each molecule by
    its row id, so that :meth:`AtomsTable.validate` (atomic numbers, finiteness, coordinate bound,
    coincident atoms) does too.
    """
    import ase.db

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise RawFileError(f"{path}: no such database file")
    _check_ase_sqlite(path)
    numbers: List[np.ndarray] = []
    positions: List[np.ndarray] = []
    forces: List[np.ndarray] = []
    energies: List[float] = []
    ids: List[int] = []
    try:
        with ase.db.connect(path, type="db", create_indices=False) as db:
            for row in db.select():
                z = np.asarray(row.numbers, dtype=np.int64)
                pos = np.asarray(row.positions, dtype=np.float64)
                pbc = np.asarray(row.pbc, dtype=bool)
                if pbc.any():
                    raise RawFileError(
                        f"{path}: row id {row.id} is stored periodic (pbc {pbc.tolist()}, cell "
                        f"{np.asarray(row.cell).tolist()}); this data set holds molecules, and reading the row "
                        "as one would drop its periodic images"
                    )
                if energy_key not in row.key_value_pairs:
                    raise RawFileError(
                        f"{path}: row id {row.id} has no key '{energy_key}' (keys: {sorted(row.key_value_pairs)})"
                    )
                if force_key not in row.data:
                    raise RawFileError(f"{path}: row id {row.id} has no data '{force_key}' (data: {sorted(row.data)})")
                force = _row_forces(path, row.id, force_key, row.data[force_key], pos.shape)
                energy = _row_energy(path, row.id, energy_key, row.key_value_pairs[energy_key])
                numbers.append(z)
                positions.append(pos)
                forces.append(force)
                energies.append(energy)
                ids.append(int(row.id))
    except RawFileError:
        raise
    except (sqlite3.DatabaseError, OSError, ValueError, KeyError, TypeError) as exc:
        where = f"the row after row id {ids[-1]}" if ids else "the first row"
        raise RawFileError(f"{path}: not a readable ASE database ({where} cannot be read: {exc})") from exc
    if not ids:
        raise RawFileError(f"{path}: the database is empty (no rows)")
    counts = [len(z) for z in numbers]
    return AtomsTable(
        num_atoms=torch.tensor(counts, dtype=torch.long),
        atom_fields={
            "z": torch.from_numpy(np.concatenate(numbers)),
            "pos": torch.from_numpy(np.concatenate(positions).astype(np.float32)),
            "force": torch.from_numpy(np.concatenate(forces).astype(np.float32)),
        },
        graph_fields={
            "energy": torch.tensor(energies, dtype=torch.float64),
            "idx": torch.tensor(ids, dtype=torch.long),
        },
        source=path,
        origin="row id {}",
        origin_ids=torch.tensor(ids, dtype=torch.long),
        field_names={
            "z": "numbers",
            "pos": "positions",
            "energy": f"key '{energy_key}'",
            "force": f"data '{force_key}'",
        },
    )


def _formula(z: Tensor) -> str:
    """Hill-like formula of atomic numbers ``z`` in ISO17's order (C, O, H, then the others)."""
    from ase.data import chemical_symbols

    values, counts = torch.unique(z, return_counts=True)
    order = sorted(zip(values.tolist(), counts.tolist()), key=lambda vc: ([6, 8, 1] + [vc[0]]).index(vc[0]))
    return "".join(f"{chemical_symbols[v]}{c if c > 1 else ''}" for v, c in order)


def read_id_list(path: PathLike) -> List[int]:
    """Integer ids, one per line (blank lines and ``#`` comments skipped); errors name the line."""
    path = Path(path)
    ids: List[int] = []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            value = float(text)
        except ValueError:
            raise RawFileError(f"{path}, line {line_no}: {line.strip()!r} is not an id") from None
        if not value.is_integer():
            raise RawFileError(f"{path}, line {line_no}: {line.strip()!r} is not an integer id")
        ids.append(int(value))
    if not ids:
        raise RawFileError(f"{path}: no ids")
    return ids


class ISO17(AtomsDataset):
    r"""One fold of ISO17: conformations of C7O2H10 isomers with energies and forces.

    Each conformation is a :class:`~torch_geometric.data.Data` with ``z`` ``[19]`` long, ``pos``
    ``[19, 3]`` float32 (Angstrom), ``energy`` ``[1]`` float64 in eV and ``force`` ``[19, 3]``
    float32 in eV/Angstrom -- the file's units; multiply by :attr:`EV_TO_KCAL_PER_MOL` (e.g. with
    ``ScaleUnits(ISO17.EV_TO_KCAL_PER_MOL)``) for the paper's kcal/mol and kcal/mol/Angstrom --
    and ``idx`` ``[1]``, the row id in the fold's database.

    The paper's protocol: train and validate on ``reference``
    (:meth:`train_val_indices`), test on ``test_within`` (unseen conformations of known molecules)
    and on ``test_other`` (unseen molecules).

    Args:
        root: folder with ``raw/iso17/<split>.db``.
        split: one of ``reference``, ``reference_eq``, ``test_within``, ``test_other``, ``test_eq``.
    """

    energy_unit = "eV"
    force_unit = "eV/Angstrom"
    EV_TO_KCAL_PER_MOL: float = EV_TO_KCAL_PER_MOL
    splits: Tuple[str, ...] = SPLITS

    def __init__(
        self,
        root: PathLike,
        split: str,
        transform: Optional[Callable] = None,
        pre_transform: Optional[Callable] = None,
        pre_filter: Optional[Callable] = None,
        force_reload: bool = False,
        log: bool = True,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown ISO17 split {split!r}; choose from {list(SPLITS)}")
        self.split = split
        super().__init__(root, transform, pre_transform, pre_filter, force_reload=force_reload, log=log)

    @property
    def raw_file_names(self) -> List[str]:
        return [os.path.join("iso17", f"{self.split}.db")]

    @property
    def remote_files(self) -> Sequence[RemoteFile]:
        provides = tuple(os.path.join("iso17", f"{s}.db") for s in SPLITS)
        return (RemoteFile(ISO17_URL, "iso17.tar.gz", provides=provides, extract=True),)

    @property
    def processed_stem(self) -> str:
        return f"iso17_{self.split}"

    def read_raw(self) -> AtomsTable:
        table = read_ase_db(self.raw_paths[0])
        wrong = torch.nonzero(table.num_atoms != NUM_ATOMS).flatten()
        if wrong.numel():
            g = int(wrong[0])
            raise RawFileError(
                f"{self.raw_paths[0]}: row id {int(table.graph_fields['idx'][g])} has "
                f"{int(table.num_atoms[g])} atoms; ISO17 molecules (C7O2H10) have {NUM_ATOMS}"
            )
        return table

    def check_table(self, table: AtomsTable) -> None:
        """Every row is C7O2H10 (after the generic checks, so that e.g. an atomic number 0 is named as such)."""
        z = table.atom_fields["z"].reshape(-1, NUM_ATOMS)
        counts = torch.stack([(z == element).sum(dim=1) for element in COMPOSITION], dim=1)
        wrong = torch.nonzero((counts != torch.tensor(list(COMPOSITION.values()))).any(dim=1)).flatten()
        if wrong.numel():
            g = int(wrong[0])
            raise RawFileError(
                f"{self.raw_paths[0]}: row id {int(table.graph_fields['idx'][g])} is {_formula(z[g])}, not "
                f"C7O2H10 (every ISO17 molecule is an isomer of C7O2H10); {wrong.numel()} row(s) of "
                f"{len(table)} differ"
            )

    def processing_summary(self) -> Dict[str, object]:
        return {"split": self.split}

    # ------------------------------------------------------------------------------------
    @property
    def id_list_paths(self) -> Tuple[Path, Path]:
        """``raw/iso17/train_ids.txt`` and ``raw/iso17/validation_ids.txt``."""
        folder = Path(self.raw_dir) / "iso17"
        return (folder / ID_FILES[0], folder / ID_FILES[1])

    def train_val_indices(self, seed: int = 0, n_val: Optional[int] = None) -> Tuple[Tensor, Tensor]:
        """Training and validation positions in this ``reference`` data set (the paper's protocol).

        * With ``raw/iso17/train_ids.txt`` and ``raw/iso17/validation_ids.txt`` present (as the
          archive ships them): their ids are **1-based row ids of reference.db** (ASE database
          ids, stored here as ``data.idx``) and are mapped to positions in this data set. Every id
          must exist and the two lists must not overlap; ``n_val``, if given, must equal the
          validation list's length. ``seed`` is not used.
        * Without them: a seeded permutation (:func:`~pyg_schnet.datasets.random_split` with
          ``seed``) gives ``n_val`` validation examples (default 1,000, the paper's size) and
          uses every other example for training.

        Returns:
            ``(train_idx, val_idx)``, ``torch.long`` tensors of positions, usable as
            ``dataset[train_idx]``.
        """
        if self.split != "reference":
            raise ValueError(f"train_val_indices() applies to the 'reference' split, not {self.split!r}")
        train_path, val_path = self.id_list_paths
        present = [p.exists() for p in (train_path, val_path)]
        if all(present):
            return self._indices_from_lists(train_path, val_path, n_val)
        if any(present):
            have, lack = (train_path, val_path) if present[0] else (val_path, train_path)
            raise FileNotFoundError(f"{have} exists but {lack} does not; place both id lists or neither")
        n_val = DEFAULT_NUM_VAL if n_val is None else n_val
        split = random_split(len(self), n_train=len(self) - n_val if n_val <= len(self) else 0, n_val=n_val, seed=seed)
        return split.train, split.val

    def _indices_from_lists(self, train_path: Path, val_path: Path, n_val: Optional[int]) -> Tuple[Tensor, Tensor]:
        row_ids = self.row_ids()
        position = {int(r): p for p, r in enumerate(row_ids.tolist())}
        out = []
        for path in (train_path, val_path):
            ids = read_id_list(path)
            seen: Dict[int, int] = {}
            positions = []
            for line_no, rid in enumerate(ids, 1):
                if rid in seen:
                    raise RawFileError(f"{path}: id {rid} appears twice")
                seen[rid] = line_no
                if rid not in position:
                    lo, hi = min(position), max(position)
                    raise RawFileError(
                        f"{path}: id {rid} is not a row of {self.raw_paths[0]} (row ids {lo}..{hi}; "
                        "ids are 1-based database ids)"
                    )
                positions.append(position[rid])
            out.append(torch.tensor(positions, dtype=torch.long))
        train_idx, val_idx = out
        overlap = set(train_idx.tolist()) & set(val_idx.tolist())
        if overlap:
            raise RawFileError(f"{train_path} and {val_path} share {len(overlap)} id(s)")
        if n_val is not None and n_val != val_idx.numel():
            raise ValueError(f"n_val={n_val} differs from the {val_idx.numel()} ids in {val_path}")
        return train_idx, val_idx

    def row_ids(self) -> Tensor:
        """Database row ids (``data.idx``) of the examples this data set exposes, in its order."""
        ids = self._data.idx
        if self._indices is None:
            return ids
        return ids[torch.as_tensor(list(self.indices()), dtype=torch.long)]

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({len(self)}, split={self.split!r})"
