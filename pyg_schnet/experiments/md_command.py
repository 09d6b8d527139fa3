"""``pyg-schnet md MODEL START ...`` (also ``pyg-schnet md``): MD with a trained SchNet.

Reads START (any file ASE reads, or an MD17-layout ``.npz``; ``--frame`` picks one image), attaches
:class:`pyg_schnet.simulation.ase.SchNetCalculator`, runs :func:`pyg_schnet.simulation.md.run_md` and
writes into ``--out``:
``trajectory`` (ASE ``traj`` format) and ``energies.csv``, both written as the run goes (they keep
every frame and row so far whatever ends the run: an error, SIGTERM, ``kill -9``), then
``energies.png``, ``results.json`` and, with ``--reference``, ``hr.png``. Ctrl-C or SIGTERM stops the
run after the step in progress and still writes everything. It prints the total-energy drift and
fluctuation (NVE), the bond stability verdict (Fu et al. 2023) and, with ``--reference``, the MAE of
h(r); a run that diverges says at which step it blew up.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import numpy as np

from pyg_schnet import allocator
from pyg_schnet.io.files import npz_error, open_npz
from pyg_schnet.models.domain import UNSEEN_ELEMENT_POLICIES

if TYPE_CHECKING:
    from ase import Atoms

DTYPES = ("float64", "float32")


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("model", type=Path, help="a model.pt written by the training scripts")
    parser.add_argument(
        "start",
        type=Path,
        help="start structure: any file ASE reads (xyz, traj, ...) or an MD17-layout npz "
        "(keys R [frames, atoms, 3] in Angstrom and z [atoms])",
    )
    parser.add_argument(
        "--frame",
        default="0",
        help="which image of START (ASE index, e.g. 0 or -1; of an npz: one frame of R, e.g. 3 or -1)",
    )
    parser.add_argument("--steps", type=int, required=True, help="integration steps")
    parser.add_argument("--dt", type=float, default=0.5, help="time step in fs")
    parser.add_argument(
        "--ensemble",
        choices=("nve", "langevin"),
        default="nve",
        help="nve: velocity Verlet; langevin: NVT with a Langevin thermostat",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=300.0,
        help="K: of the initial Maxwell-Boltzmann velocities and of the thermostat",
    )
    parser.add_argument("--friction", type=float, default=0.01, help="Langevin friction in 1/fs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the velocities and the Langevin noise")
    parser.add_argument("--out", type=Path, default=Path("runs/md"), help="output folder")
    parser.add_argument(
        "--log-interval", type=int, default=10, help="steps between energy records (and stability checks, h(r) samples)"
    )
    parser.add_argument(
        "--traj-interval",
        type=int,
        default=100,
        help="steps between trajectory frames (a multiple of --log-interval; 0: none)",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="training data for the bond ranges and h(r): an MD17-style npz (key R) "
        "or any trajectory ASE reads, same atoms in the same order as START "
        "(default: bond ranges from START alone, no h(r))",
    )
    parser.add_argument(
        "--reference-split",
        type=Path,
        default=None,
        help="a split.npz of the training run: use only its training frames of --reference",
    )
    parser.add_argument(
        "--reference-frames", type=int, default=None, help="use an evenly spaced subset of this many reference frames"
    )
    parser.add_argument(
        "--bond-tolerance",
        type=float,
        default=0.5,
        help="Angstrom beyond the reference range at which a bond counts as broken",
    )
    parser.add_argument(
        "--keep-going", action="store_true", help="continue after the run became unstable (default: stop there)"
    )
    parser.add_argument(
        "--energy-unit",
        default=None,
        help="the energy unit of a MODEL that records none (format /1); never overrides a recorded unit",
    )
    parser.add_argument(
        "--unseen-elements",
        default="warn",
        choices=UNSEEN_ELEMENT_POLICIES,
        help="a start structure with an element the model was not trained on: warn, refuse or ignore",
    )
    parser.add_argument("--device", default=None, help="torch device (None: cuda if available, else cpu)")
    parser.add_argument(
        "--dtype", choices=DTYPES, default="float64", help="float64 conserves energy best; float32 is faster"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads of the model calls (None: one for molecules of up to 200 atoms, else torch's choice)",
    )
    parser.add_argument(
        "--max-minutes", type=float, default=None, help="stop after this much wall time and write what was simulated"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def load_start(path: Path, frame: str = "0"):
    """One image of ``path`` as ASE ``Atoms`` (positions in Angstrom), with errors naming the file.

    ``path`` is any file ASE reads (``frame``: an ASE index) or an MD17-layout ``.npz`` (keys ``R``
    [frames, atoms, 3] in Angstrom and ``z`` [atoms]; ``frame``: one index into ``R``, negative from the end).
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such start structure")
    if path.suffix == ".npz":
        return _npz_start(path, frame)
    from ase.io import read

    try:
        index: Any = int(frame)
    except ValueError:
        index = frame
    try:
        atoms = read(path, index=index)
    except Exception as exc:
        raise ValueError(f"{path}: ASE cannot read image {frame} ({type(exc).__name__}: {exc})") from exc
    if isinstance(atoms, list):
        raise ValueError(f"{path}: --frame {frame} selects {len(atoms)} images; give one index")
    return atoms


