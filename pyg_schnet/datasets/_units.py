"""Energy unit factors, all taken from :mod:`ase.units` (CODATA values as ASE ships them).

Multiply a value in the first unit by the factor to get it in the second:
``E_kcal_per_mol = E_hartree * HARTREE_TO_KCAL_PER_MOL``.
"""
from __future__ import annotations

from ase import units as _ase_units

#: 1 Hartree in eV (about 27.2114).
HARTREE_TO_EV: float = float(_ase_units.Hartree)
#: 1 eV in kcal/mol (about 23.0605).
EV_TO_KCAL_PER_MOL: float = float(1.0 / (_ase_units.kcal / _ase_units.mol))
#: 1 Hartree in kcal/mol (about 627.509).
HARTREE_TO_KCAL_PER_MOL: float = HARTREE_TO_EV * EV_TO_KCAL_PER_MOL
