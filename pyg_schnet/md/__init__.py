"""Molecular dynamics with a trained SchNet through ASE: :func:`run_md`, analysis, ``python -m pyg_schnet.md``.

* :mod:`.simulate` -- :func:`run_md`: NVE (velocity Verlet) or NVT (Langevin) from Maxwell-Boltzmann
  velocities, energies, trajectory, stability monitoring;
* :mod:`.analysis` -- energy drift and fluctuation, bonded pairs and their ranges, the stability
  criterion of Fu et al. (2023), the distance distribution h(r) and its MAE;
* :mod:`.plots` -- energies over time, h(r) against reference data;
* :mod:`.cli` -- the command line (``python -m pyg_schnet.md``, ``pyg-schnet md``).
"""
from .analysis import (BOND_TOLERANCE, DistanceHistogram, EnergyDrift, Instability, StabilityMonitor, bond_lengths,
                       bond_ranges, bonded_pairs, energy_drift, hr_mae, reference_frames)
from .simulate import CSV_COLUMNS, ENSEMBLES, MDResult, initial_velocities, make_integrator, run_md

__all__ = [
    "run_md", "MDResult", "initial_velocities", "make_integrator", "ENSEMBLES", "CSV_COLUMNS",
    "energy_drift", "EnergyDrift", "bonded_pairs", "bond_lengths", "bond_ranges", "StabilityMonitor",
    "Instability", "BOND_TOLERANCE", "DistanceHistogram", "hr_mae", "reference_frames",
]
