"""A trained SchNet as a TorchSim model: batched energies, forces and stress of many systems at once.

.. code-block:: python

    import torch_sim as ts
    from ase.build import molecule
    from pyg_schnet.simulation.torchsim import SchNetModel

    model = SchNetModel("runs/eth/model.pt")                 # trained in kcal/mol, converted to eV
    state = ts.io.atoms_to_state([molecule("CH3CH2OH"), molecule("H2O")], model.device, model.dtype)
    out = model(state)                                       # energy [2] eV, forces [12, 3] eV/Angstrom
    relaxed = ts.optimize(state, model, optimizer=ts.optimizers.fire,
                          convergence_fn=ts.runners.generate_force_convergence_fn(0.05))

:class:`SchNetModel` implements TorchSim's :class:`~torch_sim.models.interface.ModelInterface` (torch-sim-atomistic
0.3.0), so TorchSim's integrators (``nve``, ``nvt_langevin``, ``npt_langevin``), optimizers (``fire``,
``unit_cell_fire``, ``frechet_cell_fire``, gradient descent), runners (``ts.integrate``, ``ts.optimize``,
``ts.static``) and autobatchers drive the model. All systems of a state go through **one** call of the
model (:meth:`SchNet.energy_and_forces`, :meth:`SchNet.energy_forces_stress`), whatever their sizes.

**State to model.** A :class:`~torch_sim.state.SimState` holds ``positions`` ``[N, 3]`` (Angstrom),
``atomic_numbers`` ``[N]``, ``system_idx`` ``[N]`` (the system of each atom, ``0..G-1``, sorted), ``cell``
``[G, 3, 3]`` with the lattice vectors as **columns** and one ``pbc`` for the whole state. The model takes
``batch = system_idx``, ``cell`` with the lattice vectors as rows (``state.cell`` transposed,
:attr:`SimState.row_vector_cell`) and ``pbc`` ``[G, 3]``; a state with ``pbc=False`` is a batch of molecules
(its cells are not used). TorchSim 0.3 has one ``pbc`` per state, so a molecule in a periodic state
is a periodic system: in a box wider than its extent plus the cutoff in every direction it has the energy
of the isolated molecule.

**Units.** TorchSim works in eV, Angstrom, eV/Angstrom and eV/Angstrom^3 (its "metal" units). The model
predicts in its own unit (``model.units``; :func:`pyg_schnet.io.units.unit_value` gives :math:`u_E` in eV
and :math:`u_L` in Angstrom), so with the model's numbers :math:`\\hat E, \\hat{\\mathbf F}, \\hat\\sigma`

.. math::
    E = u_E \\hat E, \\qquad \\mathbf F = \\frac{u_E}{u_L} \\hat{\\mathbf F}, \\qquad
    \\sigma = \\frac{u_E}{u_L^3} \\hat\\sigma,

with positions and cells divided by :math:`u_L` on the way in. The stress has ASE's (and TorchSim's)
sign, :math:`\\sigma = V^{-1} \\partial E / \\partial \\varepsilon` for a symmetric strain
:math:`\\varepsilon` (tensile positive), a full ``[G, 3, 3]`` tensor in Cartesian axes; TorchSim's cell
filters use it as ``virial = -V (sigma + p)``.
"""

from __future__ import annotations

import copy
import os
from typing import Dict, List, Optional, Union, cast

import torch
from torch import Tensor, nn

try:
    from torch_sim.models.interface import ModelInterface
    from torch_sim.state import SimState
except ImportError as exc:  # pragma: no cover - exercised where TorchSim is absent
    raise ImportError(
        "pyg_schnet.simulation.torchsim needs TorchSim: pip install torch-sim-atomistic "
        f"(0.3.0 is the newest release for Python 3.11) ({type(exc).__name__}: {exc})"
    ) from exc

from pyg_schnet.io.units import resolve_units, unit_value
from pyg_schnet.models.domain import UNSEEN_ELEMENT_POLICIES, check_elements
from pyg_schnet.models.schnet import SchNet
from pyg_schnet.simulation.ase import call_threads, cpu_threads
from pyg_schnet.validation import check_positive_int

ModelLike = Union[nn.Module, str, "os.PathLike[str]"]

#: TorchSim's memory metrics (``torch_sim.typing.MemoryScaling``), which its autobatchers size batches by.
MEMORY_SCALINGS = ("n_atoms", "n_atoms_x_density")

#: The fields a state given as a dict must have (``masses`` may be left out: the model does not use them).
_STATE_FIELDS = ("positions", "cell", "pbc", "atomic_numbers")


