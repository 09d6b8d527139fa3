"""Transforms that put energies and forces of every data set into the units a model trains in."""

from __future__ import annotations

import copy
import math
from typing import Optional, Union

from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from pyg_schnet.io.units import EV_TO_KCAL_PER_MOL, HARTREE_TO_EV, HARTREE_TO_KCAL_PER_MOL

__all__ = ["ScaleUnits", "EV_TO_KCAL_PER_MOL", "HARTREE_TO_EV", "HARTREE_TO_KCAL_PER_MOL"]


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

    The input ``Data`` is never modified; a shallow copy with new tensors is returned. Energies
    keep their dtype (``float64`` in our data sets), forces keep theirs.
    """

    def __init__(
        self,
        energy_factor: float,
        force_factor: Optional[float] = None,
        target: Union[str, int, None] = None,
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
        return (
            f"{self.__class__.__name__}(energy_factor={self.energy_factor!r}, "
            f"force_factor={self.force_factor!r}{target})"
        )
