"""An ASE calculator around a trained SchNet: energies, forces and (periodic) stress in ASE's units.

.. code-block:: python

    from ase.build import molecule
    from pyg_schnet.simulation.ase import SchNetCalculator

    atoms = molecule("CH3CH2OH")
    atoms.calc = SchNetCalculator("runs/eth/model.pt")     # trained in kcal/mol, converted to eV
    atoms.get_potential_energy(), atoms.get_forces()      # eV, eV/Angstrom

Units: the model predicts energies in its own unit (``model.units["energy"]``, recorded in its file by
the trainer; a file of format /1 records none and needs ``energy_unit``) from positions in
``model.units["length"]`` (Angstrom). With :math:`u_E` and :math:`u_L` the values of those units in eV and Angstrom
(:func:`pyg_schnet.io.units.unit_value`), ASE receives

.. math::
    E = u_E \\hat E, \\qquad \\mathbf F = \\frac{u_E}{u_L} \\hat{\\mathbf F}, \\qquad
    \\sigma = \\frac{u_E}{u_L^3} \\hat\\sigma
    \\quad (\\text{eV}, \\text{eV}/\\text{Å}, \\text{eV}/\\text{Å}^3),

the stress in Voigt order ``xx, yy, zz, yz, xz, xy`` with ASE's sign, :math:`\\sigma = V^{-1}
\\partial E / \\partial \\varepsilon` for a symmetric strain :math:`\\varepsilon` (tensile positive).

**Dipole.** A model with a dipole head (``output="dipole_moment"``, or an extra head of kind
``"dipole"`` or ``"dipole_moment"``; :mod:`pyg_schnet.nn.dipole`) also gives ASE's ``dipole``
(``atoms.get_dipole_moment()``): the vector :math:`\\boldsymbol\\mu = \\sum_i q_i (\\mathbf r_i - \\mathbf r_c)`
in e*Angstrom, ASE's unit, of molecules (a periodic system has none), and ``charges``
(``atoms.get_charges()``), the latent atomic charges :math:`q_i` (e) that sum to the total charge
``atoms.info["charge"]`` when set, else the sum of ``atoms.get_initial_charges()`` (0 by default).
The dipole is taken about the centre of geometry :math:`\\mathbf r_c`, so it does not depend on the
total charge (a uniform shift of the charges has no moment about it); for neutral molecules that is
:math:`\\sum_i q_i \\mathbf r_i`, the dipole about any point.
A model whose primary output is not an energy (``output="intensive"`` or ``"dipole_moment"``) gives no
``energy``, ``forces`` or ``stress``.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import threading
import warnings
from typing import Iterator, Optional, Sequence, Union

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress
from torch import nn

from pyg_schnet.io.units import resolve_units, unit_value
from pyg_schnet.models import compiled
from pyg_schnet.models.domain import UNSEEN_ELEMENT_POLICIES, check_elements
from pyg_schnet.models.md_evaluator import MDEvaluator, neighbour_guard_reason, supports
from pyg_schnet.validation import check_positive_int

ModelLike = Union[nn.Module, str, "os.PathLike[str]"]

#: Ways of computing a molecule's energy and forces (``SchNetCalculator(method=...)``).
_METHODS = ("exact", "tabulated", "autograd")


class AutogradFallbackWarning(UserWarning):
    """A :class:`SchNetCalculator` asked for ``method="exact"`` or ``"tabulated"`` computes molecules
    with the model's own autograd path, because :class:`~pyg_schnet.models.MDEvaluator` does not
    support the model (the message says why; raised once per calculator)."""


#: Structures of at most this many atoms run on one CPU thread unless ``SchNetCalculator(threads=...)``
#: says otherwise: their per-call work is too small to share, and a thread that waits for a busy core
#: makes every call many times slower (docs/simulation.md, "Threads").
SMALL_SYSTEM_ATOMS = 200


def call_threads(threads: Optional[int], num_atoms: int, device: torch.device) -> Optional[int]:
    """The CPU threads a model call on ``num_atoms`` atoms runs with (``None``: torch's setting): ``threads``
    when given, else one for a structure of at most :data:`SMALL_SYSTEM_ATOMS` atoms; ``None`` on another
    device. The rule of :class:`SchNetCalculator` and of the engine adapters (OpenMM, TorchSim)."""
    if device.type != "cpu":
        return None
    if threads is not None:
        return threads
    return 1 if num_atoms <= SMALL_SYSTEM_ATOMS else None


@contextlib.contextmanager
def cpu_threads(threads: Optional[int]) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)`` and restore the previous count after it
    (``None``: leave torch's setting alone). Setting it is cheap; unchanged counts are not set again."""
    previous = torch.get_num_threads()
    if threads is None or threads == previous:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


#: Changes after which the cached atomic numbers, cell and pbc tensors are rebuilt.
_TOPOLOGY_CHANGES = frozenset({"numbers", "cell", "pbc"})


class SchNetCalculator(Calculator):
    """ASE calculator for a :class:`pyg_schnet.SchNet` (energy, free_energy, forces, stress).

    Args:
        model: a :class:`~pyg_schnet.SchNet`, or the path of a ``model.pt``
            (:func:`pyg_schnet.load_model`). The calculator works on its own copy, converted to
            ``dtype`` and moved to ``device`` in eval mode; the model passed in is not changed.
        energy_unit: the unit of the model's energies for a model that records none (a ``model.pt`` of
            format /1; a name of :mod:`ase.units`: ``"kcal/mol"``, ``"kJ/mol"``, ``"eV"``, ``"Hartree"``).
            For a model that records its unit (``model.units``) it may only repeat it (spelled any
            way); a different unit is refused naming both, never used to rescale the energies.
        device: torch device of the computation (``None``: CUDA when available, else the CPU).
        dtype: ``torch.float64`` (default; energy conservation in MD) or ``torch.float32`` (speed).
        method: how energy and forces of a molecule (no periodic axis) are computed:
            ``"exact"`` (default) with :class:`~pyg_schnet.models.MDEvaluator`, the model's numbers to
            rounding without autograd's overhead; ``"tabulated"`` with spline-tabulated filters (an
            approximation with a stated error bound, see ``docs/architecture.md``); ``"autograd"``
            with :meth:`SchNet.energy_and_forces`. Periodic systems always use the model's own
            autograd path, and so does a model that :func:`pyg_schnet.models.md_evaluator.supports`
            rejects (a subclass, a replaced block, activation or head): the calculator then computes
            what the model's own ``forward`` computes, and says so once with an
            :class:`AutogradFallbackWarning` (the reason is kept in :attr:`fallback_reason`).
        unseen_elements: what a structure holding an element outside the model's training set
            (``model.training_domain.elements``, :mod:`pyg_schnet.models.domain`) gets: ``"warn"``
            (default, an :class:`~pyg_schnet.models.domain.UnseenElementWarning` naming the element and
            the atom), ``"error"`` (:class:`~pyg_schnet.models.domain.UnseenElementError`) or
            ``"ignore"``. Checked when the atomic numbers change; models whose file records no domain
            (formats /1 and /2) are not checked.
        compile: ``False`` (default): eager; ``True`` or a mode of :data:`pyg_schnet.models.compiled.MODES`
            (``True``: :data:`~pyg_schnet.models.compiled.DEFAULT_MODE`): the energy-and-forces call
            runs through ``torch.compile`` (:func:`~pyg_schnet.models.compiled.compile_evaluator` for
            molecules, :func:`~pyg_schnet.models.compiled.compile_energy_and_forces` for the autograd
            path), with the same numbers; the first call after a change of atoms compiles (tens of
            seconds on a CPU, docs/benchmarks.md "Compiled inference"); eager with one
            :class:`~pyg_schnet.models.compiled.CompileFallbackWarning` where inductor cannot run.
        threads: CPU threads of each call; ``None`` (default): one thread for structures of at most
            :data:`SMALL_SYSTEM_ATOMS` atoms (measured on 2 cores: ethanol MD took 10-16x as long on two
            threads as on one; docs/simulation.md, "Threads"), torch's setting for larger ones. The
            process's setting is restored after each call.
        **kwargs: passed to :class:`ase.calculators.calculator.Calculator` (e.g. ``label``).

    Stress is computed only when asked for, and only for periodic atoms (any ``atoms.pbc``); asking a
    non-periodic system for it raises :class:`~ase.calculators.calculator.PropertyNotImplementedError`.
    Atomic numbers, cell and pbc are kept as tensors on the device between calls and rebuilt only when
    they change, so an MD step moves just the positions to the device and the results back.

    An empty ``Atoms`` is refused with a :class:`ValueError`. The calculator computes its forces with
    gradients on, also when called under :func:`torch.no_grad` or :func:`torch.inference_mode` (its
    tensors are its own, made from the atoms' arrays).

    **Threads.** One calculator may be shared by several threads: a lock serialises its calls
    (:meth:`get_property`, :meth:`calculate`), so each call computes, and returns, the results of the
    atoms it was given; the calls do not run in parallel. For parallel work give each thread its own
    calculator (they may share one model: each calculator works on its own copy).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]
    #: what a model with the paper's energy head gives (a model with a dipole head also gives ``dipole``)
    energy_properties = ("energy", "free_energy", "forces", "stress")

    def __init__(
        self,
        model: ModelLike,
        energy_unit: Optional[str] = None,
        device: Optional[Union[str, torch.device]] = None,
        dtype: torch.dtype = torch.float64,
        method: str = "exact",
        threads: Optional[int] = None,
        compile: Union[bool, str] = False,
        unseen_elements: str = "warn",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        #: serialises calls from several threads (see the class docstring)
        self._lock = threading.RLock()
        from pyg_schnet.io.devices import resolve_device
        from pyg_schnet.io.model_file import load_model

        if dtype not in (torch.float64, torch.float32):
            raise ValueError(f"dtype must be torch.float64 or torch.float32, got {dtype}")
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
        self.method = method
        if compile is True:
            compile = compiled.DEFAULT_MODE
        if compile is not False and compile not in compiled.MODES:
            raise ValueError(f"compile must be False, True or one of {compiled.MODES}, got {compile!r}")
        #: the torch.compile mode of the energy-and-forces call (``None``: eager)
        self.compile_mode: Optional[str] = compile or None
        if unseen_elements not in UNSEEN_ELEMENT_POLICIES:
            raise ValueError(f"unseen_elements must be one of {UNSEEN_ELEMENT_POLICIES}, got {unseen_elements!r}")
        self.unseen_elements = unseen_elements
        if threads is not None:
            check_positive_int("SchNetCalculator", "threads", threads)
        self.threads = threads
        if isinstance(model, (str, os.PathLike)):
            model = load_model(model)
        elif not isinstance(model, nn.Module):
            raise TypeError(f"model must be a SchNet or the path of a model.pt, got {type(model).__name__}")
        settings = getattr(model, "settings", None)
        #: the model's primary output (``config.output``): energies only for ``"extensive"``
        self.output: str = getattr(settings, "output", "extensive")
        kinds = dict(getattr(model, "head_kinds", {}) or {})
        #: the head whose dipole ``dipole`` is (``None``: the model has no dipole head)
        self.dipole_head: Optional[str] = next((n for n, k in kinds.items() if k in ("dipole", "dipole_moment")), None)
        self.implemented_properties = (list(self.energy_properties) if self.output == "extensive" else []) + (
            ["dipole", "charges"] if self.dipole_head is not None else []
        )
        if not self.implemented_properties:
            raise ValueError(
                f"SchNetCalculator: this model's primary output is {self.output!r} (not an energy) and it has no "
                "dipole head, so it gives none of ASE's properties (energy, forces, stress, dipole); "
                "evaluate it with model(z, pos) or model.predict"
            )
        if self.output == "extensive":
            self.units = resolve_units(
                model,
                energy_unit,
                hint="pass SchNetCalculator(..., energy_unit=...) (pyg-schnet md: --energy-unit), "
                "the unit of its training energies, e.g. 'kcal/mol'",
                option="SchNetCalculator(energy_unit=...)",
            )
        else:  # no energy comes out: only the dipole (e*Angstrom from positions in Angstrom)
            if energy_unit is not None:
                raise ValueError(
                    f"SchNetCalculator(energy_unit={energy_unit!r}): this model predicts no energy "
                    f"(output={self.output!r}); leave energy_unit out"
                )
            recorded = str((getattr(model, "units", None) or {}).get("energy", ""))
            self.units = {"energy": recorded, "length": "Angstrom"}
        self.device = torch.device(
            resolve_device(None if device is None else str(device), "SchNetCalculator(device=...)")
        )
        self.dtype = dtype
        with torch.inference_mode(False):  # weights that autograd can use, whatever mode the caller is in
            self.model = copy.deepcopy(model).to(device=self.device, dtype=dtype).eval()
        self.model.requires_grad_(False)  # only d/dpos is needed; no weight gradients are ever built
        energy = unit_value(self.units["energy"]) if self.output == "extensive" else 1.0
        length = unit_value(self.units["length"])
        self._length = length
        self._energy_factor = energy
        self._force_factor = energy / length
        self._stress_factor = energy / length**3
        self._z: Optional[torch.Tensor] = None
        self._cell: Optional[torch.Tensor] = None
        self._pbc: Optional[torch.Tensor] = None
        self._periodic = False
        self._evaluator: Optional[Union[MDEvaluator, compiled.CompiledEvaluator]] = None
        self._energy_and_forces = (
            self.model.energy_and_forces
            if self.compile_mode is None
            else compiled.compile_energy_and_forces(self.model, self.compile_mode)
        )
        #: Why molecules go through the model's autograd path although ``method`` asked for the
        #: evaluator (``None``: they do not, or ``method="autograd"``).
        self.fallback_reason: Optional[str] = supports(self.model) if method != "autograd" else None
        if self.fallback_reason is not None and self.output == "extensive":
            warnings.warn(
                f"SchNetCalculator(method={method!r}) computes molecules with the model's autograd path "
                f"(model.energy_and_forces): {self.fallback_reason}",
                AutogradFallbackWarning,
                stacklevel=2,
            )

    def check_state(self, atoms: Atoms, tol: float = 1e-15) -> list:
        """What changed since the last calculation: ``positions``, ``numbers``, ``cell``, ``pbc``.

        The same answer as ASE's default (which compares with ``numpy.allclose`` at ``tol = 1e-15``,
        in effect exact equality) from exact comparisons, about ten times cheaper per MD step.
        Charges and magnetic moments are not compared: SchNet's energy does not depend on them.
        """
        old = self.atoms
        if old is None or len(old) != len(atoms):
            return list(all_changes)
        changes = []
        if not np.array_equal(old.arrays["positions"], atoms.arrays["positions"]):
            changes.append("positions")
        if not np.array_equal(old.arrays["numbers"], atoms.arrays["numbers"]):
            changes.append("numbers")
        if not np.array_equal(old.cell.array, atoms.cell.array):
            changes.append("cell")
        if not np.array_equal(old.pbc, atoms.pbc):
            changes.append("pbc")
        if self.dipole_head is not None and self._total_charge(old) != self._total_charge(atoms):
            changes.append("initial_charges")  # the dipole depends on the total charge
        return changes

    @staticmethod
    def _total_charge(atoms: Atoms) -> float:
        """The total charge (e) of ``atoms``: ``atoms.info["charge"]``, else the sum of the initial charges."""
        if "charge" in atoms.info:
            return float(atoms.info["charge"])
        return float(np.sum(atoms.get_initial_charges()))

    # --------------------------------------------------------------------------------- internals
    def _set_topology(self, atoms: Atoms) -> None:
        """Cache ``z`` ``[N]``, ``cell`` ``[1, 3, 3]`` (model length unit) and ``pbc`` ``[1, 3]``, after
        comparing the elements with the model's training domain (``unseen_elements``)."""
        self._z = None  # a refused structure leaves no cached topology behind
        z = torch.as_tensor(np.asarray(atoms.numbers), dtype=torch.long)
        check_elements(getattr(self.model, "training_domain", None), z, self.unseen_elements, "SchNetCalculator")
        self._z = z.to(self.device)
        self._periodic = bool(np.any(atoms.pbc))
        if self._periodic:
            cell = np.asarray(atoms.cell.array, dtype=np.float64) / self._length
            self._cell = torch.as_tensor(cell, dtype=self.dtype, device=self.device).unsqueeze(0)
            self._pbc = torch.as_tensor(np.asarray(atoms.pbc, dtype=bool), device=self.device).unsqueeze(0)
        else:
            self._cell = self._pbc = None
        self._evaluator = None
        # a molecule whose atoms could exceed the model's neighbour guard goes through the model, which checks it
        guarded = neighbour_guard_reason(self.model, len(z)) is not None
        if not self._periodic and self.method != "autograd" and self.fallback_reason is None and not guarded:
            self._evaluator = MDEvaluator(self.model, self._z, mode=self.method, dtype=self.dtype)
            if self.compile_mode is not None:
                self._evaluator = compiled.compile_evaluator(self._evaluator, self.compile_mode)

    def threads_for(self, num_atoms: int) -> Optional[int]:
        """The CPU threads a call on ``num_atoms`` atoms runs with: ``threads`` when given, else one for
        a structure of at most :data:`SMALL_SYSTEM_ATOMS` atoms, else torch's setting (``None``)."""
        return call_threads(self.threads, num_atoms, torch.device("cpu"))

    def _compute(self, pos: torch.Tensor, want_stress: bool):
        """Energy ``[1]``, forces ``[N, 3]`` and stress (or ``None``) in the model's units."""
        model = self.model
        if self._evaluator is not None:
            return (*self._evaluator(pos), None)
        if not self._periodic:
            return (*self._energy_and_forces(self._z, pos), None)
        if want_stress:
            return model.energy_forces_stress(self._z, pos, None, self._cell, self._pbc)
        return (*self._energy_and_forces(self._z, pos, None, self._cell, self._pbc), None)

    def get_property(self, name: str, atoms: Optional[Atoms] = None, allow_calculation: bool = True):
        """ASE's :meth:`~ase.calculators.calculator.Calculator.get_property` under the calculator's lock:
        the state check, the calculation and the read of its result are one step for other threads.
        A property the model does not give raises
        :class:`~ase.calculators.calculator.PropertyNotImplementedError` saying why."""
        if name not in self.implemented_properties:
            if name in ("dipole", "charges"):
                outputs = dict(getattr(self.model, "head_kinds", {}) or {"energy": "extensive"})
                raise PropertyNotImplementedError(
                    f"{name}: this model has no dipole head (its outputs: {outputs}); train a model with "
                    "SchNet(output='dipole_moment') or SchNet(extra_heads=(('dipole', 'dipole'),))"
                )
            if name in self.energy_properties:
                raise PropertyNotImplementedError(
                    f"{name}: this model's primary output is {self.output!r}, not a potential energy (a sum of "
                    "atom energies), so it gives no energy, forces or stress"
                )
        with self._lock:
            return super().get_property(name, atoms, allow_calculation)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_lock", None)  # a lock is not copied (copy.deepcopy of atoms with this calculator)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def calculate(
        self,
        atoms: Optional[Atoms] = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = tuple(all_changes),
    ) -> None:
        """Energy and forces (and stress when asked for) of ``atoms`` into ``self.results``."""
        with self._lock, torch.inference_mode(False):  # forces need autograd, also inside the caller's inference_mode
            self._calculate(atoms, properties, system_changes)

    def _calculate(self, atoms: Optional[Atoms], properties: Sequence[str], system_changes: Sequence[str]) -> None:
        # ASE's Calculator.calculate copies `atoms` into self.atoms (and checks a working directory this
        # calculator never writes to); get_property has just made that copy, so it is reused when it
        # still equals `atoms` in everything the energy depends on
        if atoms is not None and (self.atoms is None or self.check_state(atoms)):
            self.atoms = atoms.copy()
        atoms = self.atoms
        if atoms is None or len(atoms) == 0:
            raise ValueError(
                "SchNetCalculator: the Atoms object holds no atoms (len(atoms) == 0): there is no structure to "
                "compute an energy of; give it atoms (e.g. ase.build.molecule('H2O'))"
            )
        if self._z is None or _TOPOLOGY_CHANGES.intersection(system_changes):
            self._set_topology(atoms)
        wanted = [name for name in ("dipole", "charges") if name in properties and self.dipole_head is not None]
        if wanted and self._periodic:
            raise PropertyNotImplementedError(
                f"{wanted[0]}: the dipole sum_i q_i r_i of a periodic system depends on the images chosen and is "
                f"not defined (these atoms have pbc = {atoms.pbc.tolist()}); the dipole head computes molecules only"
            )
        for name in wanted:
            self._calculate_dipole(atoms, name)
        if self.output != "extensive" or not set(properties) & set(self.energy_properties):
            return
        want_stress = "stress" in properties
        if want_stress and not self._periodic:
            raise PropertyNotImplementedError(
                "stress is defined for periodic systems only: these atoms have pbc = "
                f"{atoms.pbc.tolist()}; set a cell and pbc=True to compute it"
            )
        positions = atoms.positions if self._length == 1.0 else atoms.positions / self._length
        # the MD evaluator checks positions on the host and moves them to its device itself, so a call
        # reads nothing back from the device but its two results
        pos = torch.as_tensor(positions, dtype=self.dtype, device=None if self._evaluator is not None else self.device)
        with cpu_threads(call_threads(self.threads, len(atoms), self.device)):
            energy, forces, stress = self._compute(pos, want_stress)
        e = float(energy.detach().to("cpu", torch.float64)[0]) * self._energy_factor
        self.results["energy"] = e
        self.results["free_energy"] = e
        self.results["forces"] = forces.detach().to("cpu", torch.float64).numpy() * self._force_factor
        if not (math.isfinite(e) and np.isfinite(self.results["forces"]).all()):  # on the host copies: free
            self.results.clear()
            raise FloatingPointError(
                f"SchNetCalculator: the model returned a non-finite energy ({e}) or forces for these "
                f"{len(atoms)} atoms (an overflow: atoms far outside the training geometries?); nothing is cached"
            )
        if stress is not None:
            full = stress.detach().to("cpu", torch.float64).numpy()[0] * self._stress_factor
            self.results["stress"] = full_3x3_to_voigt_6_stress(full)

    def _calculate_dipole(self, atoms: Atoms, name: str = "dipole") -> None:
        """``results["dipole"]`` (the model's dipole vector, e*Angstrom) or ``results["charges"]`` (its
        latent atomic charges, e) of ``atoms`` (a molecule)."""
        assert self.dipole_head is not None and self._z is not None
        positions = atoms.positions if self._length == 1.0 else atoms.positions / self._length
        pos = torch.as_tensor(positions, dtype=self.dtype, device=self.device)
        charge = torch.tensor([self._total_charge(atoms)], dtype=self.dtype, device=self.device)
        method = self.model.dipole if name == "dipole" else self.model.charges
        with torch.no_grad(), cpu_threads(call_threads(self.threads, len(atoms), self.device)):
            value = method(self._z, pos, charge=charge, head=self.dipole_head)
        result = value.detach().to("cpu", torch.float64).numpy()
        result = result[0] * self._length if name == "dipole" else result
        if not np.isfinite(result).all():
            raise FloatingPointError(f"SchNetCalculator: the model returned a non-finite {name} {result.tolist()}")
        self.results[name] = result
