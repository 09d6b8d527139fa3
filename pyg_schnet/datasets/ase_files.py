"""Your own data: any file ASE reads (extended XYZ, an ASE database, a trajectory, ...) or a list of
:class:`ase.Atoms`, as a data set like the paper's.

:class:`ASEDataset` reads one or more files with :func:`ase.io.iread` (an ASE SQLite database, ``.db``,
row by row through :mod:`ase.db`, so that its key-value pairs and data are seen), frame by frame, and
keeps only tensors. The user names where each quantity lives -- a key of ``atoms.info``,
``atoms.arrays``, the attached calculator's results (``atoms.calc.results``; extended XYZ puts
``energy=``, ``forces`` and ``stress=`` there), a database row's key-value pairs or its ``data`` --
and declares the units of the file. Every key is looked up in that order:

    calculator results -> info -> arrays -> key-value pairs -> data

(a live calculator attached to an :class:`ase.Atoms` of a list, e.g. EMT, is asked to compute a
property it implements when its results lack it). Units are names of :mod:`ase.units` symbols
(:func:`pyg_schnet.io.units.unit_value`: ``"eV"``, ``"kcal/mol"``, ``"Hartree"``, ``"eV/Angstrom"``,
``"GPa"``); values are converted into the unit the model trains in (``train_unit``, kcal/mol by
default, the unit of the paper's tables)::

    E' = E u_E / u_T,        F' = F u_F / (u_T / Angstrom),        sigma' = sigma u_S / (u_T / Angstrom^3)

with ``u`` the value of a unit in ASE's units (eV, Angstrom). The data set's ``energy_unit`` is then
``train_unit``: the trainer records it as the model's unit in ``model.pt`` and the ASE calculator
converts back to eV. Each structure becomes a :class:`~torch_geometric.data.Data` with

==================  ===========================  ===========================================================
``z``               ``[n]`` long                 atomic numbers
``pos``             ``[n, 3]`` float32           positions, Angstrom
``energy``          ``[1]`` float64              energy, ``train_unit``
``force``           ``[n, 3]`` float32           forces (``forces_key``), ``train_unit``/Angstrom
``stress``          ``[1, 3, 3]`` float64        stress (``stress_key``; ASE's sign, Voigt or 3 x 3 in the
                                                 file), ``train_unit``/Angstrom^3
``cell``, ``pbc``   ``[1, 3, 3]`` float32,       lattice vectors (rows, Angstrom) and periodic axes, when
                    ``[1, 3]`` bool              any structure of the data set is periodic (a molecule
                                                 among them has ``pbc`` all false)
``<name>``          ``[1, ...]`` float64 or      an extra property (``properties`` per structure,
                    ``[n, ...]`` float32         ``atom_properties`` per atom), in the file's unit
``file_index``,     ``[1]`` long                 which file (position in :attr:`ASEDataset.files`) and
``frame_index``                                  which frame of it (a database's row id)
==================  ===========================  ===========================================================

Structures may differ in size and composition. The guarantees of the other data sets hold
(:mod:`pyg_schnet.datasets.base`): a tensors-only processed file with every raw file's sha256 in its
record (a changed file, another key, unit or index rebuilds it, with a message saying why), atomic
writes, and checks at load time that name the file and the frame: a missing key (listing the keys the
frame has), a wrong shape, a value that is not a number, non-finite values, absurd coordinates,
coincident atoms, unknown elements (:meth:`~pyg_schnet.datasets.table.AtomsTable.validate`), a
degenerate periodic cell, a stress on a structure without a periodic axis. Nothing is written before
every frame has passed. Memory: the frames' tensors (read in chunks, never a list of ``Atoms``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from pyg_schnet.datasets.base import AtomsDataset, AtomsTable, RawFileError, RemoteFile
from pyg_schnet.datasets.iso17 import _check_ase_sqlite
from pyg_schnet.datasets.split import SplitIndices, split_sizes
from pyg_schnet.io.units import unit_value

PathLike = Union[str, "os.PathLike[str]"]
Count = Union[int, float]

#: Field names a user's extra property may not take (our own fields and PyG's batching fields).
RESERVED_NAMES = frozenset(
    {"z", "pos", "energy", "force", "stress", "cell", "pbc", "file_index", "frame_index", "batch", "ptr", "y"}
    | {"edge_index", "edge_attr", "x", "idx", "num_nodes"}
)
#: Frames read before their arrays are joined into one chunk (bounds the per-frame Python objects).
CHUNK_FRAMES = 4096
#: File name endings read as an ASE SQLite database (row by row, with key-value pairs and data).
DB_SUFFIXES = (".db",)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Property:
    """An extra property to read: ``name`` in the ``Data``, ``key`` in the file, per atom or per structure,
    and the file's unit (recorded, not converted; ``None``: not stated)."""

    name: str
    key: str
    per_atom: bool
    unit: Optional[str] = None


