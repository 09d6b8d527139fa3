"""Molecular dynamics with ASE's integrators: NVE (velocity Verlet) or NVT (Langevin).

:func:`run_md` integrates ``atoms`` (with a calculator attached, e.g.
:class:`pyg_schnet.ase.SchNetCalculator`) for ``steps`` steps of ``dt_fs`` femtoseconds from
Maxwell-Boltzmann velocities, records energies every ``log_interval`` steps, writes an ASE trajectory
every ``traj_interval`` steps, watches bond stability (:class:`~pyg_schnet.md.analysis.StabilityMonitor`)
and accumulates the distance distribution h(r). Files appear atomically at the end (temporary file,
then rename): ``trajectory`` (ASE's ``traj`` format), ``energies.csv``, ``energies.png``, and
``hr.png`` when reference data are given. Ctrl-C ends the run early and still writes them.
"""
from __future__ import annotations

import contextlib
import io
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
from ase import Atoms, units

from .._atomic import atomic_path, atomic_write_text
from .analysis import DistanceHistogram, EnergyDrift, Instability, StabilityMonitor, energy_drift

ENSEMBLES = ("nve", "langevin")
#: Columns of ``energies.csv``.
CSV_COLUMNS = ("time_fs", "potential_eV", "kinetic_eV", "total_eV", "temperature_K")


def initial_velocities(atoms: Atoms, temperature_K: float, seed: int) -> None:
    """Maxwell-Boltzmann momenta at ``temperature_K`` (seeded), then zero total momentum
    (the temperature is restored after removing the centre-of-mass motion)."""
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    if temperature_K < 0 or not math.isfinite(temperature_K):
        raise ValueError(f"temperature must be a finite number >= 0 K, got {temperature_K}")
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=np.random.default_rng(seed))
    if len(atoms) > 1:
        Stationary(atoms, preserve_temperature=True)


def make_integrator(atoms: Atoms, ensemble: str, dt_fs: float, temperature_K: float,
                    friction_per_fs: float, seed: int):
    """ASE's ``VelocityVerlet`` (``'nve'``) or ``Langevin`` (``'langevin'``, friction in 1/fs)."""
    if ensemble == "nve":
        from ase.md.verlet import VelocityVerlet

        return VelocityVerlet(atoms, timestep=dt_fs * units.fs)
    if ensemble == "langevin":
        from ase.md.langevin import Langevin

        if not friction_per_fs > 0:
            raise ValueError(f"the Langevin friction must be positive (1/fs), got {friction_per_fs}")
        return Langevin(atoms, timestep=dt_fs * units.fs, temperature_K=temperature_K,
                        friction=friction_per_fs / units.fs, rng=np.random.default_rng(seed + 1))
    raise ValueError(f"ensemble must be one of {ENSEMBLES}, got {ensemble!r}")


@dataclass
class MDResult:
    """What :func:`run_md` measured. Energies in eV, times in fs, one row per logged step."""

    ensemble: str
    dt_fs: float
    steps_done: int
    num_atoms: int
    time_fs: np.ndarray
    potential_eV: np.ndarray
    kinetic_eV: np.ndarray
    temperature_K: np.ndarray
    wall_s: float
    interrupted: bool = False
    instability: Optional[Instability] = None
    drift: Optional[EnergyDrift] = None
    hr_mae: Optional[float] = None
    files: Dict[str, str] = field(default_factory=dict)

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


