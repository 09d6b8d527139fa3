"""What an MD run measured (:class:`MDResult`, :class:`BlowUp`) and the rows of its ``energies.csv``."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np

from pyg_schnet.simulation.md.analysis import EnergyDrift, Instability

#: Columns of ``energies.csv``, in order.
CSV_COLUMNS = ("time_fs", "potential_eV", "kinetic_eV", "total_eV", "temperature_K")


def csv_header() -> str:
    """The first line of ``energies.csv``."""
    return ",".join(CSV_COLUMNS) + "\n"


def csv_row(time_fs: float, potential_eV: float, kinetic_eV: float, temperature_K: float) -> str:
    """One line of ``energies.csv`` (the total is potential + kinetic)."""
    total = potential_eV + kinetic_eV
    return f"{time_fs:.6g},{potential_eV:.10f},{kinetic_eV:.10f},{total:.10f},{temperature_K:.6f}\n"


@dataclass(frozen=True)
class BlowUp:
    """The step at which a run diverged: an atom beyond ``MAX_ABS_POSITION`` (10,000 Angstrom) or a
    non-finite position or energy (``detail`` says which)."""

    step: int
    time_fs: float
    detail: str

    def summary(self) -> str:
        return (
            f"the simulation blew up at step {self.step} ({self.time_fs / 1000:g} ps): {self.detail}. The start "
            "structure was accepted, the integration diverged: try a shorter time step or a lower temperature; "
            "the model may also be unreliable where the run went"
        )


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
    #: where the run diverged, when ``stop_reason`` is ``'blew up'``
    blow_up: Optional[BlowUp] = None

    @property
    def interrupted(self) -> bool:
        """Ended early by Ctrl-C (SIGINT) or SIGTERM."""
        return self.stop_reason in ("interrupted", "terminated")

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
        buf.write(csv_header())
        for row in zip(self.time_fs, self.potential_eV, self.kinetic_eV, self.temperature_K):
            buf.write(csv_row(*(float(x) for x in row)))
        return buf.getvalue()