def _properties(spec: Optional[Mapping[str, Any]], per_atom: bool, option: str) -> List[Property]:
    """``{"dipole": "mu"}`` or ``{"dipole": ("mu", "Debye")}`` -> :class:`Property` list (names checked)."""
    out: List[Property] = []
    for name, value in (spec or {}).items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"{option}: {name!r} is not a valid field name (letters, digits, _)")
        if name in RESERVED_NAMES:
            raise ValueError(f"{option}: {name!r} is a field of the data set itself; choose another name")
        if isinstance(value, str):
            key, unit = value, None
        elif isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, str) for v in value):
            key, unit = value
        else:
            raise ValueError(f"{option}[{name!r}] must be a key or a (key, unit) pair, got {value!r}")
        if unit is not None:
            try:
                unit_value(unit)
            except ValueError as exc:
                raise ValueError(f"{option}[{name!r}]: {exc}") from None
        out.append(Property(name, key, per_atom, unit))
    return out


def _check_unit(option: str, unit: str) -> float:
    try:
        return unit_value(unit)
    except ValueError as exc:
        raise ValueError(f"{option}: {exc}") from None


# ----------------------------------------------------------------------------------------------
# Where a frame came from
# ----------------------------------------------------------------------------------------------
@dataclass
class FramesTable(AtomsTable):
    """An :class:`AtomsTable` over several sources: structure ``g`` came from ``sources[file_ids[g]]``,
    where ``origins[file]`` formatted with ``origin_ids[g]`` names it (``"frame 17"``, ``"row id 3"``)."""

    sources: Tuple[str, ...] = ()
    origins: Tuple[str, ...] = ()
    file_ids: Optional[Tensor] = None

    def where(self, g: int) -> str:
        if self.file_ids is None or not self.sources:
            return super().where(g)
        f = int(self.file_ids[g])
        origin_id = int(self.origin_ids[g]) if self.origin_ids is not None else g
        return f"{self.sources[f]}: {self.origins[f].format(origin_id)}"


def _frame_numbering(index: Union[str, int, slice]) -> Tuple[Optional[Callable[[int], int]], str]:
    """``(k -> frame number in the file, origin format)`` for the ``k``-th frame an index selects; the
    mapping is ``None`` where the file's length would be needed (a negative start), and the frame is then
    named by its place in the selection."""
    from ase.io.formats import string2index

    selection = string2index(index) if isinstance(index, str) else index
    if isinstance(selection, int):
        if selection >= 0:
            return (lambda k: selection + k), "frame {}"
    elif isinstance(selection, slice):
        start, step = selection.start or 0, selection.step or 1
        if start >= 0 and step > 0:
            return (lambda k: start + k * step), "frame {}"
    return None, f"item {{}} of the frames index {index!r} selects"


# ----------------------------------------------------------------------------------------------
# Columns built frame by frame
# ----------------------------------------------------------------------------------------------
class _Column:
    """Arrays appended one frame at a time, joined every :data:`CHUNK_FRAMES` frames into a chunk of
    ``dtype`` (so that memory follows the tensors, not one Python object per frame)."""

    def __init__(self, dtype: Any) -> None:
        self.dtype = dtype
        self.pending: List[Any] = []
        self.chunks: List[np.ndarray] = []

    def append(self, value: Any) -> None:
        self.pending.append(value)
        if len(self.pending) >= CHUNK_FRAMES:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            first = self.pending[0]
            if isinstance(first, np.ndarray) and first.ndim >= 1 and self.dtype is not bool:
                self.chunks.append(np.concatenate(self.pending).astype(self.dtype, copy=False))
            else:
                self.chunks.append(np.asarray(self.pending, dtype=self.dtype))
            self.pending = []

    def tensor(self) -> Tensor:
        self.flush()
        return torch.from_numpy(np.ascontiguousarray(np.concatenate(self.chunks)))


def _describe_keys(atoms: Any, kvp: Optional[Mapping[str, Any]], data: Optional[Mapping[str, Any]]) -> str:
    parts = []
    calc = getattr(atoms, "calc", None)
    if calc is not None and getattr(calc, "results", None):
        parts.append(f"calculator results {sorted(calc.results)}")
    if atoms.info:
        parts.append(f"info {sorted(map(str, atoms.info))}")
    arrays = sorted(k for k in atoms.arrays if k not in ("numbers", "positions"))
    if arrays:
        parts.append(f"arrays {arrays}")
    if kvp:
        parts.append(f"key-value pairs {sorted(kvp)}")
    if data:
        parts.append(f"data {sorted(data)}")
    return "; ".join(parts) if parts else "no keys besides numbers and positions"


