"""Units of a model's numbers, read by name through :mod:`ase.units`.

A model file records its units as names (``{"energy": "kcal/mol", "length": "Angstrom"}``); a name is
a product/quotient of :mod:`ase.units` symbols, e.g. ``"kcal/mol"`` is ``ase.units.kcal /
ase.units.mol`` eV. ASE's internal units are eV and Angstrom, so the value of such a name *is* the
factor that turns a number in that unit into eV (energies) or Angstrom (lengths).

The data sets' conversion factors (:data:`HARTREE_TO_EV`, :data:`EV_TO_KCAL_PER_MOL`,
:data:`HARTREE_TO_KCAL_PER_MOL`) come from :mod:`ase.units` too (CODATA values as ASE ships them):
multiply a value in the first unit by the factor to get it in the second.
"""

from __future__ import annotations

import math
import re
from typing import Any, Dict, Mapping, Optional

from ase import units as _ase_units
from torch import nn

#: 1 Hartree in eV (about 27.2114).
HARTREE_TO_EV: float = float(_ase_units.Hartree)
#: 1 eV in kcal/mol (about 23.0605).
EV_TO_KCAL_PER_MOL: float = float(1.0 / (_ase_units.kcal / _ase_units.mol))
#: 1 Hartree in kcal/mol (about 627.509).
HARTREE_TO_KCAL_PER_MOL: float = HARTREE_TO_EV * EV_TO_KCAL_PER_MOL

#: What 0.2 assumed for a model without units (the benchmark scripts' kcal/mol and Angstrom). Since
#: 0.3 nothing assumes it: a model's units are recorded or given (:func:`model_units`).
DEFAULT_UNITS: Dict[str, str] = {"energy": "kcal/mol", "length": "Angstrom"}

#: How to say which units a model predicts in (the end of every "units unknown" error).
HOW_TO_SET_UNITS = (
    "set model.units = {'energy': <the unit of its training energies, e.g. 'kcal/mol' or 'eV'>, "
    "'length': 'Angstrom'}, or train it with pyg_schnet.train.Trainer(..., units=...) or on a data set "
    "that declares its unit"
)

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


def check_units(units: Any, where: str = "units") -> Dict[str, str]:
    """``units`` as a plain dict ``{"energy": str, "length": "Angstrom"}``, or :class:`ValueError`."""
    if not isinstance(units, Mapping) or not isinstance(units.get("energy"), str) or not units["energy"]:
        raise ValueError(f"{where} must be a dict with an 'energy' unit name (e.g. 'kcal/mol', 'eV'), got {units!r}")
    if units.get("length", "Angstrom") != "Angstrom":
        raise ValueError(f"{where}: SchNet positions are in Angstrom, got length unit {units.get('length')!r}")
    return {"energy": str(units["energy"]), "length": "Angstrom"}


def model_units(model: nn.Module, hint: str = "") -> Dict[str, str]:
    """The units of ``model``, its ``units`` attribute; :class:`ValueError` when it has none (a model
    whose energies are in an unknown unit is never saved or converted on a guess). ``hint`` says how
    the caller's user gives the unit (default: :data:`HOW_TO_SET_UNITS`)."""
    units = getattr(model, "units", None)
    if units is None:
        if hint:
            raise ValueError(f"the model's units are unknown (a model.pt of format /1 records none): {hint}")
        raise ValueError(f"the model's units are unknown: {HOW_TO_SET_UNITS}")
    return check_units(units, "model.units")


def same_unit(a: str, b: str) -> bool:
    """Whether two unit names are the same unit (``"kcal/mol"`` and ``"kcal / mol"``): equal values in
    ASE's units (:func:`unit_value`, to 1e-12 relative)."""
    return math.isclose(unit_value(a), unit_value(b), rel_tol=1e-12)


def resolve_units(
    model: nn.Module, energy_unit: Optional[str] = None, hint: str = "", option: str = "energy_unit"
) -> Dict[str, str]:
    """The units of ``model`` (:func:`model_units`, whose error ends with ``hint``); ``energy_unit`` says
    the energy unit of a model that records none (a model.pt of format /1), and otherwise must be the
    recorded one (spelled any way, :func:`same_unit`): a different unit never overrides what the model
    file records (its energies would come out scaled by the ratio). Both names are checked with
    :func:`unit_value`. ``option`` names ``energy_unit`` as the caller's user gives it (``"--energy-unit"``).

    Raises:
        ValueError: an unknown unit name, no unit from either side, or ``energy_unit`` contradicting the
            recorded unit (naming both).
    """
    if energy_unit is None:
        units = dict(model_units(model, hint))
    elif getattr(model, "units", None) is not None:
        units = dict(model_units(model))
        unit_value(energy_unit)
        if not same_unit(energy_unit, units["energy"]):
            raise ValueError(
                f"{option} {energy_unit!r} contradicts the energy unit the model records, {units['energy']!r} "
                f"(1 {units['energy']} = {unit_value(units['energy']) / unit_value(energy_unit):.6g} {energy_unit}): "
                f"a given unit never overrides the recorded one. Leave {option} out (the recorded unit is used "
                "and results are converted from it)"
            )
    else:
        units = {"energy": energy_unit, "length": "Angstrom"}
    unit_value(units["energy"])
    unit_value(units["length"])
    return units
