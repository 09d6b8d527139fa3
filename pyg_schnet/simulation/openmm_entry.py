"""The factory OpenMM-ML finds through the entry point ``pyg-schnet`` of ``openmmml.potentials``.

OpenMM-ML loads and instantiates every registered factory at the end of ``import openmmml``, so this
module imports nothing but the standard library: ``import openmmml`` with pyg-schnet installed costs
no torch, PyG or model import. The potential itself (:mod:`pyg_schnet.simulation.openmm`) is imported
when ``MLPotential("pyg-schnet", ...)`` creates it.
"""

from __future__ import annotations

from typing import Any


class SchNetPotentialImplFactory:
    """Creates :class:`~pyg_schnet.simulation.openmm.SchNetPotentialImpl` for
    ``MLPotential("pyg-schnet", ...)`` (OpenMM-ML's MLPotentialImplFactory interface: ``createImpl``).

    Keywords of ``MLPotential("pyg-schnet", ...)``:

    - ``modelPath``: a ``model.pt`` (:func:`pyg_schnet.load_model`), or ``model``: a :class:`~pyg_schnet.SchNet`
      (exactly one of the two).
    - ``energyUnit``: the energy unit of a model that records none (a ``model.pt`` of format /1, e.g.
      ``"kcal/mol"``); for a model that records its unit it may only repeat it
      (:func:`pyg_schnet.io.units.resolve_units`), never rescale it.
    """

    def createImpl(self, name: str, **args: Any) -> Any:
        from pyg_schnet.simulation.openmm import create_impl

        return create_impl(name, **args)
