"""Frames per second of :class:`pyg_schnet.datasets.ASEDataset` processing an extended XYZ file, beside
``ase.io.read(path, ":")`` alone (ASE's parser, the floor of any reader built on it).

The file is written by ASE (``ase.io.write``, energies and forces as a calculator's results, eV and
eV/Angstrom) from the 1,500 real MD17 ethanol frames of ``../shared/data``, repeated to ``--frames``
frames; each copy after the first is displaced by 0.001 Angstrom (seeded) so that no frame repeats bit for
bit. Every measurement runs in a fresh process (imports excluded from the time), interleaved: ASE, ours,
ours reopening the processed file, ASE, ours, ... ``--repeats`` rounds; medians are reported. Peak memory
is the process's peak resident set size (``getrusage``) less its resident set after the imports.

    OMP_NUM_THREADS=1 python benchmarks/file_reading.py --frames 100000

prints a markdown block (command, machine, date, versions, the table); ``--out`` also writes it with the
raw numbers (``file_reading.json``, ``file_reading.md``). ``--quick`` (300 frames, one round) is a smoke test.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the harness beside this script

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_NPZ = ROOT.parent / "shared" / "data" / "md17" / "md17_ethanol.npz"
READERS = ("ase", "ours", "ours_reopen")
LABELS = {
    "ase": '`ase.io.read(path, ":")` (a list of `Atoms`)',
    "ours": "`ASEDataset(root, path, units='eV')`: read, check, write the processed file",
    "ours_reopen": "`ASEDataset(...)` again: the processed file reused",
}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--npz", type=Path, default=DEFAULT_NPZ, help="an MD17 trajectory (.npz, kcal/mol, Angstrom)")
    p.add_argument("--frames", type=int, default=None, help="frames in the file (default 20000; --quick: 300)")
    p.add_argument("--repeats", type=int, default=None, help="interleaved rounds (default 3; --quick: 1)")
    p.add_argument("--work", type=Path, default=None, help="folder for the file and processed data (default: temp)")
    p.add_argument("--out", type=Path, default=None, help="folder for file_reading.json and file_reading.md")
    p.add_argument("--quick", action="store_true", help="smoke test: 300 frames, one round")
    p.add_argument("--child", nargs=3, metavar=("READER", "PATH", "ROOT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        return args
    defaults = dict(frames=300, repeats=1) if args.quick else dict(frames=20_000, repeats=3)
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.frames < 1 or args.repeats < 1:
        p.error("--frames and --repeats must be >= 1")
    if not args.npz.is_file():
        p.error(f"--npz {args.npz} is not a file (the MD17 ethanol excerpt lives in ../shared/data/md17)")
    return args


def write_file(npz: Path, frames: int, path: Path) -> None:
    """``frames`` ethanol frames in eV as extended XYZ, written by ASE in blocks (bounded memory)."""
    import ase.io
    import numpy as np
    from ase import Atoms, units
    from ase.calculators.singlepoint import SinglePointCalculator

    with np.load(npz) as f:
        z, positions, energies, forces = f["z"], f["R"], f["E"][:, 0], f["F"]
    per_ev = units.kcal / units.mol  # kcal/mol in eV
    rng = np.random.default_rng(0)
    with open(path, "w") as handle:
        block: List[Any] = []
        for k in range(frames):
            m = k % len(energies)
            shift = 0.0 if k < len(energies) else 1e-3 * rng.standard_normal(positions[m].shape)
            atoms = Atoms(numbers=z, positions=positions[m] + shift)
            atoms.calc = SinglePointCalculator(atoms, energy=float(energies[m]) * per_ev, forces=forces[m] * per_ev)
            block.append(atoms)
            if len(block) == 2000 or k == frames - 1:
                ase.io.write(handle, block, format="extxyz")
                block = []


def resident_kib() -> int:
    """The resident set size of this process now, KiB (Linux: ``/proc/self/statm``; elsewhere the peak so far)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(reader: str, path: str, root: str) -> Dict[str, Any]:
    """One measurement in this process: seconds, frames, peak resident memory above the resident set after the
    imports (KiB)."""
    import ase.io

    from pyg_schnet.datasets import ASEDataset

    base = resident_kib()
    started = time.perf_counter()
    tensor_bytes = None
    if reader == "ase":
        frames = len(ase.io.read(path, ":"))
    else:
        ds = ASEDataset(root, path, units="eV", log=False, force_reload=reader == "ours")
        frames = len(ds)
        tensor_bytes = sum(v.numel() * v.element_size() for v in ds._data.to_dict().values() if hasattr(v, "numel"))
        if reader == "ours_reopen" and ds.rebuild_reason is not None:
            raise RuntimeError(f"the processed file was not reused: {ds.rebuild_reason}")
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "frames": frames, "peak_kib": peak - base, "tensor_bytes": tensor_bytes}


