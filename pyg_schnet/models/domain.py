"""What a model was trained on (:class:`TrainingDomain`), and the check that a structure stays inside it.

A SchNet accepts any atomic number below ``max_z``, but its embedding of an element it never saw in
training is its random initial value: the energy of a structure holding such an element is an
extrapolation without any sign of it (an ethanol model given Cl instead of O returned an energy within
0.02 eV of ethanol's). The trainer records the training set's facts on the model
(``model.training_domain``) and :func:`pyg_schnet.save_model` writes them into ``model.pt``;
:func:`check_elements` compares a structure's elements with them (the ASE calculator and ``pyg-schnet
evaluate`` call it). Models of files written before the record (``pyg_schnet.model/1`` and ``/2``) have
``training_domain = None``: their domain is unknown and nothing is checked.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

#: What :func:`check_elements` does with an element outside the training set: warn (default), raise
#: :class:`UnseenElementError`, or say nothing.
UNSEEN_ELEMENT_POLICIES = ("warn", "error", "ignore")


class UnseenElementWarning(UserWarning):
    """A structure holds an element the model never saw in training (its energy is an extrapolation)."""


class UnseenElementError(ValueError):
    """A structure holds an element the model never saw in training, and the caller asked to refuse it."""


def element_name(z: int) -> str:
    """``"Cl (Z = 17)"``: the chemical symbol (from :mod:`ase.data`) and the atomic number."""
    from ase.data import chemical_symbols

    symbol = chemical_symbols[z] if 0 < z < len(chemical_symbols) else "?"
    return f"{symbol} (Z = {z})"


@dataclass(frozen=True)
class TrainingDomain:
    """Facts of a model's training set, measured once over its examples.

    Attributes:
        elements: the atomic numbers present in the training structures, sorted.
        num_structures: training structures.
        max_atoms: atoms of the largest training structure.
        min_distance: smallest distance between two atoms of one training structure (Angstrom; periodic
            images not counted); ``None`` when no structure has two atoms.
        energy_per_atom: ``(min, max)`` of a structure's energy divided by its atom count, in the model's
            energy unit (``model.units["energy"]``); ``None`` when the examples carry no energy.
    """

    elements: Tuple[int, ...]
    num_structures: int
    max_atoms: int
    min_distance: Optional[float] = None
    energy_per_atom: Optional[Tuple[float, float]] = None

    def as_dict(self) -> Dict[str, Any]:
        """Plain numbers and lists (what ``model.pt`` stores under ``training_domain``)."""
        return {
            "elements": [int(z) for z in self.elements],
            "num_structures": int(self.num_structures),
            "max_atoms": int(self.max_atoms),
            "min_distance": None if self.min_distance is None else float(self.min_distance),
            "energy_per_atom": None if self.energy_per_atom is None else [float(e) for e in self.energy_per_atom],
        }

    @classmethod
    def from_dict(cls, record: Any, where: str = "training_domain") -> "TrainingDomain":
        """The domain :meth:`as_dict` wrote; :class:`ValueError` naming ``where`` and the field at fault."""
        if not isinstance(record, Mapping):
            raise ValueError(f"{where} must be a dict, got {type(record).__name__}")
        try:
            elements = tuple(int(z) for z in record["elements"])
            num_structures = int(record["num_structures"])
            max_atoms = int(record["max_atoms"])
            dmin = record.get("min_distance")
            energy = record.get("energy_per_atom")
            domain = cls(
                elements=elements,
                num_structures=num_structures,
                max_atoms=max_atoms,
                min_distance=None if dmin is None else float(dmin),
                energy_per_atom=None if energy is None else (float(energy[0]), float(energy[1])),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"{where}: malformed record {dict(record)!r} ({type(exc).__name__}: {exc})") from exc
        if not elements or any(z < 1 for z in elements) or list(elements) != sorted(set(elements)):
            raise ValueError(f"{where}: field 'elements' must be sorted distinct atomic numbers >= 1, got {elements}")
        if domain.min_distance is not None and not math.isfinite(domain.min_distance):
            raise ValueError(f"{where}: field 'min_distance' must be finite, got {domain.min_distance}")
        return domain

    def unseen(self, z: Tensor) -> Tensor:
        """Indices of the atoms of ``z`` whose element is not in :attr:`elements` (a LongTensor)."""
        known = torch.as_tensor(self.elements, dtype=torch.long, device=z.device)
        return (~torch.isin(z.long(), known)).nonzero().flatten()

    def describe(self) -> str:
        """``"H, C, O"``: the training elements by symbol."""
        from ase.data import chemical_symbols

        return ", ".join(chemical_symbols[z] if z < len(chemical_symbols) else str(z) for z in self.elements)


def check_elements(
    domain: Optional[TrainingDomain],
    z: Tensor,
    policy: str = "warn",
    where: str = "",
    ptr: Optional[Sequence[int]] = None,
) -> List[int]:
    """Compare the elements of ``z`` with ``domain``'s; return the indices of the atoms outside it.

    ``policy`` (:data:`UNSEEN_ELEMENT_POLICIES`): ``"warn"`` issues one :class:`UnseenElementWarning`,
    ``"error"`` raises :class:`UnseenElementError`, ``"ignore"`` says nothing. The message names the first
    such atom (index and element), how many there are and the training elements. ``ptr`` (optional, the
    first atom of each structure and the total, as PyG's ``batch.ptr``) makes it name the structure
    and the atom's index within it. ``where`` starts the message (e.g. a file name). A ``None`` domain (a
    model file written before domains were recorded) checks nothing.
    """
    if policy not in UNSEEN_ELEMENT_POLICIES:
        raise ValueError(f"unseen_elements must be one of {UNSEEN_ELEMENT_POLICIES}, got {policy!r}")
    if domain is None or policy == "ignore" or z.numel() == 0:
        return []
    outside = domain.unseen(z).tolist()
    if not outside:
        return outside
    first = int(outside[0])
    at = f"atom {first}"
    if ptr is not None:
        structure = int(torch.searchsorted(torch.as_tensor(list(ptr)), first, right=True)) - 1
        at = f"structure {structure}, atom {first - int(ptr[structure])}"
    others = sorted({int(v) for v in z[outside].tolist()})
    message = (
        f"{where + ': ' if where else ''}{at} is {element_name(int(z[first]))}, an element this model never saw in "
        f"training (it was trained on {domain.describe()}): its energy and forces are an extrapolation. "
        f"{len(outside)} of {z.numel()} atoms hold elements outside the training set "
        f"({', '.join(element_name(e) for e in others)})"
    )
    if policy == "error":
        raise UnseenElementError(message)
    warnings.warn(message + "; pass unseen_elements='error' to refuse them", UnseenElementWarning, stacklevel=2)
    return outside
