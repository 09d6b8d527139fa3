"""What an MD run measured (:class:`MDResult`) and the columns of its ``energies.csv``."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np

from pyg_schnet.simulation.md.analysis import EnergyDrift, Instability

#: Columns of ``energies.csv``, in order.
CSV_COLUMNS = ("time_fs", "potential_eV", "kinetic_eV", "total_eV", "temperature_K")


@dataclass
class MDResult:
    """What :func:`run_md` measured. Energies in eV, times in fs, one row per logged step.

    ``target_temperature_K`` is the thermostat's temperature (K) of a Langevin run, ``None`` for NVE.
    """

    ensemble: str
    dt_fs: float
    steps_done: int
    num_atoms: int
    time_fs: np.ndarray
    potential_eV: np.ndarray
    kinetic_eV: np.ndarray
    temperature_K: np.ndarray
    wall_s: float
    stop_reason: str = "completed"
    instability: Optional[Instability] = None
    drift: Optional[EnergyDrift] = None
    hr_mae: Optional[float] = None
    files: Dict[str, str] = field(default_factory=dict)
    target_temperature_K: Optional[float] = None

    @property
    def interrupted(self) -> bool:
        return self.stop_reason == "interrupted"

    @property
    def total_eV(self) -> np.ndarray:
        return self.potential_eV + self.kinetic_eV

    @property
    def ms_per_step(self) -> float:
        return 1e3 * self.wall_s / max(self.steps_done, 1)

    @property
    def simulated_ps(self) -> float:
        return self.steps_done * self.dt_fs / 1000

    @property
    def stable_ps(self) -> float:
        """Time until the first unstable frame, or the whole run when it stayed stable."""
        return self.instability.time_fs / 1000 if self.instability else self.simulated_ps

    def csv_text(self) -> str:
        buf = io.StringIO()
        buf.write(",".join(CSV_COLUMNS) + "\n")
        for row in zip(self.time_fs, self.potential_eV, self.kinetic_eV, self.total_eV, self.temperature_K):
            buf.write(f"{row[0]:.6g},{row[1]:.10f},{row[2]:.10f},{row[3]:.10f},{row[4]:.6f}\n")
        return buf.getvalue()