def measure(path: Path, root: Path, repeats: int) -> Dict[str, List[Dict[str, Any]]]:
    runs: Dict[str, List[Dict[str, Any]]] = {name: [] for name in READERS}
    env = dict(
        os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    for _ in range(repeats):
        for reader in READERS:
            done = subprocess.run(
                [sys.executable, __file__, "--child", reader, str(path), str(root)],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"{reader} failed:\n{done.stderr[-3000:]}")
            runs[reader].append(json.loads(done.stdout.strip().splitlines()[-1]))
    return runs


def table(runs: Dict[str, List[Dict[str, Any]]]) -> str:
    lines = [
        "| reader | frames | seconds (median) | frames / s | peak memory above the imports |",
        "|---|---|---|---|---|",
    ]
    for name, results in runs.items():
        seconds = statistics.median(r["seconds"] for r in results)
        frames = results[0]["frames"]
        peak = statistics.median(r["peak_kib"] for r in results) / 1024
        lines.append(f"| {LABELS[name]} | {frames:,} | {seconds:.2f} | {frames / seconds:,.0f} | {peak:,.0f} MiB |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    if args.child is not None:
        result = child(*args.child)
        print(json.dumps(result))
        return result
    import ase
    import torch

    from harness import environment

    meta = environment.run_metadata("benchmarks/file_reading.py", argv, torch.device("cpu"), 1)
    meta["versions"]["ase"] = ase.__version__
    meta["date_utc"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with tempfile.TemporaryDirectory(prefix="file_reading_") as tmp:
        work = args.work if args.work is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        path = work / f"ethanol_{args.frames}.extxyz"
        started = time.perf_counter()
        write_file(args.npz, args.frames, path)
        meta["write_seconds"] = time.perf_counter() - started
        meta["file_bytes"] = path.stat().st_size
        meta["load_average"] = {"start": os.getloadavg()[0]}
        runs = measure(path, work / "root", args.repeats)
        meta["load_average"]["end"] = os.getloadavg()[0]
    tensor_mib = (runs["ours"][0]["tensor_bytes"] or 0) / 2**20
    block = "\n".join(
        [
            f"Measured {meta['date_utc']} with `{meta['command']}`.",
            f"Machine: {meta['device']}; one thread (`OMP_NUM_THREADS=1`); each measurement in a fresh process, "
            f"{args.repeats} interleaved round(s), medians; load average {meta['load_average']['start']:.2f} "
            f"before, {meta['load_average']['end']:.2f} after.",
            "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v is not None) + ".",
            f"Data: {args.frames:,} frames of 9 atoms (the 1,500 real MD17 ethanol frames, repeated, each copy "
            f"displaced by 0.001 Angstrom), written by `ase.io.write` as extended XYZ with energies and forces in "
            f"eV ({meta['file_bytes'] / 2**20:,.0f} MiB); the data set's tensors take {tensor_mib:,.1f} MiB.",
            "",
            table(runs),
        ]
    )
    report = {"meta": meta, "frames": args.frames, "repeats": args.repeats, "runs": runs, "table": table(runs)}
    if args.out is not None:
        from pyg_schnet.io.files import atomic_write_text

        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "file_reading.json", json.dumps(report, indent=1, default=str))
        atomic_write_text(args.out / "file_reading.md", block + "\n")
    print(block, flush=True)
    return report


if __name__ == "__main__":
    main()
