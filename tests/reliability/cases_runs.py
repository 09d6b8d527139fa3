"""Audit cases: runs that lose nothing (issue 20, defects 1, 2, 4, 6, 11-13): one writer per run folder,
MD files kept after SIGTERM or an error, blow-ups named as such, fixed atoms left alone, flags and files
no run can use refused naming them, no empty output folder after a failed run."""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import signal
from pathlib import Path
from typing import Iterator, List

import numpy as np
import torch

from .registry import case

#: A start time for lock records written by the cases (the messages must not depend on the clock).
STARTED = "2026-01-01T00:00:00+00:00"


def _model(tmp: Path) -> Path:
    from pyg_schnet import SchNet
    from pyg_schnet.io.model_file import save_model

    torch.manual_seed(0)
    model = SchNet(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=10, rbf_stop=3.0, cutoff=3.0)
    model.units = {"energy": "kcal/mol", "length": "Angstrom"}
    return save_model(model, tmp / "model.pt")


def _ethanol(tmp: Path):
    from ase.build import molecule
    from ase.io import write

    atoms = molecule("CH3CH2OH")
    write(tmp / "start.xyz", atoms)
    return tmp / "start.xyz", atoms


def _md(tmp: Path, *flags: str, start: Path = None) -> dict:
    from pyg_schnet.experiments.md_command import main

    start = start if start is not None else _ethanol(tmp)[0]
    return main([str(_model(tmp)), str(start), "--steps", "5", "--out", str(tmp / "out"), "--no-progress", *flags])


@contextlib.contextmanager
def _held_by_process_1(folder: Path) -> Iterator[None]:
    """``folder`` locked as a live run would hold it; its record names process 1 (always alive) and a
    fixed start time, so that the message is the same on every machine."""
    import fcntl

    from pyg_schnet.io.run_lock import LOCK_NAME, LockHolder

    folder.mkdir(parents=True, exist_ok=True)
    me = LockHolder.this_process()
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, LockHolder(1, me.host, STARTED, "train md17").text().encode())
        yield
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------- training
@case(
    "training",
    "a second training run into an --out another live run writes (runs mixed their files before)",
    RuntimeError,
    r"<tmp>/out is being written by another run \(process 1 on this host, started 2026-01-01T00:00:00\+00:00\): "
    r"one run per output folder",
)
def _(tmp: Path):
    from ase.build import molecule

    from pyg_schnet.cli import main

    atoms = molecule("H2O")
    rng = np.random.default_rng(0)
    R = atoms.positions + rng.normal(scale=0.05, size=(40, 3, 3))
    np.savez(tmp / "md17_ethanol.npz", R=R, z=atoms.numbers, E=rng.normal(size=(40, 1)), F=rng.normal(size=R.shape))
    flags = ["--raw-file", str(tmp / "md17_ethanol.npz"), "--root", str(tmp / "data"), "--out", str(tmp / "out")]
    flags += ["--n-train", "24", "--n-val", "8", "--max-epochs", "1", "--no-progress", "--overwrite"]
    flags += ["--hidden-channels", "8", "--num-filters", "8", "--num-interactions", "1", "--num-gaussians", "10"]
    with _held_by_process_1(tmp / "out"):
        try:
            main(["train", "md17", *flags])
        finally:
            assert sorted(p.name for p in (tmp / "out").iterdir()) == [".run.lock"], "the run wrote into --out"


@case(
    "training",
    "--patience -3 (switched early stopping off silently before)",
    ValueError,
    r"command line: --patience \(0: off\) must be an integer >= 0, got -3",
)
def _(tmp: Path):
    from pyg_schnet.experiments.demo import DEMO_DATA
    from pyg_schnet.experiments.protocols import md17

    md17.main(["--raw-file", str(DEMO_DATA), "--root", str(tmp / "d"), "--out", str(tmp / "o"), "--patience", "-3"])


@case(
    "training",
    "--seed 2**70 (torch's 'Overflow when unpacking long long' before)",
    ValueError,
    r"command line: --seed must be an integer from 0 to 2\*\*64 - 1 = 18446744073709551615",
)
def _(tmp: Path):
    from pyg_schnet.experiments.demo import DEMO_DATA
    from pyg_schnet.experiments.protocols import md17

    md17.main(["--raw-file", str(DEMO_DATA), "--root", str(tmp / "d"), "--out", str(tmp / "o"), "--seed", str(2**70)])


# -------------------------------------------------------------------------------- simulation
class _SignalAt:
    """Wraps a calculator's ``calculate``: the ``call``-th call sends ``signum`` to this process."""

    def __init__(self, calc, call: int, signum: int) -> None:
        self.calc, self.call, self.signum, self.calls = calc, call, signum, 0
        self.inner = calc.calculate
        calc.calculate = self

    def __call__(self, *args, **kwargs):
        self.inner(*args, **kwargs)
        self.calls += 1
        if self.calls == self.call:
            os.kill(os.getpid(), self.signum)


