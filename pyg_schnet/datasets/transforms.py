"""Transforms that put energies and forces of every data set into the units a model trains in."""

from __future__ import annotations

import copy
import math
from typing import List, Optional, Union

from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from pyg_schnet.io.units import EV_TO_KCAL_PER_MOL, HARTREE_TO_EV, HARTREE_TO_KCAL_PER_MOL, unit_value

__all__ = ["ScaleUnits", "energy_unit_of", "EV_TO_KCAL_PER_MOL", "HARTREE_TO_EV", "HARTREE_TO_KCAL_PER_MOL"]

#: Unit names :func:`energy_unit_of` recognises when it derives a unit from a conversion factor.
KNOWN_ENERGY_UNITS = ("kcal/mol", "eV", "Hartree", "kJ/mol")


class ScaleUnits(BaseTransform):
    r"""Write ``data.energy`` (shape ``[1]``) and ``data.force`` in new units.

    .. math::
        E' = c_E\, E, \qquad \mathbf{F}' = c_F\, \mathbf{F}

    Lengths stay in Angstrom, so a force (energy per Angstrom) converts with the energy factor:
    ``force_factor=None`` means :math:`c_F = c_E`. Pass it explicitly only for data whose forces
    are stored in a different energy unit than the energies.

    Args:
        energy_factor: :math:`c_E`, e.g. :data:`EV_TO_KCAL_PER_MOL` for ISO17 or ``1.0`` for MD17.
        force_factor: :math:`c_F`; defaults to ``energy_factor``.
        target: a QM9 column (name such as ``"U0"`` or index ``0 .. 14``). When given, the energy
            is read from ``data.y[:, target]`` (for QM9, whose ``Data`` has no ``energy``), e.g.
            ``ScaleUnits(HARTREE_TO_KCAL_PER_MOL, target="U0")``.
        unit: the energy unit of the output (a name of :mod:`ase.units`, e.g. ``"kcal/mol"``); when
            omitted, :func:`energy_unit_of` derives it from the data set's unit and the factor.

    The input ``Data`` is never modified; a shallow copy with new tensors is returned. Energies
    keep their dtype (``float64`` in our data sets), forces keep theirs.
    """

    def __init__(
        self,
        energy_factor: float,
        force_factor: Optional[float] = None,
        target: Union[str, int, None] = None,
        unit: Optional[str] = None,
    ) -> None:
        energy_factor = float(energy_factor)
        if not math.isfinite(energy_factor) or energy_factor == 0.0:
            raise ValueError(f"energy_factor must be finite and non-zero, got {energy_factor}")
        if force_factor is not None:
            force_factor = float(force_factor)
            if not math.isfinite(force_factor) or force_factor == 0.0:
                raise ValueError(f"force_factor must be finite and non-zero, got {force_factor}")
        self.energy_factor = energy_factor
        self.force_factor = energy_factor if force_factor is None else force_factor
        self.target = target
        if unit is not None:
            unit_value(unit)  # a name ase.units knows, or ValueError naming it
        self.unit = unit
        self.target_index: Optional[int] = None
        if target is not None:
            from pyg_schnet.datasets.qm9 import QM9

            self.target_index = QM9.target_index(target)

    def forward(self, data: Data) -> Data:
        out = copy.copy(data)
        if self.target_index is not None:
            y = getattr(data, "y", None)
            if y is None or y.dim() != 2 or y.size(-1) <= self.target_index:
                shape = None if y is None else tuple(y.shape)
                raise ValueError(
                    f"ScaleUnits(target={self.target!r}) needs data.y of shape [1, >{self.target_index}], got {shape}"
                )
            out.energy = y[:, self.target_index] * self.energy_factor
        else:
            energy = getattr(data, "energy", None)
            if energy is None:
                raise ValueError("ScaleUnits: data has no 'energy'; for QM9 pass target= (a column name or index)")
            out.energy = energy * self.energy_factor
        force = getattr(data, "force", None)
        if force is not None:
            out.force = force * self.force_factor
        return out

    def __repr__(self) -> str:
        target = "" if self.target is None else f", target={self.target!r}"
        target += "" if self.unit is None else f", unit={self.unit!r}"
        return (
            f"{self.__class__.__name__}(energy_factor={self.energy_factor!r}, "
            f"force_factor={self.force_factor!r}{target})"
        )


def _transforms(transform: object) -> List[object]:
    """``transform`` and, for a :class:`~torch_geometric.transforms.Compose`, its parts in order."""
    parts = getattr(transform, "transforms", None)
    if isinstance(parts, (list, tuple)):
        return [leaf for part in parts for leaf in _transforms(part)]
    return [transform] if transform is not None else []


def energy_unit_of(dataset: object) -> Optional[str]:
    """The energy unit of the examples ``dataset`` yields, or ``None`` when it does not say.

    A data set of this package declares its file's unit (``energy_unit``: ``"kcal/mol"`` for MD17,
    ``"eV"`` for ISO17, ``"Hartree"`` for QM9); a :class:`ScaleUnits` transform then gives its
    ``unit`` or, without one, the unit whose value (:func:`pyg_schnet.io.units.unit_value`) is the
    data set's divided by the factors (one of :data:`KNOWN_ENERGY_UNITS`). Subsets
    (:class:`torch.utils.data.Subset`) are looked through; a list of ``Data`` declares nothing.
    """
    base = dataset
    while hasattr(base, "dataset") and hasattr(base, "indices"):  # torch.utils.data.Subset
        base = base.dataset
    unit: Optional[str] = getattr(base, "energy_unit", "") or None
    for part in _transforms(getattr(base, "transform", None)):
        if not isinstance(part, ScaleUnits):
            continue
        if part.unit is not None:
            unit = part.unit
            continue
        if unit is None:
            return None
        value = unit_value(unit) / part.energy_factor
        matches = [name for name in KNOWN_ENERGY_UNITS if math.isclose(unit_value(name), value, rel_tol=1e-9)]
        unit = matches[0] if matches else None
    return unit
