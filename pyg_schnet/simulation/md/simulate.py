"""Molecular dynamics with ASE's integrators: NVE (velocity Verlet) or NVT (Langevin).

:func:`run_md` integrates ``atoms`` (with a calculator attached, e.g.
:class:`pyg_schnet.simulation.ase.SchNetCalculator`) for ``steps`` steps of ``dt_fs`` femtoseconds from
Maxwell-Boltzmann velocities, records energies every ``log_interval`` steps, writes an ASE trajectory
every ``traj_interval`` steps, watches bond stability (:class:`~pyg_schnet.simulation.md.analysis.StabilityMonitor`)
and accumulates the distance distribution h(r). ``trajectory`` (ASE's ``traj`` format) and
``energies.csv`` are written as the run goes, flushed after every frame and row, so they keep what
was simulated whatever ends the run (:mod:`.run_files`); ``energies.png`` and, with reference data,
``hr.png`` appear atomically at the end. Ctrl-C (SIGINT) and SIGTERM end the run after the step in
progress and still write everything; a run that diverges (atoms beyond 10,000 A, non-finite
energies) stops with ``'blew up'`` and the step.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import numpy as np
from ase import Atoms, units

from pyg_schnet.io.files import atomic_write_text, remove_stale_temporaries
from pyg_schnet.io.run_lock import RunLock
from pyg_schnet.simulation.md.analysis import DistanceHistogram, StabilityMonitor, energy_drift, hr_mae
from pyg_schnet.simulation.md.plots import plot_energies, plot_hr
from pyg_schnet.simulation.md.result import CSV_COLUMNS, BlowUp, MDResult  # noqa: F401  (CSV_COLUMNS: 0.2 name)
from pyg_schnet.simulation.md.run_files import RunFiles
from pyg_schnet.validation import MAX_ABS_POSITION, check_finite

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
    """ASE's ``VelocityVerlet`` (``'nve'``) or ``Langevin`` (``'langevin'``, friction in 1/fs).

    For Langevin the centre of mass is kept at rest by an :class:`ase.constraints.FixCom` constraint
    added to ``atoms`` *before* the caller's constraints, so those have the last word (atoms the caller
    fixed stay exactly where they are); with a :class:`ase.constraints.FixAtoms` the fixed atoms already
    hold the system in place and no ``FixCom`` is added (it would shift them). :func:`run_md` restores
    the caller's constraints when it ends."""
    if ensemble == "nve":
        from ase.md.verlet import VelocityVerlet

        return VelocityVerlet(atoms, timestep=dt_fs * units.fs)
    if ensemble == "langevin":
        from ase.md.langevin import Langevin

        if not friction_per_fs > 0 or not math.isfinite(friction_per_fs):
            raise ValueError(f"the Langevin friction must be positive (1/fs), got {friction_per_fs}")
        from ase.constraints import FixAtoms, FixCom

        # ASE >= 3.28: fixcm=True does not sample NVT exactly (worst for small molecules); it recommends
        # fixcm=False with a FixCom constraint, which also keeps the centre of mass at rest.
        constraints = list(atoms.constraints)
        if not any(isinstance(c, (FixCom, FixAtoms)) for c in constraints):
            atoms.set_constraint([FixCom(), *constraints])
        return Langevin(
            atoms,
            timestep=dt_fs * units.fs,
            temperature_K=temperature_K,
            fixcm=False,
            friction=friction_per_fs / units.fs,
            rng=np.random.default_rng(seed + 1),
        )
    raise ValueError(f"ensemble must be one of {ENSEMBLES}, got {ensemble!r}")


class _Stop(Exception):
    """Raised after a completed step when SIGINT or SIGTERM asked the run to stop."""


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[Dict[str, str]]:
    """While the block runs, the first SIGINT (Ctrl-C) or SIGTERM (``kill``, ``timeout``, SLURM) only
    records a stop request (``request['reason']``: ``'interrupted'`` or ``'terminated'``), which the
    run honours after the step in progress; a second signal raises :class:`KeyboardInterrupt` at once.
    Handlers are installed from the main thread only (elsewhere the block runs with those of the process)."""
    request: Dict[str, str] = {}
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum, frame) -> None:
        if request:
            raise KeyboardInterrupt
        request["reason"] = "interrupted" if signum == signal.SIGINT else "terminated"

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