def _npz_start(path: Path, frame: str) -> Atoms:
    """Frame ``frame`` of an MD17-layout npz as ``Atoms``: positions ``R[frame]`` (Angstrom, float64),
    atomic numbers ``z``; the positions come from the reader of ``--reference`` files."""
    from ase import Atoms

    from pyg_schnet.simulation.md.analysis import reference_frames

    try:
        index = int(frame)
    except ValueError:
        raise ValueError(
            f"{path}: --frame {frame!r} is not one frame index; an npz start takes an integer (e.g. 0 or -1)"
        ) from None
    with open_npz(path) as data:  # no pickles; numpy's errors name the file
        missing = [key for key in ("R", "z") if key not in data.files]
        if missing:
            raise ValueError(
                f"{path}: no field {' or '.join(repr(k) for k in missing)} in this npz (an MD17-layout start needs "
                f"'R' [frames, atoms, 3] in Angstrom and 'z' [atoms]); fields: {sorted(data.files)}"
            )
        numbers = np.asarray(data["z"])
    frames = reference_frames(path)  # field 'R' as float64 [frames, atoms, 3], errors naming the file and field
    if numbers.ndim != 1 or numbers.shape[0] != frames.shape[1] or not np.issubdtype(numbers.dtype, np.integer):
        raise ValueError(
            f"{path}: field 'z' must hold one integer atomic number per atom of 'R' ({frames.shape[1]}), "
            f"got shape {numbers.shape} dtype {numbers.dtype}"
        )
    if not -len(frames) <= index < len(frames):
        raise ValueError(
            f"{path}: --frame {index} is out of range: field 'R' holds {len(frames)} frames "
            f"(0 to {len(frames) - 1}, or -{len(frames)} to -1)"
        )
    return Atoms(numbers=numbers, positions=frames[index])