def run_md(
    atoms: Atoms,
    steps: int,
    dt_fs: float,
    ensemble: str = "nve",
    temperature_K: float = 300.0,
    friction_per_fs: float = 0.01,
    seed: int = 0,
    out: Optional[Path] = None,
    log_interval: int = 10,
    traj_interval: int = 100,
    monitor: Optional[StabilityMonitor] = None,
    stop_when_unstable: bool = True,
    histogram: Optional[DistanceHistogram] = None,
    reference_histogram: Optional[DistanceHistogram] = None,
    progress: Optional[bool] = None,
) -> MDResult:
    """Runs MD on ``atoms`` (calculator attached) and returns an :class:`MDResult`.

    Args:
        steps: integration steps; ``dt_fs`` the time step in fs.
        ensemble: ``'nve'`` or ``'langevin'`` at ``temperature_K`` with ``friction_per_fs``.
        seed: seeds the initial velocities and the Langevin noise.
        out: folder for ``trajectory``, ``energies.csv``, ``energies.png`` (``None``: write nothing).
        log_interval: energies (and stability, h(r)) every this many steps.
        traj_interval: a trajectory frame every this many steps (a multiple of ``log_interval``;
            ``0``: no trajectory).
        monitor: bond stability check (:class:`StabilityMonitor`); with ``stop_when_unstable`` the
            run ends at the first unstable frame.
        histogram, reference_histogram: h(r) of the run (filled here) and of the reference data;
            with both, ``result.hr_mae`` holds their integrated absolute difference and ``hr.png``
            is drawn.
        progress: a tqdm bar (``None``: when stderr is a terminal).
    """
    from tqdm.auto import tqdm

    if atoms.calc is None:
        raise ValueError("atoms have no calculator: attach one, e.g. atoms.calc = SchNetCalculator(model)")
    if steps < 1 or dt_fs <= 0 or not math.isfinite(dt_fs):
        raise ValueError(f"need steps >= 1 and a positive time step, got steps={steps}, dt={dt_fs} fs")
    if log_interval < 1:
        raise ValueError(f"log_interval must be >= 1, got {log_interval}")
    if traj_interval < 0 or (traj_interval and traj_interval % log_interval):
        raise ValueError(f"traj_interval ({traj_interval}) must be 0 or a multiple of log_interval ({log_interval})")
    initial_velocities(atoms, temperature_K, seed)
    dyn = make_integrator(atoms, ensemble, dt_fs, temperature_K, friction_per_fs, seed)

    rows: List[tuple] = []
    with contextlib.ExitStack() as stack:
        traj = None
        if out is not None and traj_interval:
            from ase.io.trajectory import Trajectory

            Path(out).mkdir(parents=True, exist_ok=True)
            tmp = stack.enter_context(atomic_path(Path(out) / "trajectory"))
            traj = stack.enter_context(Trajectory(tmp, "w"))

        def record(step: int) -> bool:
            t = step * dt_fs
            epot = atoms.get_potential_energy()
            rows.append((t, epot, atoms.get_kinetic_energy(), atoms.get_temperature()))
            if traj is not None and step % traj_interval == 0:
                traj.write(atoms)  # positions, momenta, energy and forces of this step
            if histogram is not None:
                histogram.add(atoms.positions)
            if monitor is not None:
                return monitor.check(t, atoms.positions) or not stop_when_unstable
            return True

        show = sys.stderr.isatty() if progress is None else progress
        bar = stack.enter_context(tqdm(total=steps, unit="step", disable=not show, desc=f"MD {ensemble}",
                                       dynamic_ncols=True))
        step, interrupted = 0, False
        started = time.perf_counter()
        try:
            go_on = record(0)
            while go_on and step < steps:
                n = min(log_interval, steps - step)
                dyn.run(n)
                step += n
                bar.update(n)
                go_on = record(step) and math.isfinite(rows[-1][1])
        except KeyboardInterrupt:
            interrupted = True
        wall = time.perf_counter() - started

    data = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    result = MDResult(ensemble, dt_fs, step, len(atoms), data[:, 0], data[:, 1], data[:, 2], data[:, 3], wall,
                      interrupted=interrupted, instability=monitor.instability if monitor else None)
    if ensemble == "nve" and len(rows) >= 2 and np.isfinite(result.total_eV).all():
        result.drift = energy_drift(result.time_fs, result.total_eV, len(atoms))
    if histogram is not None and reference_histogram is not None and histogram.frames:
        from .analysis import hr_mae

        result.hr_mae = hr_mae(histogram, reference_histogram)
    if out is not None:
        if traj_interval:
            result.files["trajectory"] = str(Path(out) / "trajectory")
        write_outputs(result, Path(out), histogram, reference_histogram)
    return result


def write_outputs(result: MDResult, out: Path, histogram: Optional[DistanceHistogram],
                  reference_histogram: Optional[DistanceHistogram]) -> None:
    """``energies.csv`` and the plots, each written atomically (the trajectory is written by
    :func:`run_md` as it goes, under a temporary name until the run ends)."""
    from .plots import plot_energies, plot_hr

    out.mkdir(parents=True, exist_ok=True)
    result.files["energies"] = str(atomic_write_text(out / "energies.csv", result.csv_text()))
    try:
        result.files["energies_plot"] = str(plot_energies(result, out / "energies.png"))
        if histogram is not None and reference_histogram is not None and histogram.frames:
            result.files["hr_plot"] = str(plot_hr(histogram, reference_histogram, out / "hr.png",
                                                  mae=result.hr_mae))
    except ImportError as exc:  # matplotlib is optional
        print(f"warning: no plots ({exc}); install matplotlib", file=sys.stderr)
