"""Molecular dynamics with ASE's integrators: NVE (velocity Verlet) or NVT (Langevin).

:func:`run_md` integrates ``atoms`` (with a calculator attached, e.g.
:class:`pyg_schnet.simulation.ase.SchNetCalculator`) for ``steps`` steps of ``dt_fs`` femtoseconds from
Maxwell-Boltzmann velocities, records energies every ``log_interval`` steps, writes an ASE trajectory
every ``traj_interval`` steps, watches bond stability (:class:`~pyg_schnet.simulation.md.analysis.StabilityMonitor`)
and accumulates the distance distribution h(r). Files appear atomically at the end (temporary file,
then rename): ``trajectory`` (ASE's ``traj`` format), ``energies.csv``, ``energies.png``, and
``hr.png`` when reference data are given. Ctrl-C ends the run early and still writes them.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
from ase import Atoms, units

from pyg_schnet.io.files import atomic_path, atomic_write_text
from pyg_schnet.simulation.md.analysis import DistanceHistogram, StabilityMonitor, energy_drift, hr_mae
from pyg_schnet.simulation.md.plots import plot_energies, plot_hr
from pyg_schnet.simulation.md.result import CSV_COLUMNS, MDResult  # noqa: F401  (CSV_COLUMNS: 0.2 name)

ENSEMBLES = ("nve", "langevin")
#: Columns of ``energies.csv``.


def initial_velocities(atoms: Atoms, temperature_K: float, seed: int) -> None:
    """Maxwell-Boltzmann momenta at ``temperature_K`` (seeded), then zero total momentum
    (the temperature is restored after removing the centre-of-mass motion)."""
    from ase.md import velocitydistribution as vd

    if temperature_K < 0 or not math.isfinite(temperature_K):
        raise ValueError(f"temperature must be a finite number >= 0 K, got {temperature_K}")
    rng = np.random.default_rng(seed)
    if hasattr(vd, "thermalize_momenta"):  # ASE >= 3.29 (MaxwellBoltzmannDistribution is deprecated there)
        vd.thermalize_momenta(atoms, temperature_K, rng=rng)
    else:
        vd.MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)
    if len(atoms) > 1:
        vd.Stationary(atoms, preserve_temperature=True)


def make_integrator(atoms: Atoms, ensemble: str, dt_fs: float, temperature_K: float, friction_per_fs: float, seed: int):
    """ASE's ``VelocityVerlet`` (``'nve'``) or ``Langevin`` (``'langevin'``, friction in 1/fs; the
    centre of mass is fixed with an :class:`ase.constraints.FixCom` constraint added to ``atoms``)."""
    if ensemble == "nve":
        from ase.md.verlet import VelocityVerlet

        return VelocityVerlet(atoms, timestep=dt_fs * units.fs)
    if ensemble == "langevin":
        from ase.md.langevin import Langevin

        if not friction_per_fs > 0:
            raise ValueError(f"the Langevin friction must be positive (1/fs), got {friction_per_fs}")
        from ase.constraints import FixCom

        # ASE >= 3.28: fixcm=True does not sample NVT exactly (worst for small molecules); it recommends
        # fixcm=False with a FixCom constraint, which also keeps the centre of mass at rest.
        if not any(isinstance(c, FixCom) for c in atoms.constraints):
            atoms.set_constraint([*atoms.constraints, FixCom()])
        return Langevin(
            atoms,
            timestep=dt_fs * units.fs,
            temperature_K=temperature_K,
            fixcm=False,
            friction=friction_per_fs / units.fs,
            rng=np.random.default_rng(seed + 1),
        )
    raise ValueError(f"ensemble must be one of {ENSEMBLES}, got {ensemble!r}")


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
    max_minutes: Optional[float] = None,
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
        max_minutes: stop (and write everything) when the run has taken this much wall time.

    ``result.stop_reason`` says why the run ended: ``'completed'``, ``'unstable'``, ``'time limit'``,
    ``'interrupted'`` (Ctrl-C) or ``'non-finite energy'``.
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
        bar = stack.enter_context(
            tqdm(total=steps, unit="step", disable=not show, desc=f"MD {ensemble}", dynamic_ncols=True)
        )
        step, reason = 0, "completed"
        started = time.perf_counter()
        deadline = math.inf if max_minutes is None else started + 60.0 * max_minutes
        try:
            go_on = record(0)
            while go_on and step < steps:
                if time.perf_counter() > deadline:
                    reason = "time limit"
                    break
                n = min(log_interval, steps - step)
                dyn.run(n)
                step += n
                bar.update(n)
                go_on = record(step)
                if not math.isfinite(rows[-1][1]):
                    reason, go_on = "non-finite energy", False
            if not go_on and reason == "completed":
                reason = "unstable"
        except KeyboardInterrupt:
            reason = "interrupted"
        wall = time.perf_counter() - started

    data = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    result = MDResult(
        ensemble,
        dt_fs,
        step,
        len(atoms),
        data[:, 0],
        data[:, 1],
        data[:, 2],
        data[:, 3],
        wall,
        stop_reason=reason,
        instability=monitor.instability if monitor else None,
        target_temperature_K=temperature_K if ensemble == "langevin" else None,
    )
    if ensemble == "nve" and len(rows) >= 2 and np.isfinite(result.total_eV).all():
        result.drift = energy_drift(result.time_fs, result.total_eV, len(atoms))
    if histogram is not None and reference_histogram is not None and histogram.frames:
        result.hr_mae = hr_mae(histogram, reference_histogram)
    if out is not None:
        if traj_interval:
            result.files["trajectory"] = str(Path(out) / "trajectory")
        write_outputs(result, Path(out), histogram, reference_histogram)
    return result


def write_outputs(
    result: MDResult,
    out: Path,
    histogram: Optional[DistanceHistogram],
    reference_histogram: Optional[DistanceHistogram],
) -> None:
    """``energies.csv`` and the plots, each written atomically (the trajectory is written by
    :func:`run_md` as it goes, under a temporary name until the run ends)."""
    out.mkdir(parents=True, exist_ok=True)
    result.files["energies"] = str(atomic_write_text(out / "energies.csv", result.csv_text()))
    try:
        result.files["energies_plot"] = str(plot_energies(result, out / "energies.png"))
        if histogram is not None and reference_histogram is not None and histogram.frames:
            result.files["hr_plot"] = str(plot_hr(histogram, reference_histogram, out / "hr.png", mae=result.hr_mae))
    except ImportError as exc:  # matplotlib is optional
        print(f"warning: no plots ({exc}); install matplotlib", file=sys.stderr)
