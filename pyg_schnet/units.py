"""Units of a model's numbers, read by name through :mod:`ase.units`.

A model file records its units as names (``{"energy": "kcal/mol", "length": "Angstrom"}``); a name is
a product/quotient of :mod:`ase.units` symbols, e.g. ``"kcal/mol"`` is ``ase.units.kcal /
ase.units.mol`` eV. ASE's internal units are eV and Angstrom, so the value of such a name *is* the
factor that turns a number in that unit into eV (energies) or Angstrom (lengths).
"""
from __future__ import annotations

import re
from typing import Dict, Mapping, Optional

from ase import units as _ase_units

#: Units of every model written before files recorded theirs, and of every benchmark script.
DEFAULT_UNITS: Dict[str, str] = {"energy": "kcal/mol", "length": "Angstrom"}

_TOKEN = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


def unit_value(name: str) -> float:
    """The value of a unit name in ASE's units (eV, Angstrom, ...): ``"kcal/mol"`` -> 0.0433641...

    Accepts symbols of :mod:`ase.units` joined by ``*`` and ``/`` (``"kJ/mol"``, ``"Hartree"``,
    ``"eV"``, ``"Bohr"``). Raises :class:`ValueError` naming the unknown symbol.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a unit must be a non-empty name such as 'kcal/mol' or 'eV', got {name!r}")
    value = 1.0
    op = "*"
    for part in re.split(r"\s*([*/])\s*", name.strip()):
        if part in ("*", "/"):
            op = part
            continue
        symbol = getattr(_ase_units, part, None) if _TOKEN.fullmatch(part) else None
        if not isinstance(symbol, (int, float)):
            raise ValueError(
                f"unknown unit {name!r}: {part!r} is not a symbol of ase.units "
                "(examples: 'kcal/mol', 'kJ/mol', 'eV', 'Hartree', 'Angstrom', 'Bohr')"
            )
        value = value * float(symbol) if op == "*" else value / float(symbol)
    return value


def model_units(model: object, energy_unit: Optional[str] = None) -> Dict[str, str]:
    """The units of ``model`` (its ``units`` attribute, else :data:`DEFAULT_UNITS`), with the energy
    unit replaced by ``energy_unit`` when given. Both names are checked with :func:`unit_value`."""
    recorded: Mapping[str, str] = getattr(model, "units", None) or DEFAULT_UNITS
    units = {**DEFAULT_UNITS, **dict(recorded)}
    if energy_unit is not None:
        units["energy"] = energy_unit
    unit_value(units["energy"])
    unit_value(units["length"])
    return units
