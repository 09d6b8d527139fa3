"""QM9 (Ramakrishnan et al., Sci. Data 1, 140022, 2014) from its original published files.

Raw files (figshare collection 978904), all in ``root/raw``:

* ``dsgdb9nsd.xyz.tar.bz2`` (figshare file 3195389): 133,885 files ``dsgdb9nsd_<id>.xyz``, one
  molecule each, tab-separated: line 1 the atom count ``n``; line 2 ``gdb <id>`` and 15 properties;
  ``n`` lines ``element x y z mulliken_charge``; then the harmonic frequencies, two SMILES and two
  InChI strings. Some numbers use Fortran notation (``1.2*^-6`` for ``1.2e-6``).
* ``atomref.txt`` (figshare file 3195395): header lines, then one row per element H, C, N, O, F
  with the atoms' ZPVE, U0, U, H, G (Hartree) and Cv (cal/(mol K)).
* ``uncharacterized.txt`` (figshare file 3195404): header lines, one row per molecule whose
  B3LYP geometry changed its bonding (first field: its gdb id), a closing line. 3,054 ids; they
  are dropped, leaving 130,831 molecules.

Both text files are parsed by content (element symbols, integer ids), not by line numbers.

Training targets (:data:`QM9_TARGETS`, ``QM9(root, target=name)``): the 12 properties the SchNet papers
and SchNetPack train, each with the unit the model trains in, the unit the literature reports its MAE
in, the head its physics needs (``kind``: a sum of atom contributions, their mean, or the dipole of
latent charges) and, for the sums QM9 publishes atom references for, the column of ``atomref.txt``.
The processed file holds all 15 raw columns in the raw units whatever the target; a target is picked
(and converted) when an example is read, so one processed file serves every target and never serves a
column it was not asked for.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from ase import units as _ase_units
from ase.data import atomic_numbers as _ase_atomic_numbers
from torch import Tensor
from torch_geometric.data import Data

from pyg_schnet.datasets.base import (
    AtomsDataset,
    AtomsTable,
    DownloadVerificationError,
    RawFileError,
    RemoteFile,
    open_tar_stream,
)
from pyg_schnet.io.units import EV_TO_KCAL_PER_MOL, HARTREE_TO_EV, HARTREE_TO_KCAL_PER_MOL

PathLike = Union[str, "os.PathLike[str]"]

FIGSHARE = "https://ndownloader.figshare.com/files/"
ARCHIVE = "dsgdb9nsd.xyz.tar.bz2"
ATOMREF = "atomref.txt"
UNCHARACTERIZED = "uncharacterized.txt"

#: Published counts, checked after a download.
NUM_RECORDS = 133_885
NUM_UNCHARACTERIZED = 3_054
NUM_CHARACTERIZED = NUM_RECORDS - NUM_UNCHARACTERIZED  # 130,831

#: The 15 properties of line 2, in the raw file's order, and their units.
TARGET_NAMES: Tuple[str, ...] = (
    "A",
    "B",
    "C",
    "mu",
    "alpha",
    "homo",
    "lumo",
    "gap",
    "r2",
    "zpve",
    "U0",
    "U",
    "H",
    "G",
    "Cv",
)
TARGET_UNITS: Tuple[str, ...] = (
    "GHz",
    "GHz",
    "GHz",
    "Debye",
    "a0^3",
    "Hartree",
    "Hartree",
    "Hartree",
    "a0^2",
    "Hartree",
    "Hartree",
    "Hartree",
    "Hartree",
    "Hartree",
    "cal/(mol K)",
)
#: Columns of atomref.txt after the element symbol, in the file's order.
ATOMREF_NAMES: Tuple[str, ...] = ("zpve", "U0", "U", "H", "G", "Cv")
ATOMREF_ELEMENTS: Tuple[str, ...] = ("H", "C", "N", "O", "F")

#: The output kinds a QM9 target asks of the model (``SchNetConfig.output``): ``"extensive"`` sums atom
#: contributions, ``"intensive"`` averages them, ``"dipole_moment"`` is the norm of the dipole of latent
#: atomic charges that sum to the molecule's charge (zero for QM9).
TARGET_KINDS: Tuple[str, ...] = ("extensive", "intensive", "dipole_moment")

#: 1 Debye in e*Angstrom (about 0.2081943), from :mod:`ase.units` (whose charge unit is e and length
#: unit Angstrom).
DEBYE_TO_E_ANGSTROM: float = float(_ase_units.Debye)


@dataclass(frozen=True)
class Qm9Target:
    r"""One QM9 training target: where it is in the raw file and how it is trained and reported.

    A raw value :math:`v` (column :attr:`column` of ``y``, in :attr:`raw_unit`) becomes the training
    target ``data.energy`` :math:`= c\, v` with :math:`c` = :attr:`factor`, in :attr:`unit`; a test MAE in
    :attr:`unit` times :attr:`literature_factor` is the MAE in :attr:`literature_unit`, the unit in which
    the SchNet papers and their successors report it.

    Attributes:
        name: the target's name (``"homo"``), as in :data:`TARGET_NAMES`.
        column: its column of ``y`` (0 .. 14).
        description: what it is.
        raw_unit: the unit of the raw file (and of ``y``).
        unit: the unit the model trains in (``data.energy``); for energies an :mod:`ase.units` name.
        factor: raw unit -> :attr:`unit`.
        literature_unit: the unit of the published MAEs.
        literature_factor: :attr:`unit` -> :attr:`literature_unit`.
        kind: the head it needs, one of :data:`TARGET_KINDS`.
        atomref: the ``atomref.txt`` column of its per-element references (``None``: QM9 publishes none).
        is_energy: whether it is an energy (its :attr:`unit` is then the data set's ``energy_unit``).
    """

    name: str
    column: int
    description: str
    raw_unit: str
    unit: str
    factor: float
    literature_unit: str
    literature_factor: float
    kind: str
    atomref: Optional[str]
    is_energy: bool

    def as_dict(self) -> Dict[str, object]:
        """A JSON-ready record (``results.json``)."""
        return {
            "name": self.name,
            "column": self.column,
            "description": self.description,
            "raw_unit": self.raw_unit,
            "unit": self.unit,
            "factor": self.factor,
            "literature_unit": self.literature_unit,
            "literature_factor": self.literature_factor,
            "kind": self.kind,
            "atomref": self.atomref,
        }


def _targets() -> Dict[str, Qm9Target]:
    kcal = "kcal/mol"
    from_kcal_to_ev = 1.0 / EV_TO_KCAL_PER_MOL
    rows = [
        # name, description, unit, raw -> unit, literature unit, unit -> literature, kind, atomref, energy
        (
            "mu",
            "dipole moment",
            "e*Angstrom",
            DEBYE_TO_E_ANGSTROM,
            "Debye",
            1.0 / DEBYE_TO_E_ANGSTROM,
            "dipole_moment",
            None,
            False,
        ),
        ("alpha", "isotropic polarizability", "Bohr^3", 1.0, "Bohr^3", 1.0, "extensive", None, False),
        ("homo", "HOMO energy", "eV", HARTREE_TO_EV, "eV", 1.0, "intensive", None, True),
        ("lumo", "LUMO energy", "eV", HARTREE_TO_EV, "eV", 1.0, "intensive", None, True),
        ("gap", "HOMO-LUMO gap", "eV", HARTREE_TO_EV, "eV", 1.0, "intensive", None, True),
        ("r2", "electronic spatial extent", "Bohr^2", 1.0, "Bohr^2", 1.0, "extensive", None, False),
        (
            "zpve",
            "zero-point vibrational energy",
            kcal,
            HARTREE_TO_KCAL_PER_MOL,
            "eV",
            from_kcal_to_ev,
            "extensive",
            "zpve",
            True,
        ),
        ("U0", "internal energy at 0 K", kcal, HARTREE_TO_KCAL_PER_MOL, "eV", from_kcal_to_ev, "extensive", "U0", True),
        (
            "U",
            "internal energy at 298.15 K",
            kcal,
            HARTREE_TO_KCAL_PER_MOL,
            "eV",
            from_kcal_to_ev,
            "extensive",
            "U",
            True,
        ),
        ("H", "enthalpy at 298.15 K", kcal, HARTREE_TO_KCAL_PER_MOL, "eV", from_kcal_to_ev, "extensive", "H", True),
        ("G", "free energy at 298.15 K", kcal, HARTREE_TO_KCAL_PER_MOL, "eV", from_kcal_to_ev, "extensive", "G", True),
        ("Cv", "heat capacity at 298.15 K", "cal/(mol K)", 1.0, "cal/(mol K)", 1.0, "extensive", "Cv", False),
    ]
    out = {}
    for name, description, unit, factor, lit_unit, lit_factor, kind, atomref, energy in rows:
        column = TARGET_NAMES.index(name)
        out[name] = Qm9Target(
            name, column, description, TARGET_UNITS[column], unit, factor, lit_unit, lit_factor, kind, atomref, energy
        )
    return out


#: The 12 training targets by name, in the order of the SchNet papers' tables (the raw file's order
#: without the rotational constants A, B, C).
QM9_TARGETS: Dict[str, Qm9Target] = _targets()


def qm9_target(name: str) -> Qm9Target:
    """The :class:`Qm9Target` called ``name`` (case-sensitive, as the papers spell it: ``"U0"``, ``"Cv"``).

    Raises:
        ValueError: an unknown name, listing the 12 targets (and saying why A, B, C are not among them).
    """
    target = QM9_TARGETS.get(name) if isinstance(name, str) else None
    if target is None:
        hint = ""
        if isinstance(name, str):
            folded = [t for t in QM9_TARGETS if t.lower() == name.lower()]
            if folded:
                hint = f" (did you mean {folded[0]!r}? names are case-sensitive)"
            elif name in ("A", "B", "C"):
                hint = " (the rotational constants A, B, C are in QM9.y but are not a training target)"
        raise ValueError(f"unknown QM9 target {name!r}{hint}; the 12 targets are {', '.join(QM9_TARGETS)}")
    return target


class SelectTarget:
    """``data.energy`` (``[1]`` float64) := column :attr:`Qm9Target.column` of ``data.y`` times
    :attr:`Qm9Target.factor`, the target in the unit the model trains in. Returns a shallow copy; ``y``
    stays as it is (all 15 raw columns, raw units)."""

    def __init__(self, target: Qm9Target) -> None:
        self.target = target

    def __call__(self, data: Data) -> Data:
        y = getattr(data, "y", None)
        if y is None or y.dim() != 2 or y.size(-1) != len(TARGET_NAMES):
            shape = None if y is None else tuple(y.shape)
            raise ValueError(f"QM9 target {self.target.name!r}: expected data.y of shape [1, 15], got {shape}")
        out = copy.copy(data)
        out.energy = y[:, self.target.column].to(torch.float64) * self.target.factor
        return out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.target.name!r}, factor={self.target.factor!r})"


_ELEMENTS: Dict[str, int] = {s: z for s, z in _ase_atomic_numbers.items() if z > 0}
_MEMBER_ID = re.compile(r"dsgdb9nsd_(\d+)\.xyz$")


class Qm9Record:
    """One parsed xyz file: gdb id, atomic numbers, positions (Angstrom) and the 15 properties."""

    __slots__ = ("gdb_id", "numbers", "positions", "properties")

    def __init__(self, gdb_id: int, numbers: List[int], positions: List[float], properties: List[float]):
        self.gdb_id = gdb_id
        self.numbers = numbers
        self.positions = positions  # flat [x0, y0, z0, x1, ...]
        self.properties = properties

    @property
    def positions_array(self) -> np.ndarray:
        return np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)


def parse_qm9_xyz(text: str, source: str) -> Qm9Record:
    """Parse one QM9 xyz file; ``source`` names it in errors (e.g. ``archive member x.xyz``).

    Raises :class:`~pyg_schnet.datasets.base.RawFileError` naming ``source`` and the 1-based line; an
    atom count (line 1) that disagrees with the number of atom lines is named as such. Values are
    checked (finite, bounded, no coincident atoms) by :meth:`AtomsTable.validate` after parsing.
    Lines may end in ``\n``, ``\r\n`` or a lone ``\r`` (old Mac text files): all are read alike.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "*^" in text:
        text = text.replace("*^", "e")
    lines = text.split("\n")
    line_no = 1
    try:
        num_atoms = int(lines[0])
        if num_atoms < 1:
            raise ValueError(f"atom count must be positive, got {num_atoms}")
        line_no = 2
        head = lines[1].split()
        if len(head) != 17 or head[0] != "gdb":
            raise ValueError(f"expected 'gdb <id>' and 15 properties, found {len(head)} fields")
        gdb_id = int(head[1])
        properties = [float(v) for v in head[2:]]
        numbers: List[int] = []
        positions: List[float] = []
        elements = _ELEMENTS
        for k in range(num_atoms):
            line_no = 3 + k
            parts = lines[2 + k].split()
            if len(parts) != 5:
                raise ValueError(f"expected 'element x y z charge', found {len(parts)} fields")
            z = elements.get(parts[0])
            if z is None:
                raise ValueError(f"unknown element symbol {parts[0]!r}")
            numbers.append(z)
            positions.extend((float(parts[1]), float(parts[2]), float(parts[3])))
            float(parts[4])  # Mulliken charge: not used, but must be a number
        line_no = num_atoms + 3
        frequencies = lines[num_atoms + 2].split()
        if not frequencies:
            raise ValueError("expected the harmonic frequencies after the atoms")
        float(frequencies[0])
        for offset, what in ((3, "the SMILES strings"), (4, "the InChI strings")):
            line_no = num_atoms + 1 + offset
            if not lines[num_atoms + offset].strip():
                raise ValueError(f"expected {what}, found an empty line")
    except IndexError:
        count = len(lines) - (lines[-1] == "")
        raise RawFileError(f"{source}, line {line_no}: the record ends early (it has {count} lines)") from None
    except ValueError as exc:
        if line_no >= 3:
            atom_lines = _count_atom_lines(lines)
            if atom_lines != num_atoms:
                raise RawFileError(
                    f"{source}, line 1: the atom count says {num_atoms} atoms but the record has {atom_lines} "
                    f"atom lines (line {line_no}: {exc})"
                ) from None
        raise RawFileError(f"{source}, line {line_no}: {exc}") from None
    return Qm9Record(gdb_id, numbers, positions, properties)


def _count_atom_lines(lines: List[str]) -> int:
    """Consecutive lines from line 3 that look like ``element x y z charge`` (five fields, the first
    not a number); the frequencies line after them is all numbers."""
    count = 0
    for line in lines[2:]:
        parts = line.split()
        if len(parts) != 5:
            break
        try:
            float(parts[0])
        except ValueError:
            count += 1
            continue
        break
    return count


def parse_atomref(path: PathLike) -> Dict[str, Dict[str, float]]:
    """Read ``atomref.txt``: ``{element: {"zpve": ..., "U0": ..., ..., "Cv": ...}}``.

    A row is a line whose first field is an element symbol followed by six numbers; every other
    line is a header, rule or note. Each of H, C, N, O and F must appear exactly once.
    """
    path = Path(path)
    rows: Dict[str, Dict[str, float]] = {}
    where: Dict[str, int] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        parts = line.split()
        if len(parts) < 7 or parts[0] not in _ELEMENTS:
            continue
        try:
            values = [float(v.replace("*^", "e")) for v in parts[1:7]]
        except ValueError:
            continue  # e.g. a header line that begins with a symbol-like word
        if len(parts) != 7:
            raise RawFileError(f"{path}, line {line_no}: element row has {len(parts)} fields, expected 7")
        symbol = parts[0]
        if symbol in rows:
            raise RawFileError(f"{path}, line {line_no}: element {symbol} already given on line {where[symbol]}")
        rows[symbol] = dict(zip(ATOMREF_NAMES, values))
        where[symbol] = line_no
    missing = [s for s in ATOMREF_ELEMENTS if s not in rows]
    if missing:
        raise RawFileError(f"{path}: no row for element(s) {missing}; found {sorted(rows)}")
    return rows


def parse_uncharacterized(path: PathLike) -> List[int]:
    """Read ``uncharacterized.txt``: the gdb ids (first field of each table row), in file order.

    A row is a line whose first field is a positive integer followed by more fields; headers,
    rules (``====``) and prose are skipped. Repeated ids are an error naming both lines.
    """
    path = Path(path)
    ids: List[int] = []
    seen: Dict[int, int] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        parts = line.split()
        if len(parts) < 2 or not parts[0].isdigit():
            continue
        gdb_id = int(parts[0])
        if gdb_id < 1:
            raise RawFileError(f"{path}, line {line_no}: gdb ids start at 1, got {gdb_id}")
        if gdb_id in seen:
            raise RawFileError(f"{path}, line {line_no}: id {gdb_id} already listed on line {seen[gdb_id]}")
        seen[gdb_id] = line_no
        ids.append(gdb_id)
    if not ids:
        raise RawFileError(f"{path}: no molecule ids found (expected rows starting with a gdb id)")
    return ids


def iter_qm9_archive(path: PathLike, on_ignored: Optional[Callable[[str], None]] = None):
    """Stream ``(member_name, Qm9Record)`` from the tar.bz2 archive without unpacking it.

    Regular members that are not ``dsgdb9nsd_<id>.xyz`` are reported to ``on_ignored``; folders are
    skipped. Links (symbolic or hard) and special files hold no record of their own: they raise
    :class:`RawFileError` naming every such member (after the whole archive was read, so the
    message lists them all), never a silently shorter data set. A corrupt or truncated archive
    raises :class:`RawFileError` naming the archive and the last member read.
    """
    path = os.fspath(path)
    last = None
    not_files: List[str] = []
    try:
        with open_tar_stream(path) as tar:
            for member in tar:
                if member.isdir():
                    continue
                if not member.isfile():
                    not_files.append(_describe_member(member))
                    continue
                name = member.name
                match = _MEMBER_ID.search(name)
                if match is None:
                    if on_ignored is not None:
                        on_ignored(name)
                    continue
                handle = tar.extractfile(member)
                payload = handle.read() if handle is not None else b""
                last = name
                try:
                    text = payload.decode("ascii")
                except UnicodeDecodeError as exc:
                    line = payload[: exc.start].count(b"\n") + 1
                    raise RawFileError(f"{path}: member {name}, line {line}: not ASCII text") from None
                record = parse_qm9_xyz(text, f"{path}: member {name}")
                if record.gdb_id != int(match.group(1)):
                    raise RawFileError(
                        f"{path}: member {name}, line 2: gdb id {record.gdb_id} does not match the file name"
                    )
                yield name, record
    except RawFileError:
        raise
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        after = f" after member {last}" if last else " at its start"
        raise RawFileError(f"{path}: corrupt or truncated archive{after}: {exc}") from exc
    if not_files:
        shown = "; ".join(not_files[:10]) + (f"; and {len(not_files) - 10} more" if len(not_files) > 10 else "")
        raise RawFileError(
            f"{path}: {len(not_files)} member(s) are not regular files and hold no record of their own: {shown}. "
            "The published archive holds only regular files; repack it with the files themselves "
            "(e.g. tar --dereference --hard-dereference)"
        )


def _describe_member(member: tarfile.TarInfo) -> str:
    """``name (symbolic link to target)`` and the like, for a tar member that is not a regular file."""
    if member.issym():
        return f"{member.name} (symbolic link to {member.linkname})"
    if member.islnk():
        return f"{member.name} (hard link to {member.linkname})"
    kinds = {tarfile.FIFOTYPE: "FIFO", tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device"}
    return f"{member.name} ({kinds.get(member.type, f'tar member type {member.type!r}')})"


class _ClassOrInstanceMethod:
    """Call as ``QM9.atomref(name, root)`` or ``dataset.atomref(name)`` (root = dataset.root)."""

    def __init__(self, func: Callable) -> None:
        self.func = func
        functools.update_wrapper(self, func)

    def __get__(self, instance, owner):
        if instance is None:
            return functools.partial(self.func, owner, None)
        return functools.partial(self.func, owner, instance)


class QM9(AtomsDataset):
    r"""QM9: 130,831 equilibrium molecules with up to nine heavy atoms (C, N, O, F), B3LYP/6-31G(2df,p).

    Each molecule is a :class:`~torch_geometric.data.Data` with

    * ``z`` ``[n]`` long -- atomic numbers;
    * ``pos`` ``[n, 3]`` float32 -- positions in Angstrom;
    * ``y`` ``[1, 15]`` float64 -- the 15 properties of the raw file, in its order and units
      (:attr:`target_names`, :attr:`target_units`):

      ======  =========================  ============
      column  property                   unit
      ======  =========================  ============
      A B C   rotational constants       GHz
      mu      dipole moment              Debye
      alpha   isotropic polarizability   a0^3
      homo    HOMO energy                Hartree
      lumo    LUMO energy                Hartree
      gap     HOMO-LUMO gap              Hartree
      r2      electronic spatial extent  a0^2
      zpve    zero-point vib. energy     Hartree
      U0      internal energy at 0 K     Hartree
      U       internal energy, 298.15 K  Hartree
      H       enthalpy, 298.15 K         Hartree
      G       free energy, 298.15 K      Hartree
      Cv      heat capacity, 298.15 K    cal/(mol K)
      ======  =========================  ============

    * ``idx`` ``[1]`` long -- the gdb id (1-based, as in the file names);
    * ``energy`` ``[1]`` float64 -- with ``target=``: that target in the unit the model trains in
      (:class:`Qm9Target`), read from ``y`` when the example is read:

      ======  =============  ============  ==============  =============  ==========
      target  kind           trains in     MAE reported    atom refs      raw -> train
      ======  =============  ============  ==============  =============  ==========
      mu      dipole_moment  e*Angstrom    Debye           --             x 0.2081943
      alpha   extensive      Bohr^3        Bohr^3          --             x 1
      homo    intensive      eV            eV              --             x 27.2114
      lumo    intensive      eV            eV              --             x 27.2114
      gap     intensive      eV            eV              --             x 27.2114
      r2      extensive      Bohr^2        Bohr^2          --             x 1
      zpve    extensive      kcal/mol      eV              zpve (zeros)   x 627.5095
      U0      extensive      kcal/mol      eV              U0             x 627.5095
      U       extensive      kcal/mol      eV              U              x 627.5095
      H       extensive      kcal/mol      eV              H              x 627.5095
      G       extensive      kcal/mol      eV              G              x 627.5095
      Cv      extensive      cal/(mol K)   cal/(mol K)     Cv (2.981)     x 1
      ======  =============  ============  ==============  =============  ==========

      The energies U0, U, H, G and zpve train in kcal/mol as the paper's Table 1 does; the orbital
      energies in eV; mu in e*Angstrom, the unit of a dipole of charges (e) at positions (Angstrom),
      1 D = ``ase.units.Debye`` e*Angstrom. All factors come from :mod:`ase.units`.

    The 3,054 molecules of ``uncharacterized.txt`` are dropped (by id); nothing else is.
    :meth:`atomref` gives the per-element reference energies (zpve, U0, U, H, G, Cv) of
    ``atomref.txt``; :data:`HARTREE_TO_EV` and :data:`HARTREE_TO_KCAL_PER_MOL` (from
    :mod:`ase.units`) convert Hartree columns, e.g. with
    ``ScaleUnits(QM9.HARTREE_TO_KCAL_PER_MOL, target="U0")``.

    Args:
        root: folder with ``raw/dsgdb9nsd.xyz.tar.bz2``, ``raw/atomref.txt`` and
            ``raw/uncharacterized.txt`` (downloaded from figshare when missing).
        target: one of the 12 training targets (:data:`QM9_TARGETS`), or ``None`` (``y`` only). It sets
            :attr:`target`, :attr:`target_kind` (the model's ``output`` it needs), :attr:`target_unit` and,
            for energies, :attr:`energy_unit`; an unknown name raises :class:`ValueError` listing the 12
            before any file is read.

    Attributes:
        target: the :class:`Qm9Target` (``None`` without ``target=``).
        target_kind: ``"extensive"``, ``"intensive"`` or ``"dipole_moment"``.
        target_unit: the unit of ``data.energy`` (``""`` without a target).
        energy_unit: the same for an energy target, ``""`` for the others (mu, alpha, r2, Cv are no
            energies: nothing converts them as one), ``"Hartree"`` (the raw ``y``) without a target.
    """

    target_names: Tuple[str, ...] = TARGET_NAMES
    target_units: Tuple[str, ...] = TARGET_UNITS
    atomref_names: Tuple[str, ...] = ATOMREF_NAMES
    HARTREE_TO_EV: float = HARTREE_TO_EV
    HARTREE_TO_KCAL_PER_MOL: float = HARTREE_TO_KCAL_PER_MOL
    energy_unit = "Hartree"

    def __init__(
        self,
        root: PathLike,
        transform: Optional[Callable] = None,
        pre_transform: Optional[Callable] = None,
        pre_filter: Optional[Callable] = None,
        force_reload: bool = False,
        log: bool = True,
        *,
        target: Optional[str] = None,
    ) -> None:
        self.target: Optional[Qm9Target] = None if target is None else qm9_target(target)
        self.target_kind: str = "extensive" if self.target is None else self.target.kind
        self.target_unit: str = "" if self.target is None else self.target.unit
        if self.target is not None:
            self.energy_unit = self.target.unit if self.target.is_energy else ""
        self._select = None if self.target is None else SelectTarget(self.target)
        self._counts: Dict[str, object] = {}
        super().__init__(root, transform, pre_transform, pre_filter, force_reload=force_reload, log=log)

    def get(self, idx: int) -> Data:
        """Example ``idx``; with a target, ``energy`` is added (:class:`SelectTarget`) before ``transform``."""
        data = super().get(idx)
        return data if self._select is None else self._select(data)

    @property
    def raw_file_names(self) -> List[str]:
        return [ARCHIVE, ATOMREF, UNCHARACTERIZED]

    @property
    def remote_files(self) -> Sequence[RemoteFile]:
        return (
            RemoteFile(FIGSHARE + "3195389", ARCHIVE, expected_members=NUM_RECORDS),
            RemoteFile(FIGSHARE + "3195395", ATOMREF),
            RemoteFile(FIGSHARE + "3195404", UNCHARACTERIZED),
        )

    @property
    def processed_stem(self) -> str:
        return "qm9"

    @classmethod
    def target_index(cls, name: Union[str, int]) -> int:
        """Column of ``y`` for a property name (``"U0"``) or a checked integer index."""
        if isinstance(name, bool):
            raise TypeError(f"QM9 target must be a name or an index, got {name!r}")
        if isinstance(name, (int, np.integer)):
            if not 0 <= int(name) < len(cls.target_names):
                raise IndexError(f"QM9 target index {name} out of range 0..{len(cls.target_names) - 1}")
            return int(name)
        try:
            return cls.target_names.index(name)
        except ValueError:
            raise KeyError(f"unknown QM9 target {name!r}; choose from {list(cls.target_names)}") from None

    @_ClassOrInstanceMethod
    def atomref(cls, dataset: Optional["QM9"], name: str, root: Optional[PathLike] = None) -> Tensor:
        """Reference energy per element, ``[100]`` float64 indexed by atomic number (0 elsewhere).

        In the raw units of column ``name`` (one of :attr:`atomref_names`): Hartree, or
        cal/(mol K) for Cv. ``QM9.atomref("U0", root)`` reads ``root/raw/atomref.txt``;
        ``dataset.atomref("U0")`` uses the data set's root.
        """
        if name not in ATOMREF_NAMES:
            raise KeyError(f"QM9 has atom references for {list(ATOMREF_NAMES)}, not {name!r}")
        if root is None:
            if dataset is None:
                raise TypeError("QM9.atomref(name, root) needs the data set root")
            root = dataset.root
        rows = parse_atomref(Path(os.fspath(root)).expanduser() / "raw" / ATOMREF)
        out = torch.zeros(100, dtype=torch.float64)
        for symbol, values in rows.items():
            out[_ELEMENTS[symbol]] = values[name]
        return out

    def target_atomref(self) -> Optional[Tensor]:
        """The per-element references of :attr:`target` in its training unit, ``[100]`` float64 indexed by
        atomic number, for the extensive targets QM9 publishes them for (zpve, U0, U, H, G, Cv; the zpve
        references are zeros); ``None`` for the others and without a target."""
        if self.target is None or self.target.atomref is None:
            return None
        return self.atomref(self.target.atomref) * self.target.factor

    # ------------------------------------------------------------------------------------
    def verify_download(self, remote: RemoteFile, path: Path) -> None:
        super().verify_download(remote, path)
        if remote.filename == UNCHARACTERIZED:
            count = len(parse_uncharacterized(path))
            if count != NUM_UNCHARACTERIZED:
                raise DownloadVerificationError(
                    f"{remote.filename} from {remote.url} lists {count} ids, the published file {NUM_UNCHARACTERIZED}"
                )
        elif remote.filename == ATOMREF:
            parse_atomref(path)

    def read_raw(self) -> AtomsTable:
        raw = Path(self.raw_dir)
        atomref_rows = parse_atomref(raw / ATOMREF)  # checked here so that a bad file fails early
        excluded = set(parse_uncharacterized(raw / UNCHARACTERIZED))
        ignored: List[str] = []

        numbers: List[int] = []
        positions: List[float] = []
        properties: List[float] = []
        counts: List[int] = []
        ids: List[int] = []
        member_of: Dict[int, str] = {}
        dropped = 0
        for name, record in iter_qm9_archive(raw / ARCHIVE, on_ignored=ignored.append):
            if record.gdb_id in member_of:
                raise RawFileError(
                    f"{raw / ARCHIVE}: member {name}: gdb id {record.gdb_id} also in member {member_of[record.gdb_id]}"
                )
            member_of[record.gdb_id] = name
            if record.gdb_id in excluded:
                dropped += 1
                continue
            numbers.extend(record.numbers)
            positions.extend(record.positions)
            properties.extend(record.properties)
            counts.append(len(record.numbers))
            ids.append(record.gdb_id)

        table = AtomsTable(
            num_atoms=torch.tensor(counts, dtype=torch.long),
            atom_fields={
                "z": torch.tensor(numbers, dtype=torch.long),
                "pos": torch.from_numpy(np.asarray(positions, dtype=np.float64).reshape(-1, 3)).float(),
            },
            graph_fields={
                "y": torch.from_numpy(np.asarray(properties, dtype=np.float64).reshape(-1, 15)),
                "idx": torch.tensor(ids, dtype=torch.long),
            },
            source=str(raw / ARCHIVE),
            origin="molecule {0} (member dsgdb9nsd_{0:06d}.xyz)",
            origin_ids=torch.tensor(ids, dtype=torch.long),
            field_names={"z": "element", "pos": "coordinates", "y": "line 2 property"},
            columns={"y": TARGET_NAMES},
        )
        id_array = np.asarray(ids, dtype=np.int64)
        if id_array.size and np.any(np.diff(id_array) < 0):
            table = table.select(np.argsort(id_array, kind="stable"))

        self._counts = {
            "records_read": len(member_of),
            "dropped_uncharacterized": dropped,
            "kept": len(ids),
            "uncharacterized_listed": len(excluded),
            "uncharacterized_not_in_archive": len(excluded - set(member_of)),
            "ignored_members": ignored,
            "atomref_elements": sorted(atomref_rows),
        }
        return table

    def processing_summary(self) -> Dict[str, object]:
        return dict(self._counts)

    def __repr__(self) -> str:
        target = "" if self.target is None else f", target={self.target.name!r}"
        return f"{self.__class__.__name__}({len(self)}{target})"