def find_blow_up(
    atoms: Atoms,
    step: int,
    dt_fs: float,
    potential_eV: Optional[float] = None,
    error: Optional[BaseException] = None,
) -> Optional[BlowUp]:
    """A :class:`BlowUp` at ``step`` when an atom is beyond ``MAX_ABS_POSITION`` (10,000 Angstrom),
    a position is not finite, ``potential_eV`` is not finite, or the step's force call raised the
    :class:`FloatingPointError` a calculator raises for a non-finite result (``error``:
    :class:`~pyg_schnet.simulation.ase.SchNetCalculator` refuses to return one); ``None`` otherwise."""
    pos = atoms.positions
    bad = ~(np.abs(pos) <= MAX_ABS_POSITION).all(axis=1)  # NaN compares false
    if bad.any():
        i = int(np.argmax(bad))
        where = "a non-finite position" if not np.isfinite(pos[i]).all() else "position"
        detail = f"atom {i} flew apart to {where} {np.array2string(pos[i], precision=4)} A"
        if where == "position":
            detail += f", beyond {MAX_ABS_POSITION:,.0f} A"
        return BlowUp(step, step * dt_fs, detail)
    if potential_eV is not None and not math.isfinite(potential_eV):
        return BlowUp(step, step * dt_fs, f"the potential energy is {potential_eV}")
    if isinstance(error, FloatingPointError):
        return BlowUp(step, step * dt_fs, f"the calculator returned no finite result ({error})")
    return None


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
        out: folder for ``trajectory``, ``energies.csv``, ``energies.png`` (``None``: write nothing);
            held with a :class:`~pyg_schnet.io.run_lock.RunLock` while the run writes there.
        log_interval: energies (and stability, h(r)) every this many steps.
        traj_interval: a trajectory frame every this many steps (a multiple of ``log_interval``;
            ``0``: no trajectory).
        monitor: bond stability check (:class:`StabilityMonitor`); with ``stop_when_unstable`` the
            run ends at the first unstable frame.
        histogram, reference_histogram: h(r) of the run (filled here) and of the reference data;
            with both, ``result.hr_mae`` holds their integrated absolute difference and ``hr.png``
            is drawn.
        progress: a tqdm bar (``None``: when stderr is a terminal).
        max_minutes: stop (and write everything) when the run has taken this much wall time (>= 0).

    ``trajectory`` and ``energies.csv`` are written as the run goes (:class:`.run_files.RunFiles`):
    whatever ends it, they hold every frame and row so far. ``result.stop_reason`` says why the run
    ended: ``'completed'``, ``'unstable'``, ``'time limit'``, ``'interrupted'`` (Ctrl-C, after the step
    in progress), ``'terminated'`` (SIGTERM, likewise) or ``'blew up'`` (``result.blow_up`` names the
    step: an atom beyond 10,000 A, a non-finite position or energy). Any other error propagates, after a
    message on stderr saying what was kept. ``atoms`` keeps its own constraints (a Langevin run adds
    and removes a ``FixCom``).
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
    if max_minutes is not None:
        check_finite("run_md", "max_minutes (or None)", max_minutes, low=0.0)
    constraints = list(atoms.constraints)
    with contextlib.ExitStack() as stack:
        stack.callback(atoms.set_constraint, constraints)  # the caller's constraints, whatever happens
        if out is not None:
            out = Path(out)
            stack.enter_context(RunLock(out))  # one writer; a failed run leaves no empty folder it created
            for stale in remove_stale_temporaries(out):
                print(f"removed {stale}, a temporary file a killed run left behind", file=sys.stderr)
        initial_velocities(atoms, temperature_K, seed)
        dyn = make_integrator(atoms, ensemble, dt_fs, temperature_K, friction_per_fs, seed)

        rows: List[tuple] = []
        files = stack.enter_context(RunFiles(out, trajectory=bool(traj_interval))) if out is not None else None
        blow_up: Optional[BlowUp] = None

        def record(step: int) -> bool:
            nonlocal blow_up
            t = step * dt_fs
            epot = atoms.get_potential_energy()
            if step:
                blow_up = find_blow_up(atoms, step, dt_fs, epot)
                if blow_up is not None:
                    return False
            row = (t, epot, atoms.get_kinetic_energy(), atoms.get_temperature())
            rows.append(row)
            if files is not None:
                files.add_row(*row)
                if traj_interval and step % traj_interval == 0:
                    files.add_frame(atoms)  # positions, momenta, energy and forces of this step
            if histogram is not None:
                histogram.add(atoms.positions)
            if monitor is not None:
                return monitor.check(t, atoms.positions) or not stop_when_unstable
            return True

        show = sys.stderr.isatty() if progress is None else progress
        bar = stack.enter_context(
            tqdm(total=steps, unit="step", disable=not show, desc=f"MD {ensemble}", dynamic_ncols=True)
        )
        request = stack.enter_context(_stop_on_signals())

        def stop_if_asked() -> None:  # after every step
            if request:
                raise _Stop

        dyn.attach(stop_if_asked, interval=1)
        step, reason = 0, "completed"
        started = time.perf_counter()
        deadline = math.inf if max_minutes is None else started + 60.0 * max_minutes
        try:
            go_on = record(0)
            while go_on and step < steps:
                if request:
                    raise _Stop
                if time.perf_counter() > deadline:
                    reason = "time limit"
                    break
                n = min(log_interval, steps - step)
                try:
                    dyn.run(n)
                except (_Stop, KeyboardInterrupt):
                    raise
                except Exception as exc:
                    blow_up = find_blow_up(atoms, dyn.nsteps + 1, dt_fs, error=exc)  # the step whose forces failed
                    if blow_up is None:
                        raise
                    break
                step += n
                bar.update(n)
                go_on = record(step)
            if blow_up is not None:
                reason = "blew up"
            elif not go_on and reason == "completed":
                reason = "unstable"
        except _Stop:
            reason = request.get("reason", "interrupted")
        except KeyboardInterrupt:
            reason = "interrupted"
        except BaseException:
            if files is not None and files.rows:  # (nothing to say when the start itself failed)
                print(f"MD stopped by an error after step {dyn.nsteps}; kept {files.describe()}", file=sys.stderr)
            raise
        wall = time.perf_counter() - started
        if files is not None:
            files.close()

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
            blow_up=blow_up,
        )
        if ensemble == "nve" and len(rows) >= 2 and np.isfinite(result.total_eV).all():
            result.drift = energy_drift(result.time_fs, result.total_eV, len(atoms))
        if histogram is not None and reference_histogram is not None and histogram.frames:
            result.hr_mae = hr_mae(histogram, reference_histogram)
        if out is not None and files is not None:
            result.files.update(files.written())
            write_outputs(result, out, histogram, reference_histogram)
    return result


def write_outputs(
    result: MDResult,
    out: Path,
    histogram: Optional[DistanceHistogram],
    reference_histogram: Optional[DistanceHistogram],
) -> None:
    """The plots, each written atomically (``trajectory`` and ``energies.csv`` are written by
    :func:`run_md` as it goes; ``energies.csv`` is written here when ``result.files`` lacks it)."""
    out.mkdir(parents=True, exist_ok=True)
    if "energies" not in result.files:
        result.files["energies"] = str(atomic_write_text(out / "energies.csv", result.csv_text()))
    try:
        result.files["energies_plot"] = str(plot_energies(result, out / "energies.png"))
        if histogram is not None and reference_histogram is not None and histogram.frames:
            result.files["hr_plot"] = str(plot_hr(histogram, reference_histogram, out / "hr.png", mae=result.hr_mae))
    except ImportError as exc:  # matplotlib is optional
        print(f"warning: no plots ({exc}); install matplotlib", file=sys.stderr)