@case(
    "simulation",
    "SIGTERM to a running MD (the trajectory was lost and .trajectory.tmp-PID left before)",
    None,
    r"stop_reason 'terminated' after step 20; trajectory: 3 frames, energies\.csv: 5 rows; "
    r"no temporary file; SIGTERM handler restored",
)
def _(tmp: Path) -> str:
    from ase.io import read

    from pyg_schnet.simulation.ase import SchNetCalculator
    from pyg_schnet.simulation.md import run_md

    _, atoms = _ethanol(tmp)
    atoms.calc = SchNetCalculator(_model(tmp))
    _SignalAt(atoms.calc, 23, signal.SIGTERM)  # during the forces of step 22
    before = signal.getsignal(signal.SIGTERM)
    result = run_md(atoms, 1000, 0.25, out=tmp / "out", log_interval=5, traj_interval=10, progress=False)
    frames = len(read(tmp / "out" / "trajectory", ":"))
    rows = len((tmp / "out" / "energies.csv").read_text().splitlines()) - 1
    temporary = "a temporary file left" if list((tmp / "out").glob(".*tmp-*")) else "no temporary file"
    restored = "restored" if signal.getsignal(signal.SIGTERM) == before else "NOT restored"
    return (
        f"stop_reason {result.stop_reason!r} after step {result.steps_done}; trajectory: {frames} frames, "
        f"energies.csv: {rows} rows; {temporary}; SIGTERM handler {restored}"
    )


@case(
    "simulation",
    "an error in the 33rd force call of an MD run (all frames were discarded before)",
    None,
    r"RuntimeError propagated; kept trajectory: 4 frames \(steps 0-30\), energies\.csv: 7 rows; no lock left",
)
def _(tmp: Path) -> str:
    from ase.io import read

    from pyg_schnet.simulation.ase import SchNetCalculator
    from pyg_schnet.simulation.md import run_md

    _, atoms = _ethanol(tmp)
    atoms.calc = SchNetCalculator(_model(tmp))
    inner, calls = atoms.calc.calculate, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 33:
            raise RuntimeError("No space left on device (simulated)")
        inner(*args, **kwargs)

    atoms.calc.calculate = failing
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            run_md(atoms, 100, 0.25, out=tmp / "out", log_interval=5, traj_interval=10, progress=False)
    except RuntimeError:
        pass
    else:
        raise AssertionError("the error did not propagate")
    frames = len(read(tmp / "out" / "trajectory", ":"))
    rows = len((tmp / "out" / "energies.csv").read_text().splitlines()) - 1
    lock = "a lock left" if (tmp / "out" / ".run.lock").exists() else "no lock left"
    return f"RuntimeError propagated; kept trajectory: {frames} frames (steps 0-30), energies.csv: {rows} rows; {lock}"


@case(
    "simulation",
    "atoms flying past 10,000 A in MD (blamed 'a unit mistake' in the input before)",
    None,
    r"stop_reason 'blew up'; the simulation blew up at step 23 \(0\.0115 ps\): atom 0 flew apart .*beyond 10,000 A; "
    r"'unit mistake' not said",
)
def _(tmp: Path) -> str:
    from pyg_schnet.simulation.ase import SchNetCalculator
    from pyg_schnet.simulation.md import run_md

    _, atoms = _ethanol(tmp)
    atoms.calc = SchNetCalculator(_model(tmp))
    inner, calls = atoms.calc.calculate, []

    def exploding(*args, **kwargs):
        inner(*args, **kwargs)
        calls.append(1)
        if len(calls) >= 23:  # a force of 1e9 eV/A on atom 0 from step 22 on
            atoms.calc.results["forces"] = atoms.calc.results["forces"].copy()
            atoms.calc.results["forces"][0] += 1e9

    atoms.calc.calculate = exploding
    result = run_md(atoms, 100, 0.5, out=tmp / "out", log_interval=5, traj_interval=5, progress=False)
    text = result.blow_up.summary()
    head = text.split(" to position")[0]
    said = "said" if "unit mistake" in text else "not said"
    return f"stop_reason {result.stop_reason!r}; {head} ... beyond 10,000 A; 'unit mistake' {said}"


@case(
    "simulation",
    "Langevin MD of atoms with FixAtoms (FixCom moved fixed atoms by 0.004-0.008 A and stayed on the atoms)",
    None,
    r"fixed atoms moved 0 A; the caller's constraints after the run: \['FixAtoms'\]",
)
def _(tmp: Path) -> str:
    from ase.constraints import FixAtoms

    from pyg_schnet.simulation.ase import SchNetCalculator
    from pyg_schnet.simulation.md import run_md

    _, atoms = _ethanol(tmp)
    atoms.set_constraint(FixAtoms(indices=[0, 2]))
    before = atoms.positions[[0, 2]].copy()
    atoms.calc = SchNetCalculator(_model(tmp))
    run_md(atoms, 40, 0.5, "langevin", 500.0, friction_per_fs=0.05, log_interval=5, traj_interval=0, progress=False)
    moved = float(np.abs(atoms.positions[[0, 2]] - before).max())
    names: List[str] = [type(c).__name__ for c in atoms.constraints]
    return f"fixed atoms moved {moved:g} A; the caller's constraints after the run: {names}"