def stability_setup(
    atoms, reference: Optional[Path], reference_frames: Optional[int], tolerance: float, split: Optional[Path] = None
):
    """Bond monitor and h(r) histograms: ranges from the reference data (its training frames when a
    ``split.npz`` is given), or from START alone."""
    from pyg_schnet.simulation.md.analysis import (
        DistanceHistogram,
        StabilityMonitor,
        bond_lengths,
        bond_ranges,
        bonded_pairs,
    )
    from pyg_schnet.simulation.md.analysis import (
        reference_frames as read_frames,
    )

    pairs = bonded_pairs(atoms)
    periodic = bool(np.any(atoms.pbc))
    if reference is None:
        d = bond_lengths(atoms.positions, pairs, atoms.cell.array, atoms.pbc)
        return StabilityMonitor(pairs, d, d, tolerance, atoms.cell.array, atoms.pbc), None, None
    frames = read_frames(reference)
    if split is not None:
        from pyg_schnet.datasets.split import SplitIndices

        try:
            train = SplitIndices.load(split).train.numpy()
        except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:  # numpy's errors do not name the file
            raise npz_error(split, exc) from exc
        if train.size == 0 or train.max() >= len(frames):
            raise ValueError(
                f"{split}: training indices up to {train.max() if train.size else None} do not fit "
                f"the {len(frames)} frames of {reference}"
            )
        frames = frames[train]
    if reference_frames is not None and len(frames) > reference_frames:
        frames = frames[np.linspace(0, len(frames) - 1, reference_frames).round().astype(int)]
    if frames.shape[1] != len(atoms):
        raise ValueError(
            f"{reference}: frames of {frames.shape[1]} atoms, but START has {len(atoms)}; "
            "the reference must hold the same atoms in the same order"
        )
    if reference.suffix == ".npz":
        with open_npz(reference) as data:
            if "z" in data and not np.array_equal(np.asarray(data["z"]).ravel(), atoms.numbers):
                raise ValueError(
                    f"{reference}: atomic numbers {np.asarray(data['z']).ravel().tolist()} differ "
                    f"from START's {atoms.numbers.tolist()}"
                )
    low, high = bond_ranges(frames, pairs)
    monitor = StabilityMonitor(pairs, low, high, tolerance, atoms.cell.array, atoms.pbc)
    probe = StabilityMonitor(pairs, low, high, tolerance, atoms.cell.array, atoms.pbc)
    if not probe.check(0.0, atoms.positions):
        bad = probe.instability
        raise ValueError(
            f"{reference}: START's bond {bad.pair[0]}-{bad.pair[1]} ({bad.length:.3f} A) is far outside "
            f"its range in the reference data [{bad.low:.3f}, {bad.high:.3f}] A: the reference must "
            "hold the same atoms in the same order as START"
        )
    if periodic:  # h(r) here is for molecules (all pairs, no images)
        return monitor, None, None
    r_max = float(np.ceil(bond_lengths(frames, np.stack(np.triu_indices(len(atoms), 1), 1)).max() + 1.0))
    sim, ref = DistanceHistogram(r_max), DistanceHistogram(r_max)
    ref.add(frames)
    return monitor, sim, ref


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse flags no run can use, naming the flag, before any file is read or written."""
    from pyg_schnet.experiments.runner import check_seed
    from pyg_schnet.validation import check_finite, check_positive_int

    owner = "command line"
    check_seed(args.seed)
    if args.max_minutes is not None:
        check_finite(owner, "--max-minutes", args.max_minutes, low=0.0)
    check_finite(owner, "--bond-tolerance (Angstrom)", args.bond_tolerance, low=0.0)
    if args.threads is not None:
        check_positive_int(owner, "--threads", args.threads)
    if args.reference_frames is not None:
        check_positive_int(owner, "--reference-frames", args.reference_frames)


def run(args: argparse.Namespace, command: Optional[List[str]] = None) -> Dict[str, Any]:
    """Runs what the flags say; prints the summary and returns what ``results.json`` holds.

    ``--out`` is locked (:class:`pyg_schnet.io.run_lock.RunLock`) from the start of the run to
    ``results.json``: a second run into the same folder is refused; a run that fails before it has
    written anything leaves no folder it created."""
    import torch

    from pyg_schnet.io.devices import describe_device, resolve_device
    from pyg_schnet.io.run_lock import RunLock
    from pyg_schnet.simulation.ase import SchNetCalculator, cpu_threads

    check_arguments(args)
    device = resolve_device(args.device, "pyg-schnet md --device")  # before any file is read
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    allocator.retain_freed_memory()  # large steps reuse freed pages (see pyg_schnet.allocator)
    atoms = load_start(args.start, args.frame)
    # the calculator's thread rule (one thread for small molecules) unless --threads says otherwise
    calc = SchNetCalculator(
        args.model,
        energy_unit=args.energy_unit,
        unseen_elements=args.unseen_elements,
        device=device,
        dtype=getattr(torch, args.dtype),
        threads=args.threads,
    )
    atoms.calc = calc
    with cpu_threads(calc.threads_for(len(atoms)) if calc.device.type == "cpu" else None):
        device_text = describe_device(str(calc.device))  # with the threads the calls run on
    if args.reference_split is not None and args.reference is None:
        raise ValueError("--reference-split needs --reference (the data file the split indexes)")
    monitor, hist, ref_hist = stability_setup(
        atoms, args.reference, args.reference_frames, args.bond_tolerance, args.reference_split
    )
    with RunLock(args.out):
        return _simulate(args, command, atoms, calc, device_text, monitor, hist, ref_hist)


def _simulate(
    args: argparse.Namespace,
    command: Optional[List[str]],
    atoms: Atoms,
    calc: Any,
    device_text: str,
    monitor: Any,
    hist: Any,
    ref_hist: Any,
) -> Dict[str, Any]:
    """The run of :func:`run` once its inputs are read and ``--out`` is locked."""
    from pyg_schnet.io.files import write_json
    from pyg_schnet.simulation.md.simulate import run_md

    print(
        f"MD {args.ensemble.upper()}: {len(atoms)} atoms ({atoms.get_chemical_formula()}) from {args.start}, "
        f"{args.steps} steps of {args.dt:g} fs = {args.steps * args.dt / 1000:g} ps at {args.temperature:g} K, "
        f"seed {args.seed}; model {args.model} ({calc.units['energy']}), {args.dtype} on "
        f"{device_text}; {len(monitor.pairs)} bonds monitored"
        + (f" against {args.reference}" if args.reference else " against START")
    )
    result = run_md(
        atoms,
        args.steps,
        args.dt,
        args.ensemble,
        args.temperature,
        args.friction,
        args.seed,
        out=args.out,
        log_interval=args.log_interval,
        traj_interval=args.traj_interval,
        monitor=monitor,
        stop_when_unstable=not args.keep_going,
        histogram=hist,
        reference_histogram=ref_hist,
        progress=False if args.no_progress else None,
        max_minutes=args.max_minutes,
    )

    lines = [
        f"simulated {result.simulated_ps:g} ps ({result.steps_done} steps) in {result.wall_s:.1f} s: "
        f"{result.ms_per_step:.3f} ms/step"
        + ("" if result.stop_reason == "completed" else f"; stopped: {result.stop_reason}")
    ]
    if result.blow_up is not None:
        lines.append(result.blow_up.summary())
    if result.interrupted:
        signal_name = "SIGTERM" if result.stop_reason == "terminated" else "SIGINT (Ctrl-C)"
        kept = ", ".join(sorted(Path(p).name for p in result.files.values())) or "nothing"
        lines.append(f"{signal_name}: the run stopped cleanly after step {result.steps_done}; written: {kept}")
    if result.drift is not None:
        lines.append(result.drift.summary())
    lines.append(
        result.instability.summary()
        if result.instability
        else f"stable: no bond left its reference range by more than {args.bond_tolerance} A "
        f"in {result.simulated_ps:g} ps"
    )
    if result.hr_mae is not None:
        lines.append(f"MAE of h(r) against the reference data: {result.hr_mae:.4f}")
    for line in lines:
        print(line)
    summary: Dict[str, Any] = {
        "command": command if command is not None else [sys.executable, *sys.argv],
        "model": str(args.model),
        "start": str(args.start),
        "frame": args.frame,
        "units": calc.units,
        "ensemble": args.ensemble,
        "dt_fs": args.dt,
        "temperature_K": args.temperature,
        "friction_per_fs": args.friction if args.ensemble == "langevin" else None,
        "seed": args.seed,
        "dtype": args.dtype,
        "device": device_text,
        "steps_requested": args.steps,
        "steps_done": result.steps_done,
        "simulated_ps": result.simulated_ps,
        "stop_reason": result.stop_reason,
        "blow_up": None if result.blow_up is None else result.blow_up.summary(),
        "wall_s": result.wall_s,
        "ms_per_step": result.ms_per_step,
        "drift": None
        if result.drift is None
        else {
            "meV_per_atom_per_ps": result.drift.meV_per_atom_per_ps,
            "kcal_mol_per_ps": result.drift.kcal_mol_per_ps,
            "fluctuation_meV_per_atom": result.drift.fluctuation_meV_per_atom,
            "fluctuation_kcal_mol": result.drift.fluctuation_kcal_mol,
        },
        "stability": {
            "reference": str(args.reference) if args.reference else "start structure",
            "reference_split": str(args.reference_split) if args.reference_split else None,
            "reference_frames": None if ref_hist is None else ref_hist.frames,
            "bond_tolerance_A": args.bond_tolerance,
            "bonds": monitor.pairs.tolist(),
            "stable": result.instability is None,
            "stable_ps": result.stable_ps,
            "first_unstable": None if result.instability is None else result.instability.summary(),
        },
        "hr_mae": result.hr_mae,
        "files": result.files,
    }
    write_json(summary, args.out / "results.json")
    print(f"wrote {', '.join(sorted(Path(p).name for p in result.files.values()))} and results.json to {args.out}")
    return summary


def main(argv: Optional[List[str]] = None, prog: str = "pyg-schnet md") -> Dict[str, Any]:
    args = build_parser(prog).parse_args(argv)
    argv_used = sys.argv[1:] if argv is None else list(argv)
    return run(args, command=[*shlex.split(prog), *argv_used])