_MISSING = object()


def _lookup(atoms: Any, key: str, kvp: Optional[Mapping[str, Any]], data: Optional[Mapping[str, Any]]) -> Any:
    """The value of ``key`` for one frame (see the module docstring for the order), or :data:`_MISSING`."""
    calc = atoms.calc
    if calc is not None and key in calc.results:
        return calc.results[key]
    if key in atoms.info:
        return atoms.info[key]
    if key in atoms.arrays:
        return atoms.arrays[key]
    if kvp is not None and key in kvp:
        return kvp[key]
    if data is not None and key in data:
        return data[key]
    if calc is not None and key in getattr(calc, "implemented_properties", ()):
        from ase.calculators.singlepoint import SinglePointCalculator

        if not isinstance(calc, SinglePointCalculator):
            return calc.get_property(key, atoms)
    return _MISSING


def _numbers(where: str, what: str, value: Any) -> np.ndarray:
    """``value`` as a float64 array; a string, bool, ``None`` or object there names the frame and key."""
    array = np.asarray(value)
    if array.dtype.kind not in "iuf":
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise RawFileError(f"{where}: {what} holds {type(value).__name__} {shown}, expected numbers")
    return array.astype(np.float64, copy=False)


def _stress_matrix(where: str, what: str, value: Any) -> np.ndarray:
    """A stress in Voigt order (xx, yy, zz, yz, xz, xy), 3 x 3 or 9 values -> a 3 x 3 matrix."""
    array = _numbers(where, what, value)
    if array.shape == (6,):
        xx, yy, zz, yz, xz, xy = array
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    if array.shape in ((3, 3), (9,)):
        return array.reshape(3, 3)
    raise RawFileError(f"{where}: {what} has shape {array.shape}, expected (6,) (Voigt), (3, 3) or (9,)")


# ----------------------------------------------------------------------------------------------
# Frames of one source
# ----------------------------------------------------------------------------------------------
Frame = Tuple[int, Any, Optional[Mapping[str, Any]], Optional[Mapping[str, Any]]]


def _db_selection(path: str, index: Union[str, int]) -> Tuple[Union[str, slice], int]:
    """``(query or normalised slice, number of rows selected)`` of an ASE SQLite database; ``index`` is a
    position or slice as for :func:`ase.io.read`, or an ASE query string (``"energy<0"``)."""
    import ase.db
    from ase.io.formats import string2index

    _check_ase_sqlite(path)  # opened read-only first: ASE itself would create a database at any path
    selection: Any = index
    if isinstance(index, str):
        try:
            selection = string2index(index)
        except ValueError:
            selection = index  # a query
    with ase.db.connect(path, type="db", serial=True, create_indices=False, use_lock_file=False) as db:
        if isinstance(selection, str):
            try:
                return selection, db.count(selection)
            except Exception as exc:  # ASE's parser of queries raises several kinds
                raise RawFileError(
                    f"{path}: index {index!r} is neither a frame selection nor an ASE query ({exc})"
                ) from None
        count = db.count()
    if isinstance(selection, int):
        position = selection if selection >= 0 else count + selection
        if not 0 <= position < count:
            raise RawFileError(f"{path}: index {index!r} is outside the database's {count} rows")
        selection = slice(position, position + 1, 1)
    start, stop, step = selection.indices(count)
    if step < 1:
        raise RawFileError(f"{path}: index {index!r} steps backwards; a database is read in row order")
    return slice(start, max(stop, start), step), len(range(start, stop, step))


def _db_frames(path: str, selection: Union[str, slice]) -> Iterator[Frame]:
    """The selected rows of an ASE SQLite database: ``(row id, atoms, key-value pairs, data)``."""
    import ase.db

    with ase.db.connect(path, type="db", serial=True, create_indices=False, use_lock_file=False) as db:
        if isinstance(selection, str):
            for row in db.select(selection):
                yield int(row.id), row.toatoms(), row.key_value_pairs, row.data
            return
        if selection.stop == selection.start:
            return
        rows = db.select(offset=selection.start, limit=selection.stop - selection.start)
        for k, row in enumerate(rows):
            if k % selection.step == 0:
                yield int(row.id), row.toatoms(), row.key_value_pairs, row.data