@case(
    "simulation",
    "MD instability with --bond-tolerance 0.2 (the message said 'by more than 0.5 A' before)",
    None,
    r"unstable at 0\.005 ps: bond 0-1 is 2\.512 A, outside its reference range \[1\.512, 1\.512\] A by more than 0\.2 A",
)
def _(tmp: Path) -> str:
    from pyg_schnet.simulation.md import StabilityMonitor, bond_lengths, bonded_pairs

    _, atoms = _ethanol(tmp)
    pairs = bonded_pairs(atoms)
    d = bond_lengths(atoms.positions, pairs)
    monitor = StabilityMonitor(pairs, d, d, tolerance=0.2)
    pos = atoms.positions.copy()
    i, j = pairs[0]
    pos[j] += (pos[j] - pos[i]) / np.linalg.norm(pos[j] - pos[i])  # 1 A longer
    monitor.check(5.0, pos)
    return monitor.instability.summary()


@case(
    "simulation",
    "md --bond-tolerance -1 (accepted before)",
    ValueError,
    r"command line: --bond-tolerance \(Angstrom\) must be a finite number in \[0, inf\), got -1\.0",
)
def _(tmp: Path):
    _md(tmp, "--bond-tolerance", "-1")


@case(
    "simulation",
    "md --max-minutes -1 (accepted before)",
    ValueError,
    r"command line: --max-minutes must be a finite number in \[0, inf\), got -1\.0",
)
def _(tmp: Path):
    _md(tmp, "--max-minutes", "-1")


@case(
    "simulation",
    "md --max-minutes nan (accepted before)",
    ValueError,
    r"command line: --max-minutes must be a finite number in \[0, inf\), got nan",
)
def _(tmp: Path):
    _md(tmp, "--max-minutes", "nan")


@case(
    "simulation",
    "md --seed 2**64 (numpy's error did not name the flag)",
    ValueError,
    r"command line: --seed must be an integer from 0 to 2\*\*64 - 1",
)
def _(tmp: Path):
    _md(tmp, "--seed", str(2**64))


@case(
    "simulation",
    "md failing at step 0 (an element beyond the embedding; left an empty --out before)",
    ValueError,
    r"atomic number 105, outside 1\.\.99 of the embedding",
)
def _(tmp: Path):
    from ase.io import write

    _, atoms = _ethanol(tmp)
    atoms.numbers[0] = 105
    write(tmp / "bad.xyz", atoms)
    try:
        _md(tmp, start=tmp / "bad.xyz")
    finally:
        assert not (tmp / "out").exists(), "the failed run left its --out folder"


# ------------------------------------------------------------------------------------- files
@case(
    "files",
    "a pickle saved as md --reference ref.npz (refused safely, file not named before)",
    ValueError,
    r"<tmp>/ref\.npz: holds pickled Python objects .* never loaded, since unpickling can run code",
)
def _(tmp: Path):
    (tmp / "ref.npz").write_bytes(pickle.dumps({"R": np.zeros((1, 9, 3))}))
    _md(tmp, "--reference", str(tmp / "ref.npz"))


@case(
    "files",
    "md --reference-split whose 'train' is an object array (file not named before)",
    ValueError,
    r"<tmp>/split\.npz: holds pickled Python objects",
)
def _(tmp: Path):
    _, atoms = _ethanol(tmp)
    np.savez(tmp / "ref.npz", R=np.stack([atoms.positions] * 3), z=atoms.numbers)
    np.savez(tmp / "split.npz", train=np.array([0, 1], dtype=object), val=np.array([2]), test=np.array([2]))
    _md(tmp, "--reference", str(tmp / "ref.npz"), "--reference-split", str(tmp / "split.npz"))


@case(
    "files",
    "the lock file a killed run left in --out (process no longer running)",
    None,
    r"took over the lock of <tmp>/out left by process 999999999 on this host, started 2026-01-01T00:00:00\+00:00, "
    r"which is no longer running; lock gone after the run",
)
def _(tmp: Path) -> str:
    from pyg_schnet.io.run_lock import LOCK_NAME, LockHolder, RunLock

    (tmp / "out").mkdir()
    record = LockHolder(999_999_999, LockHolder.this_process().host, STARTED, "pyg-schnet md")
    (tmp / "out" / LOCK_NAME).write_text(record.text())
    said: List[str] = []
    with RunLock(tmp / "out", say=said.append):
        pass
    gone = "gone" if not (tmp / "out" / LOCK_NAME).exists() else "still there"
    return f"{said[0]}; lock {gone} after the run"
