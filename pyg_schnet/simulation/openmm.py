"""A trained SchNet as an OpenMM-ML potential: ``MLPotential("pyg-schnet", modelPath="model.pt")``.

.. code-block:: python

    import openmm, openmm.app
    from openmmml import MLPotential

    potential = MLPotential("pyg-schnet", modelPath="runs/eth/model.pt")
    system = potential.createSystem(topology)                           # every atom with the model
    mixed = potential.createMixedSystem(topology, mm_system, ml_atoms)  # an ML region in a force field

The package registers the factory :class:`~pyg_schnet.simulation.openmm_entry.SchNetPotentialImplFactory`
(light: it imports this module only when a potential is created) under the name ``"pyg-schnet"`` in
OpenMM-ML's entry-point group ``openmmml.potentials`` (pyproject.toml), so ``import openmmml`` finds it.
The model runs in a :class:`openmm.PythonForce` (:class:`SchNetComputation`): every force evaluation of
the Context hands it a :class:`openmm.State`, and it returns the model's energy and forces (the model in
eval mode, in the chosen precision): from :class:`~pyg_schnet.models.MDEvaluator` for a molecule (as
:class:`~pyg_schnet.simulation.ase.SchNetCalculator`'s default), from :meth:`pyg_schnet.SchNet.energy_and_forces`
(autograd) for a periodic system or with ``method="autograd"``.

Units: OpenMM gives positions and box vectors in nm and wants kJ/mol and kJ/mol/nm; the model works in
``model.units`` (its file records them: energy :math:`u_E`, length Angstrom). With the values of those
units in ASE's units (:func:`pyg_schnet.io.units.unit_value`; ``"nm"`` is 10 Angstrom)

.. math::
    \\mathbf r_{\\text{model}} = \\frac{u_{\\text{nm}}}{u_L} \\mathbf r, \\qquad
    E = \\frac{u_E}{u_{\\text{kJ/mol}}} \\hat E, \\qquad
    \\mathbf F = \\frac{u_E}{u_{\\text{kJ/mol}}} \\frac{u_{\\text{nm}}}{u_L} \\hat{\\mathbf F}
    \\quad (\\text{kJ/mol}, \\text{kJ/mol/nm}),

e.g. a kcal/mol model's energies times 4.184 and its forces (kcal/mol/Angstrom) times 41.84.

Periodic systems: a system is periodic when its topology has box vectors or the System uses periodic
boundary conditions (a force field with PME, for instance); the model then gets the Context's box at
every evaluation (so a barostat's box changes are followed) with all three axes periodic, and needs a
finite cutoff (a model with ``cutoff=None``, the paper's all-pairs SchNet, is refused when the system is
built). A non-periodic system works with either kind of model.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from typing import Any, Dict, Iterable, List, Optional, Union

import numpy as np
import torch
from torch import nn

try:
    import openmm
    import openmm.app
    from openmm import unit
except ImportError as exc:  # pragma: no cover - the module is only imported where OpenMM is
    raise ImportError(
        f"pyg_schnet.simulation.openmm needs OpenMM and OpenMM-ML ({exc}): pip install openmm openmmml"
    ) from exc

from pyg_schnet.io.units import resolve_units, unit_value
from pyg_schnet.models.domain import (
    UNSEEN_ELEMENT_POLICIES,
    UnseenElementError,
    UnseenElementWarning,
    check_elements,
)
from pyg_schnet.models.md_evaluator import MDEvaluator, neighbour_guard_reason, supports
from pyg_schnet.simulation.ase import _METHODS as METHODS
from pyg_schnet.simulation.ase import AutogradFallbackWarning, call_threads, cpu_threads

# OpenMM-ML loads the factories of its entry points at the end of its own import; ours lives in the light
# module openmm_entry (which imports nothing of this one), so importing this module first is fine.
try:
    from openmmml.mlpotential import MLPotentialImpl
except ImportError as exc:  # pragma: no cover - the module is only imported where OpenMM-ML is
    raise ImportError(f"pyg_schnet.simulation.openmm needs OpenMM-ML ({exc}): pip install openmmml") from exc

#: The potential's name in OpenMM-ML (``MLPotential(NAME, ...)``, the entry point's name).
NAME = "pyg-schnet"

#: ``createSystem(..., precision=...)``: the names of the model's two dtypes (OpenMM-ML's potentials
#: say ``"single"`` / ``"double"``, torch says ``float32`` / ``float64``; all four are accepted).
PRECISIONS: Dict[str, torch.dtype] = {
    "float64": torch.float64,
    "double": torch.float64,
    "float32": torch.float32,
    "single": torch.float32,
}

#: The options of ``createSystem`` / ``createMixedSystem`` this potential reads (other keywords are the
#: embedding's, e.g. ``mlLongRange``, and are left to it).
SYSTEM_OPTIONS = ("precision", "device", "method", "unseenElements", "threads")


def _owner(source: str) -> str:
    return f"MLPotential({NAME!r}) ({source})"


def describe_atom(atom: "openmm.app.topology.Atom") -> str:
    """``"topology atom 4 (name 'O1', residue ETH 1, chain A)"``: an atom as a user finds it in the topology."""
    residue = atom.residue
    where = f"residue {residue.name} {residue.id}, chain {residue.chain.id}"
    return f"topology atom {atom.index} (name {atom.name!r}, {where})"


def resolve_precision(precision: Any, owner: str) -> torch.dtype:
    """The torch dtype of ``precision`` (a name of :data:`PRECISIONS` or ``torch.float32`` / ``torch.float64``)."""
    if isinstance(precision, torch.dtype) and precision in (torch.float32, torch.float64):
        return precision
    if isinstance(precision, str) and precision in PRECISIONS:
        return PRECISIONS[precision]
    raise ValueError(
        f"{owner}: precision must be one of {tuple(PRECISIONS)} (or torch.float32 / torch.float64), got {precision!r}"
    )


class SchNetComputation:
    """The function of the :class:`openmm.PythonForce`: an OpenMM State in, energy and forces out.

    Args:
        model: the model, already in eval mode on ``device`` in ``dtype``, its weights without gradients.
        z: atomic numbers ``[N]`` of the particles the force applies to (on ``device``).
        periodic: whether the State carries box vectors the model must use (all axes periodic).
        energy_factor: :math:`u_E / u_{\\text{kJ/mol}}`, the model's energy unit in kJ/mol.
        length_factor: :math:`u_{\\text{nm}} / u_L`, 1 nm in the model's length unit.
        threads: CPU threads of a call (``None``: torch's setting); restored after the call.
        method: ``"exact"`` / ``"tabulated"``: a molecule's energy and forces from
            :class:`~pyg_schnet.models.MDEvaluator` in that mode (as SchNetCalculator's methods);
            ``"autograd"`` (and every periodic system): :meth:`SchNet.energy_and_forces`.

    ``__call__(state)`` returns the energy (kJ/mol, a float) and the forces (kJ/mol/nm, a float64
    array ``[N, 3]``), or raises :class:`FloatingPointError` when the model's result is not finite (OpenMM
    passes the message on in an :class:`openmm.OpenMMException`). The object pickles (the model with it;
    the evaluator is rebuilt from it), which :class:`openmm.XmlSerializer` and ``copy.deepcopy`` of the
    force need.
    """

    def __init__(
        self,
        model: nn.Module,
        z: torch.Tensor,
        periodic: bool,
        energy_factor: float,
        length_factor: float,
        threads: Optional[int],
        method: str = "autograd",
    ) -> None:
        self.model = model
        self.z = z
        self.periodic = periodic
        self.energy_factor = energy_factor
        self.length_factor = length_factor
        self.force_factor = energy_factor * length_factor
        self.threads = threads
        self.method = "autograd" if periodic else method
        parameter = next(iter(model.parameters()))
        self.dtype = parameter.dtype
        self.device = parameter.device
        self.pbc = torch.ones(1, 3, dtype=torch.bool, device=self.device) if periodic else None
        self._evaluator: Optional[MDEvaluator] = None
        self._build_evaluator()

    def _build_evaluator(self) -> None:
        if self.method != "autograd":
            self._evaluator = MDEvaluator(self.model, self.z, mode=self.method, dtype=self.dtype)

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        state["_evaluator"] = None  # caches of one process; rebuilt from the model
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._build_evaluator()

    def __call__(self, state: "openmm.State"):
        positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer) * self.length_factor
        with cpu_threads(self.threads):
            if self._evaluator is not None:  # it checks positions on the host and moves them itself
                energy, forces = self._evaluator(torch.as_tensor(positions, dtype=self.dtype))
            else:
                pos = torch.as_tensor(positions, dtype=self.dtype, device=self.device)
                cell = None
                if self.periodic:
                    box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
                    cell = torch.as_tensor(box * self.length_factor, dtype=self.dtype, device=self.device)[None]
                # forces need autograd, also when OpenMM is driven from inside a no_grad / inference_mode
                with torch.inference_mode(False), torch.enable_grad():
                    energy, forces = self.model.energy_and_forces(self.z, pos, None, cell, self.pbc)
        e = float(energy.detach().to("cpu", torch.float64)[0]) * self.energy_factor
        f = forces.detach().to("cpu", torch.float64).numpy() * self.force_factor
        if not (math.isfinite(e) and np.isfinite(f).all()):
            raise FloatingPointError(
                f"{_owner('PythonForce')}: the model returned a non-finite energy ({e} kJ/mol) or forces for "
                f"{len(f)} atoms (an overflow: atoms far outside the training geometries, or a blown-up simulation?)"
            )
        return e, f


def create_impl(
    name: str,
    modelPath: Optional[Union[str, "os.PathLike[str]"]] = None,
    model: Optional[nn.Module] = None,
    energyUnit: Optional[str] = None,
    **args: Any,
) -> "SchNetPotentialImpl":
    """The implementation :class:`~pyg_schnet.simulation.openmm_entry.SchNetPotentialImplFactory` creates for
    ``MLPotential(name, ...)`` (its keywords are documented there)."""
    from pyg_schnet.io.model_file import load_model

    owner = _owner("no model")
    if args:
        raise TypeError(
            f"{owner}: unknown keyword(s) {sorted(args)}; MLPotential({name!r}, ...) takes modelPath or model, "
            f"and energyUnit; {', '.join(SYSTEM_OPTIONS)} are options of createSystem / createMixedSystem"
        )
    if (modelPath is None) == (model is None):
        raise ValueError(
            f"{owner}: give exactly one of modelPath (a model.pt written by pyg_schnet.save_model) or model "
            f"(a pyg_schnet.SchNet), e.g. MLPotential({name!r}, modelPath='runs/eth/model.pt')"
        )
    if modelPath is not None:
        if not isinstance(modelPath, (str, os.PathLike)):
            raise TypeError(f"{owner}: modelPath must be a path, got {type(modelPath).__name__}")
        source = os.fspath(modelPath)
        model = load_model(modelPath)
    else:
        if not isinstance(model, nn.Module):
            raise TypeError(f"{owner}: model must be a pyg_schnet.SchNet, got {type(model).__name__}")
        source = f"a {type(model).__name__} instance"
    units = resolve_units(
        model,
        energyUnit,
        hint=f"pass MLPotential({name!r}, ..., energyUnit=...), the unit of its training energies, e.g. 'kcal/mol'",
        option=f"MLPotential({name!r}, energyUnit=...)",
    )
    return SchNetPotentialImpl(model, units, source)


class SchNetPotentialImpl(MLPotentialImpl):
    """The OpenMM-ML implementation of ``MLPotential("pyg-schnet", ...)``: adds one
    :class:`openmm.PythonForce` running the model (:class:`SchNetComputation`).

    Options of ``createSystem`` / ``createMixedSystem`` (keywords; others are left to the embedding):

    - ``precision``: ``"float64"`` (default, as :class:`~pyg_schnet.simulation.ase.SchNetCalculator`;
      energy conservation) or ``"float32"`` (speed); ``"double"`` / ``"single"`` and the torch dtypes too.
    - ``device``: torch device of the model (default: CUDA when available, else the CPU; checked by
      :func:`pyg_schnet.io.devices.resolve_device`).
    - ``method``: how a molecule's (non-periodic system's) energy and forces are computed, as
      SchNetCalculator's ``method``: ``"exact"`` (default; :class:`~pyg_schnet.models.MDEvaluator`, the
      model's numbers to rounding without autograd's overhead), ``"tabulated"`` (spline filters, an
      approximation) or ``"autograd"`` (:meth:`SchNet.energy_and_forces`). Periodic systems, and models
      that :func:`~pyg_schnet.models.md_evaluator.supports` rejects (with an
      :class:`~pyg_schnet.simulation.ase.AutogradFallbackWarning`), use ``energy_and_forces``.
    - ``unseenElements``: ``"warn"`` (default), ``"error"`` or ``"ignore"``: what an ML atom whose element
      is outside the model's training set gets (:func:`pyg_schnet.models.domain.check_elements`; the
      message names the topology atom), checked when the system is built.
    - ``threads``: CPU threads of each evaluation (default: one for at most
      :data:`~pyg_schnet.simulation.ase.SMALL_SYSTEM_ATOMS` ML atoms, torch's setting above).

    Each system gets its own copy of the model (the one passed in, or loaded, is not changed).
    """

    def __init__(self, model: nn.Module, units: Dict[str, str], source: str) -> None:
        self.model = model
        self.units = units
        self.source = source
        #: the model's cutoff in Angstrom (``None``: all pairs, molecules only)
        self.cutoff: Optional[float] = getattr(getattr(model, "settings", None), "cutoff", None)
        self.energy_factor = unit_value(units["energy"]) / unit_value("kJ/mol")
        self.length_factor = unit_value("nm") / unit_value(units["length"])

    @property
    def owner(self) -> str:
        return _owner(self.source)

    def getMLLongRange(self) -> bool:
        """SchNet's interactions end at its cutoff: no long-range (Ewald) terms. OpenMM-ML's mechanical
        embedding needs this answer for a periodic system."""
        return False

    def addForces(
        self,
        topology: "openmm.app.Topology",
        system: "openmm.System",
        atoms: Optional[Iterable[int]],
        forceGroup: int,
        **args: Any,
    ) -> None:
        """Add the model's :class:`openmm.PythonForce` for ``atoms`` of ``topology`` (``None``: all) to
        ``system`` in force group ``forceGroup``; the options are in the class docstring.

        Raises:
            ValueError: no atoms, an atom index outside the topology, an atom without an element (or one the
                model's embedding has no row for), a periodic system with a cutoff-less model, a bad option.
            pyg_schnet.models.domain.UnseenElementError: an element outside the training set with
                ``unseenElements="error"``.
        """
        from pyg_schnet.io.devices import resolve_device

        owner = self.owner
        if not hasattr(openmm, "PythonForce"):
            raise RuntimeError(
                f"{owner}: this OpenMM ({openmm.__version__}) has no PythonForce (OpenMM 8.5 and newer), which runs "
                "the model: pip install -U openmm openmmml (tested with OpenMM 8.6.1, OpenMM-ML 1.8)"
            )
        dtype = resolve_precision(args.get("precision", "float64"), owner)
        device = torch.device(resolve_device(args.get("device"), f"{owner} createSystem(device=...)"))
        method = args.get("method", "exact")
        if method not in METHODS:
            raise ValueError(f"{owner}: method must be one of {METHODS}, got {method!r}")
        policy = args.get("unseenElements", "warn")
        if policy not in UNSEEN_ELEMENT_POLICIES:
            raise ValueError(f"{owner}: unseenElements must be one of {UNSEEN_ELEMENT_POLICIES}, got {policy!r}")
        threads = args.get("threads")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"{owner}: threads must be a positive integer or None, got {threads!r}")

        all_atoms = list(topology.atoms())
        if atoms is None:
            indices = list(range(len(all_atoms)))
        else:
            indices = [int(i) for i in atoms]
            bad = [i for i in indices if not 0 <= i < len(all_atoms)]
            if bad:
                raise ValueError(f"{owner}: ML atom index {bad[0]} is outside the topology's {len(all_atoms)} atoms")
            if len(set(indices)) != len(indices):
                raise ValueError(f"{owner}: the ML atoms list an atom more than once: {indices}")
        if not indices:
            raise ValueError(f"{owner}: no atoms to apply the model to (an empty topology or ML region)")
        included = [all_atoms[i] for i in indices]
        z = torch.as_tensor(self._atomic_numbers(included), dtype=torch.long)
        self._check_domain(z, included, policy, subset=atoms is not None)

        periodic = topology.getPeriodicBoxVectors() is not None or system.usesPeriodicBoundaryConditions()
        if periodic and self.cutoff is None:
            raise ValueError(
                f"{owner}: the system is periodic (the topology has box vectors or the System uses periodic "
                "boundary conditions) but the model has no cutoff (cutoff=None, the paper's all-pairs SchNet): "
                "its energy of a periodic box is not defined. Use a model trained with a finite cutoff "
                "(SchNet(cutoff=...)), or a non-periodic topology (no box vectors, a non-periodic force field)"
            )

        with torch.inference_mode(False):  # weights autograd can use, whatever mode the caller is in
            model = copy.deepcopy(self.model).to(device=device, dtype=dtype).eval()
        model.requires_grad_(False)  # only d/dpos is needed
        if threads is None:  # an explicit count holds on any device
            threads = call_threads(None, len(indices), device)
        reason = (
            supports(model) or neighbour_guard_reason(model, len(indices))
            if method != "autograd" and not periodic
            else None
        )
        if reason is not None:
            warnings.warn(
                f"{owner}: method={method!r} computes this molecule with the model's autograd path "
                f"(model.energy_and_forces): {reason}",
                AutogradFallbackWarning,
                stacklevel=2,
            )
            method = "autograd"
        computation = SchNetComputation(
            model,
            z.to(device),
            periodic,
            self.energy_factor,
            self.length_factor,
            threads if device.type == "cpu" else None,
            method,
        )
        force = openmm.PythonForce(computation)
        force.setName(f"{NAME} ({self.source})")
        force.setForceGroup(forceGroup)
        force.setUsesPeriodicBoundaryConditions(periodic)
        if atoms is not None:
            force.setParticles(indices)
        system.addForce(force)

    def _atomic_numbers(self, included: List["openmm.app.topology.Atom"]) -> List[int]:
        max_z = getattr(self.model, "max_z", None)
        numbers = []
        for atom in included:
            if atom.element is None:
                raise ValueError(
                    f"{self.owner}: {describe_atom(atom)} has no element (a virtual site, an extra particle, or an "
                    "atom whose element the topology file does not give): the model needs the element of every "
                    "atom it is applied to; set it in the topology or leave the atom out of the ML region"
                )
            number = int(atom.element.atomic_number)
            if max_z is not None and not 0 < number < int(max_z):
                raise ValueError(
                    f"{self.owner}: {describe_atom(atom)} is {atom.element.symbol} (Z = {number}), outside the "
                    f"model's embedding (atomic numbers 1 to {int(max_z) - 1}, max_z = {int(max_z)})"
                )
            numbers.append(number)
        return numbers

    def _check_domain(
        self, z: torch.Tensor, included: List["openmm.app.topology.Atom"], policy: str, subset: bool
    ) -> None:
        """:func:`check_elements` with a message that names the topology atom (its index in the ML region is
        what check_elements counts) and this potential's keyword, ``unseenElements``."""
        domain = getattr(self.model, "training_domain", None)
        if domain is None or policy == "ignore":
            return
        outside = domain.unseen(z).tolist()
        if not outside:
            return
        first = int(outside[0])
        region = f"ML atom {first} = " if subset else ""
        where = f"{self.owner}, {region}{describe_atom(included[first])}"
        if policy == "error":
            check_elements(domain, z, "error", where)
            return
        try:
            check_elements(domain, z, "error", where)
        except UnseenElementError as exc:
            warnings.warn(f"{exc}; pass unseenElements='error' to refuse them", UnseenElementWarning, stacklevel=4)