def _file_frames(path: str, index: Union[str, int], fmt: Optional[str]) -> Iterator[Frame]:
    """Frames of any file :func:`ase.io.iread` reads: ``(k, atoms, None, None)`` for the ``k``-th selected."""
    import ase.io

    for k, atoms in enumerate(ase.io.iread(path, index=index, format=fmt)):
        yield k, atoms, None, None


def _read_error(where: str, exc: Exception) -> RawFileError:
    from ase.data import chemical_symbols

    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        symbol = exc.args[0]
        if symbol not in chemical_symbols and len(symbol) <= 3:
            return RawFileError(f"{where} cannot be read: unknown element symbol {symbol!r}")
    return RawFileError(f"{where} cannot be read by ASE ({type(exc).__name__}: {exc})")


# ----------------------------------------------------------------------------------------------
# The data set
# ----------------------------------------------------------------------------------------------
class ASEDataset(AtomsDataset):
    r"""Structures from files ASE reads, or from a list of :class:`ase.Atoms` (see the module docstring).

    Args:
        root: folder of the processed file (``root/processed``); one root may hold several data sets
            (the file name carries a hash of the source paths). ``None``: a temporary folder, removed
            once the data are loaded (nothing is cached; a list of ``Atoms`` is always processed anew).
        source: a path, several paths (their frames in that order), or a list of :class:`ase.Atoms`.
        units: the energy unit of the file (an :mod:`ase.units` name: ``"eV"``, ``"kcal/mol"``,
            ``"Hartree"``); required: units are never guessed.
        energy_key: where the energy is (default ``"energy"``: extended XYZ's ``energy=``, a calculator's
            result, a database row's energy).
        forces_key: where the forces are (default ``"forces"``); ``None`` reads no forces (energies only).
        stress_key: where the stress is (``None``: none; ``"stress"`` for extended XYZ or a calculator).
        forces_unit: the forces' unit (default ``units + "/Angstrom"``).
        stress_unit: the stress's unit (default ``units + "/Angstrom/Angstrom/Angstrom"``; e.g. ``"GPa"``).
        properties: extra per-structure properties, ``{name: key}`` or ``{name: (key, unit)}``; stored
            as ``data.<name>`` ``[1, ...]`` float64 in the file's unit (recorded in
            :attr:`property_units`, not converted).
        atom_properties: extra per-atom properties (leading dimension the atom count), stored as
            ``[n, ...]`` float32.
        index: which frames of each file, as for :func:`ase.io.read` (``":"``, ``"::10"``, ``"-100:"``,
            ``3``); for a database also an ASE query string.
        format: the ASE format name (``"extxyz"``, ``"traj"``, ...) when the file name does not say it.
        train_unit: the energy unit of the stored values, the one a model trains in (default ``"kcal/mol"``).
        transform, pre_transform, pre_filter, force_reload, log: as for every data set
            (:class:`~pyg_schnet.datasets.base.AtomsDataset`); ``log`` also shows a progress bar
            while reading (never under pytest).

    Attributes:
        energy_unit, force_unit, stress_unit: the units of ``data.energy``, ``data.force``, ``data.stress``.
        file_units: the units declared for the files (``{"energy", "forces", "stress"}``).
        property_units: ``{name: unit or None}`` of the extra properties.
        files: the source files (absolute paths; empty for a list of ``Atoms``).
        periodic: whether the structures carry ``cell`` and ``pbc``.
    """

    def __init__(
        self,
        root: Optional[PathLike],
        source: Union[PathLike, Sequence[PathLike], Sequence[Any]],
        *,
        units: str,
        energy_key: str = "energy",
        forces_key: Optional[str] = "forces",
        stress_key: Optional[str] = None,
        forces_unit: Optional[str] = None,
        stress_unit: Optional[str] = None,
        properties: Optional[Mapping[str, Any]] = None,
        atom_properties: Optional[Mapping[str, Any]] = None,
        index: Union[str, int] = ":",
        format: Optional[str] = None,
        train_unit: str = "kcal/mol",
        transform: Optional[Callable] = None,
        pre_transform: Optional[Callable] = None,
        pre_filter: Optional[Callable] = None,
        force_reload: bool = False,
        log: bool = True,
    ) -> None:
        self._atoms, self.files = self._sources(source)
        for option, key in (("energy_key", energy_key), ("forces_key", forces_key), ("stress_key", stress_key)):
            if key is not None and (not isinstance(key, str) or not key):
                raise ValueError(f"{option} must be a non-empty key name, got {key!r}")
        if energy_key is None:
            raise ValueError("energy_key must name the energies (a data set to train on needs them)")
        if isinstance(index, bool) or not isinstance(index, (str, int)):
            raise ValueError(f"index must be a string such as ':' or '::10', or an integer, got {index!r}")
        if isinstance(index, str):
            _frame_numbering_checked(index, self.files)
        if format is not None and (not isinstance(format, str) or not format):
            raise ValueError(f"format must be an ASE format name such as 'extxyz', got {format!r}")
        if not isinstance(units, str):
            raise ValueError(f"units must name the file's energy unit (e.g. 'eV', 'kcal/mol'), got {units!r}")
        forces_unit = f"{units}/Angstrom" if forces_unit is None else forces_unit
        stress_unit = f"{units}/Angstrom/Angstrom/Angstrom" if stress_unit is None else stress_unit
        train_value = _check_unit("train_unit", train_unit)
        self._factors = {
            "energy": _check_unit("units", units) / train_value,
            "forces": _check_unit("forces_unit", forces_unit) / train_value,
            "stress": _check_unit("stress_unit", stress_unit) / train_value,
        }
        self.energy_key, self.forces_key, self.stress_key = energy_key, forces_key, stress_key
        self.extra = _properties(properties, False, "properties") + _properties(
            atom_properties, True, "atom_properties"
        )
        names = [p.name for p in self.extra]
        if len(set(names)) != len(names):
            raise ValueError(f"properties and atom_properties name a field twice: {names}")
        self.index, self.format = index, format
        self.energy_unit = train_unit
        self.force_unit = f"{train_unit}/Angstrom"
        self.stress_unit = f"{train_unit}/Angstrom/Angstrom/Angstrom"
        self.file_units: Dict[str, Optional[str]] = {
            "energy": units,
            "forces": forces_unit if forces_key is not None else None,
            "stress": stress_unit if stress_key is not None else None,
        }
        self.property_units: Dict[str, Optional[str]] = {p.name: p.unit for p in self.extra}
        self._progress = log
        self._counts: Dict[str, Any] = {}
        temporary = tempfile.TemporaryDirectory(prefix="pyg_schnet_ase_") if root is None else None
        folder: PathLike = temporary.name if temporary is not None else root  # type: ignore[assignment]
        try:
            super().__init__(
                folder,
                transform,
                pre_transform,
                pre_filter,
                force_reload=force_reload or self._atoms is not None,
                log=log,
            )
        finally:
            if temporary is not None:
                temporary.cleanup()
        self.in_memory_only = temporary is not None

    # ------------------------------------------------------------------------------------
    @staticmethod
    def _sources(source: Any) -> Tuple[Optional[List[Any]], List[str]]:
        """``(list of Atoms or None, absolute file paths)``; a missing file is an error naming it."""
        from ase import Atoms

        if isinstance(source, Atoms):
            source = [source]
        if isinstance(source, (str, os.PathLike)):
            source = [source]
        if not isinstance(source, Sequence) or isinstance(source, (bytes, bytearray)) or len(source) == 0:
            raise ValueError(f"source must be a path, a list of paths or a list of ase.Atoms, got {source!r}")
        if any(isinstance(item, Atoms) for item in source):
            bad = [i for i, item in enumerate(source) if not isinstance(item, Atoms)]
            if bad:
                raise TypeError(
                    f"source mixes ase.Atoms and other items: item {bad[0]} is {type(source[bad[0]]).__name__}"
                )
            return list(source), []
        files = []
        for item in source:
            if not isinstance(item, (str, os.PathLike)):
                raise TypeError(f"source must hold paths or ase.Atoms, got {type(item).__name__} {item!r}")
            path = os.path.abspath(os.path.expanduser(os.fspath(item)))
            if not os.path.isfile(path):
                what = "a folder, not a file" if os.path.isdir(path) else "no such file"
                raise FileNotFoundError(f"{path}: {what}")
            files.append(path)
        if len(set(files)) != len(files):
            raise ValueError(f"source names a file twice: {files}")
        return None, files

    @property
    def raw_file_names(self) -> List[str]:
        return list(self.files)  # absolute: os.path.join(raw_dir, path) is the path itself

    @property
    def remote_files(self) -> Sequence[RemoteFile]:
        return ()

    @property
    def processed_stem(self) -> str:
        if not self.files:
            return "ase_atoms_list"
        digest = hashlib.sha256(json.dumps(self.files).encode()).hexdigest()[:12]
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(self.files[0]))[:40]
        more = f"+{len(self.files) - 1}" if len(self.files) > 1 else ""
        return f"ase_{stem}{more}_{digest}"

    def settings(self) -> str:
        """What the processed file depends on besides the raw files (keys, units, index, format), in words:
        ``"energy 'REF_energy' [eV], forces 'REF_forces' [eV/Angstrom], index ':' -> kcal/mol"``."""
        parts = [f"energy {self.energy_key!r} [{self.file_units['energy']}]"]
        if self.forces_key is not None:
            parts.append(f"forces {self.forces_key!r} [{self.file_units['forces']}]")
        if self.stress_key is not None:
            parts.append(f"stress {self.stress_key!r} [{self.file_units['stress']}]")
        for p in self.extra:
            parts.append(f"{'atom ' if p.per_atom else ''}property {p.name} = {p.key!r} [{p.unit or 'no unit'}]")
        parts.append(f"index {self.index!r}")
        if self.format is not None:
            parts.append(f"format {self.format!r}")
        return ", ".join(parts) + f" -> {self.energy_unit}"

    def _wanted_record(self) -> Dict[str, Any]:
        record = super()._wanted_record()
        # another key, unit, index or format makes an existing processed file stale, with a message
        record["variant"] = f"{self.processed_stem}: {self.settings()}"
        return record

    # ------------------------------------------------------------------------------------
    def _frames(self) -> Iterator[Tuple[int, int, Frame]]:
        """``(file, total or -1, frame)`` for every selected frame of every source."""
        if self._atoms is not None:
            for k, atoms in enumerate(self._atoms):
                yield 0, len(self._atoms), (k, atoms, None, None)
            return
        for f, path in enumerate(self.files):
            self._reading = f  # the file an error of ASE's parser belongs to
            if self._is_db(path):
                selection, total = _db_selection(path, self.index)
                for frame in _db_frames(path, selection):
                    yield f, total, frame
            else:
                for frame in _file_frames(path, self.index, self.format):
                    yield f, -1, frame

    def _is_db(self, path: str) -> bool:
        return self.format == "db" or (self.format is None and path.lower().endswith(DB_SUFFIXES))

    def _origins(self) -> Tuple[Tuple[str, ...], Tuple[str, ...], List[Optional[Callable[[int], int]]]]:
        if self._atoms is not None:
            return ("the list of ase.Atoms",), ("atoms[{}]",), [None]
        numbering: List[Optional[Callable[[int], int]]] = []
        origins: List[str] = []
        for path in self.files:
            if self._is_db(path):
                numbering.append(None)
                origins.append("row id {}")
            else:
                mapping, origin = _frame_numbering(self.index)
                numbering.append(mapping)
                origins.append(origin)
        return tuple(self.files), tuple(origins), numbering

    def read_raw(self) -> AtomsTable:
        from tqdm.auto import tqdm

        sources, origins, numbering = self._origins()
        columns = {
            "z": _Column(np.int64),
            "pos": _Column(np.float32),
            "energy": _Column(np.float64),
            "num_atoms": _Column(np.int64),
            "file": _Column(np.int64),
            "frame": _Column(np.int64),
            "cell": _Column(np.float32),
            "pbc": _Column(bool),
        }
        if self.forces_key is not None:
            columns["force"] = _Column(np.float32)
        if self.stress_key is not None:
            columns["stress"] = _Column(np.float64)
        for prop in self.extra:
            columns[prop.name] = _Column(np.float32 if prop.per_atom else np.float64)
        shapes: Dict[str, Tuple[Tuple[int, ...], str]] = {}
        factors = self._factors
        per_file = [0] * len(sources)
        periodic = 0
        quiet = not self._progress or "PYTEST_CURRENT_TEST" in os.environ
        bar = None
        self._reading = 0
        current = -1
        iterator = self._frames()
        try:
            while True:
                try:
                    f, total, (frame_id, atoms, kvp, data) = next(iterator)
                except StopIteration:
                    break
                except RawFileError:
                    raise
                except Exception as exc:  # ASE's parsers: XYZError, KeyError of an unknown symbol, ...
                    f = self._reading
                    mapping = numbering[f]
                    k = per_file[f]
                    where = f"{sources[f]}: {origins[f].format(mapping(k) if mapping is not None else k)}"
                    raise _read_error(where, exc) from exc
                if f != current:
                    current = f
                    if bar is not None:
                        bar.close()
                    total_frames = total if total >= 0 else None
                    name = os.path.basename(sources[f]) if self.files else "atoms"
                    bar = tqdm(desc=name, total=total_frames, unit=" frames", disable=quiet, mininterval=0.5)
                mapping = numbering[f]
                origin_id = mapping(frame_id) if mapping is not None else frame_id
                where = f"{sources[f]}: {origins[f].format(origin_id)}"
                periodic += self._read_frame(atoms, kvp, data, where, columns, shapes, factors)
                columns["file"].append(f)
                columns["frame"].append(origin_id)
                per_file[f] += 1
                bar.update()  # type: ignore[union-attr]
        finally:
            if bar is not None:
                bar.close()
        for f, count in enumerate(per_file):
            if count == 0:
                raise RawFileError(self._empty(sources[f]))
        tensors = {name: column.tensor() for name, column in columns.items()}
        num_atoms = tensors.pop("num_atoms")
        pbc = tensors.pop("pbc").reshape(-1, 3)
        cell = tensors.pop("cell").reshape(-1, 3, 3)
        self.periodic = bool(pbc.any())
        atom_fields = {"z": tensors.pop("z"), "pos": tensors.pop("pos").reshape(-1, 3)}
        graph_fields: Dict[str, Tensor] = {"energy": tensors.pop("energy")}
        if "force" in tensors:
            atom_fields["force"] = tensors.pop("force").reshape(-1, 3)
        if "stress" in tensors:
            graph_fields["stress"] = tensors.pop("stress").reshape(-1, 3, 3)
        if self.periodic:
            graph_fields["cell"], graph_fields["pbc"] = cell, pbc
        for prop in self.extra:
            shape, _ = shapes[prop.name]
            value = tensors.pop(prop.name)
            if prop.per_atom:
                atom_fields[prop.name] = value.reshape(-1, *shape[1:])
            else:
                graph_fields[prop.name] = value.reshape(-1, *shape)
        file_ids, frame_ids = tensors.pop("file"), tensors.pop("frame")
        graph_fields["file_index"], graph_fields["frame_index"] = file_ids, frame_ids
        names = {"z": "numbers", "pos": "positions", "energy": f"key {self.energy_key!r}", "cell": "cell"}
        if self.forces_key is not None:
            names["force"] = f"key {self.forces_key!r}"
        if self.stress_key is not None:
            names["stress"] = f"key {self.stress_key!r}"
        names.update({p.name: f"key {p.key!r}" for p in self.extra})
        self._counts = {
            "frames_per_file": per_file,
            "periodic_structures": periodic,
            "read": self.settings(),
        }
        return FramesTable(
            num_atoms=num_atoms,
            atom_fields=atom_fields,
            graph_fields=graph_fields,
            source=sources[0] if len(sources) == 1 else f"{len(sources)} files",
            origin=origins[0],
            origin_ids=frame_ids,
            field_names=names,
            sources=sources,
            origins=origins,
            file_ids=file_ids,
        )

    def _empty(self, source: str) -> str:
        if self._atoms is not None:
            return "the list of ase.Atoms holds no structures"
        return f"{source}: index {self.index!r} selects no frames (an empty file or selection)"

    def _read_frame(
        self,
        atoms: Any,
        kvp: Optional[Mapping[str, Any]],
        data: Optional[Mapping[str, Any]],
        where: str,
        columns: Dict[str, _Column],
        shapes: Dict[str, Tuple[Tuple[int, ...], str]],
        factors: Mapping[str, float],
    ) -> bool:
        """Append one frame's values to ``columns``; return whether it is periodic."""
        n = len(atoms)
        if n == 0:
            raise RawFileError(f"{where}: the structure has no atoms")

        def value(key: str, what: str) -> Any:
            try:
                found = _lookup(atoms, key, kvp, data)
            except Exception as exc:  # a live calculator that cannot compute this structure
                raise RawFileError(
                    f"{where}: the attached calculator failed to compute {what} {key!r} ({type(exc).__name__}: {exc})"
                ) from exc
            if found is _MISSING:
                raise RawFileError(
                    f"{where}: no {what} {key!r} (a structure without the requested property); "
                    f"the frame has {_describe_keys(atoms, kvp, data)}"
                )
            return found

        energy = _numbers(where, f"energy key {self.energy_key!r}", value(self.energy_key, "energy key"))
        if energy.size != 1:
            raise RawFileError(
                f"{where}: energy key {self.energy_key!r} has shape {energy.shape}, expected one number per structure"
            )
        pbc = np.asarray(atoms.pbc, dtype=bool)
        columns["z"].append(np.asarray(atoms.numbers, dtype=np.int64))
        columns["pos"].append(np.asarray(atoms.positions, dtype=np.float64))
        columns["energy"].append(float(energy.reshape(())) * factors["energy"])
        columns["num_atoms"].append(n)
        columns["cell"].append(np.asarray(atoms.cell.array, dtype=np.float64).reshape(1, 9))
        columns["pbc"].append(pbc)
        if self.forces_key is not None:
            forces = _numbers(where, f"forces key {self.forces_key!r}", value(self.forces_key, "forces key"))
            if forces.shape != (n, 3):
                raise RawFileError(
                    f"{where}: forces key {self.forces_key!r} has shape {forces.shape}, expected ({n}, 3) for {n} atoms"
                )
            columns["force"].append(forces * factors["forces"])
        if self.stress_key is not None:
            stress = _stress_matrix(where, f"stress key {self.stress_key!r}", value(self.stress_key, "stress key"))
            if not pbc.any():
                raise RawFileError(
                    f"{where}: stress key {self.stress_key!r} is given for a structure without a periodic axis "
                    f"(pbc {pbc.tolist()}); a stress needs a periodic cell"
                )
            columns["stress"].append((stress * factors["stress"]).reshape(1, 9))
        for prop in self.extra:
            what = f"{'atom ' if prop.per_atom else ''}property {prop.name!r} (key {prop.key!r})"
            array = _numbers(where, what, value(prop.key, f"key of {prop.name!r},"))
            if prop.per_atom:
                if array.ndim == 0 or array.shape[0] != n:
                    raise RawFileError(
                        f"{where}: {what} has shape {array.shape}, expected ({n}, ...): one row per atom"
                    )
                shape: Tuple[int, ...] = (-1,) + tuple(array.shape[1:])
            else:
                shape = tuple(array.shape)
            seen = shapes.get(prop.name)
            if seen is None:
                shapes[prop.name] = (shape, where)
            elif seen[0] != shape:
                raise RawFileError(
                    f"{where}: {what} has shape {array.shape}, but {seen[1]} had "
                    f"{tuple(n if s == -1 else s for s in seen[0])}: every structure needs the same shape"
                )
            columns[prop.name].append(array.reshape(1, -1) if not prop.per_atom else array)
        return bool(pbc.any())

    def check_table(self, table: AtomsTable) -> None:
        """A periodic structure's cell must span its periodic axes (zero or dependent lattice vectors are
        refused, naming the file and the frame)."""
        if "pbc" not in table.graph_fields:
            return
        from pyg_schnet.graph.periodic import check_cell_and_pbc

        cell, pbc = table.graph_fields["cell"], table.graph_fields["pbc"]
        try:
            check_cell_and_pbc(cell, pbc, len(table), table.atom_fields["pos"])
        except ValueError as exc:
            found = re.search(r"structure (\d+)", str(exc))
            if found is None:
                raise RawFileError(f"{table.source}: {exc}") from None
            g = int(found.group(1))
            message = str(exc).replace(f"structure {g} ", "the structure ", 1)
            raise RawFileError(f"{table.where(g)}: {message}") from None

    def processing_summary(self) -> Dict[str, object]:
        return dict(self._counts)

    def _use(self, content: Any, data_cls: type = Data) -> None:
        super()._use(content, data_cls)
        self.periodic = "pbc" in content.data

    # ------------------------------------------------------------------------------------
    def random_split(
        self,
        n_train: Count,
        n_val: Count = 0.1,
        seed: int = 0,
        n_test: Optional[Count] = None,
        unique: bool = False,
    ) -> SplitIndices:
        """A seeded split (:meth:`AtomsDataset.random_split`) whose sizes are counts (``800``) or fractions
        of the examples (``0.8``, rounded down; of the distinct ones with ``unique=True``); the test set is
        the rest unless ``n_test`` is given."""
        total = len(self)
        if unique:
            first = self.repeated_frames()
            total = int((first == torch.arange(first.numel())).sum())
        train, val, test = split_sizes(total, n_train, n_val, n_test)
        return super().random_split(train, n_val=val, seed=seed, n_test=test, unique=unique)

    def __repr__(self) -> str:
        what = f"{len(self.files)} file(s)" if self.files else "a list of ase.Atoms"
        return f"{self.__class__.__name__}({len(self)}, from {what}, energy in {self.energy_unit})"


#: A frame selection as :func:`ase.io.read` takes it: ``"3"``, ``"-1"``, ``":"``, ``"10:20"``, ``"::2"``.
_INDEX = re.compile(r"\s*-?\d+\s*|\s*-?\d*\s*:\s*-?\d*\s*(:\s*-?\d*\s*)?")


def _frame_numbering_checked(index: str, files: Sequence[str]) -> None:
    """An index string that selects frames, or (when every file is a database) an ASE query."""
    if _INDEX.fullmatch(index):
        return
    if not files or not all(path.lower().endswith(DB_SUFFIXES) for path in files):
        raise ValueError(
            f"index {index!r} is not a frame selection such as ':', '::10', '-100:' or '3' "
            "(a query string selects rows of an ASE database only)"
        )


__all__ = ["ASEDataset", "FramesTable", "Property", "RESERVED_NAMES"]
