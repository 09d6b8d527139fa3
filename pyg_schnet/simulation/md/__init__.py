"""Molecular dynamics with a trained SchNet through ASE: :func:`run_md`, analysis, ``pyg-schnet md``.

* :mod:`.simulate` -- :func:`run_md`: NVE (velocity Verlet) or NVT (Langevin) from Maxwell-Boltzmann
  velocities, energies, trajectory, stability monitoring;
* :mod:`.analysis` -- energy drift and fluctuation, bonded pairs and their ranges, the stability
  criterion of Fu et al. (2023), the distance distribution h(r) and its MAE;
* :mod:`.result` -- :class:`MDResult`, :class:`BlowUp` and the rows of ``energies.csv``;
* :mod:`.run_files` -- ``trajectory`` and ``energies.csv`` written (and flushed) as the run goes;
* :mod:`.plots` -- energies over time, h(r) against reference data.

The command line (``pyg-schnet md``) is :mod:`pyg_schnet.experiments.md_command`.
"""

from pyg_schnet.simulation.md.analysis import (
    BOND_TOLERANCE,
    DistanceHistogram,
    EnergyDrift,
    Instability,
    StabilityMonitor,
    bond_lengths,
    bond_ranges,
    bonded_pairs,
    energy_drift,
    hr_mae,
    reference_frames,
)
from pyg_schnet.simulation.md.result import CSV_COLUMNS, BlowUp, MDResult
from pyg_schnet.simulation.md.simulate import ENSEMBLES, initial_velocities, make_integrator, run_md

__all__ = [
    "run_md",
    "MDResult",
    "BlowUp",
    "initial_velocities",
    "make_integrator",
    "ENSEMBLES",
    "CSV_COLUMNS",
    "energy_drift",
    "EnergyDrift",
    "bonded_pairs",
    "bond_lengths",
    "bond_ranges",
    "StabilityMonitor",
    "Instability",
    "BOND_TOLERANCE",
    "DistanceHistogram",
    "hr_mae",
    "reference_frames",
]