def _usable(t: Tensor) -> Tensor:
    """``t``, or a copy of it where it was made under :func:`torch.inference_mode` (autograd cannot save
    such a tensor for the backward pass of the forces)."""
    return t.clone() if t.is_inference() else t


class SchNetModel(ModelInterface):
    """TorchSim model of a :class:`pyg_schnet.SchNet`: ``model(state)`` -> ``{"energy", "forces", "stress"}``.

    Args:
        model: a :class:`~pyg_schnet.SchNet`, or the path of a ``model.pt`` (:func:`pyg_schnet.load_model`).
            The wrapper works on its own copy in ``dtype`` on ``device`` in eval mode; the model passed in is
            not changed.
        energy_unit: the unit of the model's energies for a model that records none (a ``model.pt`` of
            format /1); for one that records its unit it may only repeat it (as ``SchNetCalculator``).
        device: torch device of the computation (``None``: CUDA when available, else the CPU). States must
            be on it (``state.to(device=model.device, dtype=model.dtype)``; TorchSim's runners do this).
        dtype: ``torch.float64`` (default; energy conservation in MD) or ``torch.float32``; states must have it.
        compute_forces: return ``"forces"`` ``[N, 3]`` (eV/Angstrom). Without forces and stress the energy
            is computed without autograd.
        compute_stress: return ``"stress"`` ``[G, 3, 3]`` (eV/Angstrom^3) for periodic states; a state
            with ``pbc=False`` has no stress and gets no ``"stress"`` entry.
        unseen_elements: ``"warn"`` (default), ``"error"`` or ``"ignore"``: what a state holding an element
            outside the model's training set gets (:func:`pyg_schnet.models.domain.check_elements`; the
            message names the system and the atom). Checked when the atomic numbers change.
        memory_scales_with: the metric TorchSim's autobatchers size batches by, ``"n_atoms"`` (default: it
            is defined for molecules too, whose zero cell has no density) or ``"n_atoms_x_density"`` (for
            periodic states with a cutoff model: pairs grow with the density).
        threads: CPU threads of each call; ``None`` (default): one thread for states of at most
            :data:`pyg_schnet.simulation.ase.SMALL_SYSTEM_ATOMS` atoms in all (as ``SchNetCalculator``),
            torch's setting for larger ones. The process's setting is restored after each call.

    Raises (from :meth:`forward`): :class:`ValueError` for a periodic state and a model without cutoff, a
    state on another device or in another dtype, an empty state or missing fields;
    :class:`~pyg_schnet.models.domain.UnseenElementError` for an unseen element with
    ``unseen_elements="error"``; :class:`FloatingPointError` when the model returns a non-finite energy,
    force or stress (naming the system).
    """

    def __init__(
        self,
        model: ModelLike,
        *,
        energy_unit: Optional[str] = None,
        device: Optional[Union[str, torch.device]] = None,
        dtype: torch.dtype = torch.float64,
        compute_forces: bool = True,
        compute_stress: bool = True,
        unseen_elements: str = "warn",
        memory_scales_with: str = "n_atoms",
        threads: Optional[int] = None,
    ) -> None:
        super().__init__()
        from pyg_schnet.io.devices import resolve_device
        from pyg_schnet.io.model_file import load_model

        if dtype not in (torch.float64, torch.float32):
            raise ValueError(f"SchNetModel: dtype must be torch.float64 or torch.float32, got {dtype}")
        if unseen_elements not in UNSEEN_ELEMENT_POLICIES:
            raise ValueError(
                f"SchNetModel: unseen_elements must be one of {UNSEEN_ELEMENT_POLICIES}, got {unseen_elements!r}"
            )
        if memory_scales_with not in MEMORY_SCALINGS:
            raise ValueError(
                f"SchNetModel: memory_scales_with must be one of {MEMORY_SCALINGS}, got {memory_scales_with!r}"
            )
        if threads is not None:
            check_positive_int("SchNetModel", "threads", threads)
        if isinstance(model, (str, os.PathLike)):
            model = load_model(model)
        elif not isinstance(model, nn.Module):
            raise TypeError(
                f"SchNetModel: model must be a SchNet or the path of a model.pt, got {type(model).__name__}"
            )
        #: the model's units (``{"energy": ..., "length": "Angstrom"}``), converted to TorchSim's eV and Angstrom
        self.units: Dict[str, str] = resolve_units(
            model,
            energy_unit,
            hint="pass SchNetModel(..., energy_unit=...), the unit of its training energies, e.g. 'kcal/mol'",
            option="SchNetModel(energy_unit=...)",
        )
        self.unseen_elements = unseen_elements
        self.threads = threads
        self._device = torch.device(resolve_device(None if device is None else str(device), "SchNetModel(device=...)"))
        self._dtype = dtype
        self._compute_forces = self._flag("compute_forces", compute_forces)
        self._compute_stress = self._flag("compute_stress", compute_stress)
        self._memory_scales_with = memory_scales_with
        with torch.inference_mode(False):  # weights that autograd can use, whatever mode the caller is in
            #: the wrapper's copy of the model (a SchNet or a module with its methods)
            self.model = cast(SchNet, copy.deepcopy(model).to(device=self._device, dtype=dtype).eval())
        self.model.requires_grad_(False)  # only d/dpos (and d/dstrain) are needed
        #: the model's cutoff (Angstrom); ``None``: all pairs, molecules only
        self.cutoff: Optional[float] = getattr(getattr(self.model, "representation", None), "cutoff", None)
        energy = unit_value(self.units["energy"])
        self._length = unit_value(self.units["length"])
        self._energy_factor = energy
        self._force_factor = energy / self._length
        self._stress_factor = energy / self._length**3
        self._checked_z: Optional[Tensor] = None  # the atomic numbers last compared with the training domain

    # ------------------------------------------------------------------------------ flags TorchSim sets
    @staticmethod
    def _flag(name: str, value: object) -> bool:
        if not isinstance(value, bool):
            raise TypeError(f"SchNetModel: {name} must be True or False, got {value!r}")
        return value

    @property
    def compute_forces(self) -> bool:
        """Whether :meth:`forward` returns ``"forces"`` (settable)."""
        return self._compute_forces

    @compute_forces.setter
    def compute_forces(self, value: bool) -> None:
        self._compute_forces = self._flag("compute_forces", value)

    @property
    def compute_stress(self) -> bool:
        """Whether :meth:`forward` returns ``"stress"`` for periodic states (settable)."""
        return self._compute_stress

    @compute_stress.setter
    def compute_stress(self, value: bool) -> None:
        self._compute_stress = self._flag("compute_stress", value)

    # ---------------------------------------------------------------------------------------- internals
    def _as_state(self, state: Union[SimState, Dict[str, Tensor]]) -> SimState:
        if isinstance(state, SimState):
            return state
        if not isinstance(state, dict):
            raise TypeError(
                f"SchNetModel: the state must be a torch_sim SimState or a dict, got {type(state).__name__}"
            )
        missing = [k for k in _STATE_FIELDS if k not in state]
        if missing:
            raise ValueError(f"SchNetModel: the state dict lacks {missing} (it needs {list(_STATE_FIELDS)})")
        fields = dict(state)
        fields.setdefault("masses", torch.ones_like(fields["positions"][:, 0]))
        return SimState(**fields)

    def _check_state(self, state: SimState) -> None:
        pos = state.positions
        if pos.dim() != 2 or pos.size(-1) != 3 or pos.size(0) == 0:
            raise ValueError(
                f"SchNetModel: state.positions must be [n_atoms, 3] with n_atoms > 0, got {tuple(pos.shape)}"
            )
        for name in ("positions", "cell"):
            t = getattr(state, name)
            if t.device != self._device or t.dtype != self._dtype:
                raise ValueError(
                    f"SchNetModel: state.{name} is {t.dtype} on {t.device}, the model computes in {self._dtype} on "
                    f"{self._device}: pass state.to(device=model.device, dtype=model.dtype) "
                    "(ts.integrate / ts.optimize do this themselves)"
                )
        if state.atomic_numbers.device != self._device or state.system_idx.device != self._device:
            raise ValueError(f"SchNetModel: state.atomic_numbers and state.system_idx must be on {self._device}")

    def _periodic(self, pbc: object, num_systems: int) -> Optional[Tensor]:
        """``pbc`` ``[G, 3]`` bool for the model, or ``None`` for a state of molecules. TorchSim 0.3 has one
        bool per state; a tensor ``[3]`` (per axis, all systems) or ``[G, 3]`` is taken as well."""
        if isinstance(pbc, bool):  # TorchSim 0.3: decided on the host, no device read
            if not pbc:
                return None
            flags = torch.ones((num_systems, 3), dtype=torch.bool, device=self._device)
        else:
            flags = torch.as_tensor(pbc, dtype=torch.bool, device=self._device)
        if flags.dim() == 0:
            flags = flags.expand(3)
        if flags.dim() == 1:
            flags = flags.expand(num_systems, 3)
        if flags.shape != (num_systems, 3):
            raise ValueError(
                f"SchNetModel: state.pbc must be a bool, [3] or [n_systems, 3] = [{num_systems}, 3], "
                f"got shape {tuple(flags.shape)}"
            )
        if not bool(flags.any()):
            return None
        if self.cutoff is None:
            raise ValueError(
                "SchNetModel: the state is periodic (pbc = True) but this SchNet has cutoff=None (all pairs): a "
                "periodic system has infinitely many pairs. Use a model trained with a finite cutoff (SchNet(cutoff="
                "5.0)), or give molecules in a state with pbc=False"
            )
        return flags.contiguous()

    def _check_elements(self, z: Tensor, system_idx: Tensor) -> None:
        domain = getattr(self.model, "training_domain", None)
        if domain is None or self.unseen_elements == "ignore":
            return
        cached = self._checked_z
        if cached is not None and cached.shape == z.shape and torch.equal(cached, z):
            return
        self._checked_z = None  # a refused state leaves nothing checked behind
        counts = torch.bincount(system_idx).tolist()
        ptr: List[int] = [0]
        for n in counts:
            ptr.append(ptr[-1] + int(n))
        check_elements(domain, z.cpu(), self.unseen_elements, "SchNetModel", ptr=ptr)
        self._checked_z = z.clone()

    @staticmethod
    def _check_finite(out: Dict[str, Tensor], batch: Tensor) -> None:
        """One device read when all is finite; else :class:`FloatingPointError` naming the first bad system."""
        if bool(torch.stack([torch.isfinite(v).all() for v in out.values()]).all()):
            return
        for name, values in out.items():
            finite = torch.isfinite(values).reshape(values.size(0), -1).all(dim=1)
            if not bool(finite.all()):
                row = int((~finite).nonzero()[0])
                system = int(batch[row]) if name == "forces" else row
                raise FloatingPointError(
                    f"SchNetModel: the model returned a non-finite {name} for system {system} (an overflow: atoms "
                    "far outside the training geometries, or an MD run that blew up?)"
                )

    # ------------------------------------------------------------------------------------------ forward
    def forward(self, state: Union[SimState, Dict[str, Tensor]], **kwargs: object) -> Dict[str, Tensor]:
        """Energies ``[G]`` (eV), forces ``[N, 3]`` (eV/Angstrom) and, for a periodic state when
        :attr:`compute_stress`, stress ``[G, 3, 3]`` (eV/Angstrom^3) of all systems of ``state`` in one
        call of the model. ``state`` is not changed; the results are detached."""
        state = self._as_state(state)
        self._check_state(state)
        num_systems = int(state.cell.shape[0])
        z = state.atomic_numbers
        batch = state.system_idx
        pbc = self._periodic(state.pbc, num_systems)
        self._check_elements(z, batch)
        want_stress = self._compute_stress and pbc is not None
        want_forces = self._compute_forces or want_stress
        with torch.inference_mode(False):  # forces need autograd, also inside the caller's inference_mode
            z, batch = _usable(z), _usable(batch)
            pos = _usable(state.positions.detach())
            if self._length != 1.0:
                pos = pos / self._length
            cell: Optional[Tensor] = None
            if pbc is not None:
                cell = _usable(state.row_vector_cell.detach())  # lattice vectors as rows
                if self._length != 1.0:
                    cell = cell / self._length
            stress: Optional[Tensor] = None
            forces: Optional[Tensor] = None
            with cpu_threads(call_threads(self.threads, pos.size(0), self._device)):
                if want_stress:
                    energy, forces, stress = self.model.energy_forces_stress(z, pos, batch, cell, pbc)
                elif want_forces:
                    energy, forces = self.model.energy_and_forces(z, pos, batch, cell, pbc)
                else:
                    with torch.no_grad():
                        energy = self.model(z, pos, batch, cell, pbc)
        if energy.shape != (num_systems,):
            raise ValueError(
                f"SchNetModel: the model returned {tuple(energy.shape)} energies for a state of {num_systems} "
                "systems (state.system_idx must number the systems 0..n_systems-1, each holding atoms)"
            )
        out: Dict[str, Tensor] = {"energy": energy.detach() * self._energy_factor}
        if forces is not None and self._compute_forces:
            out["forces"] = forces.detach() * self._force_factor
        if stress is not None:
            out["stress"] = stress.detach() * self._stress_factor
        self._check_finite(out, batch)
        return out
