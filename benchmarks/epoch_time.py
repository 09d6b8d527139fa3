"""One training epoch of benchmarks/md17.py end to end (data set, set-up, training epoch, validation) beside
the same epoch run by SchNetPack's training code and by PyG's SchNet in a minimal loop.

The harness is :mod:`harness.epoch`; this is its command line. One process, one torch thread (``--threads``),
the implementations interleaved round by round (ours, SchNetPack, PyG, ours, ...), each run in a fresh
folder, medians over the rounds. SchNetPack is measured when its training stack can be imported: run this
script with the side environment's Python and the repository on ``PYTHONPATH`` (docs/benchmarks.md,
"SchNetPack side environment")::

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks /work/venv-spk/bin/python benchmarks/epoch_time.py

prints the table and a markdown block (command, machine, date, versions, data, split) and writes them with
every run to ``--out`` (``epoch_time.json``, ``epoch_time.md``). ``--quick`` (96 training, 32 validation
frames, one round) is a seconds-long smoke test.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the harness beside this script

from harness import environment  # noqa: E402
from harness.configs import PAPER  # noqa: E402
from harness.epoch import IMPLS, LABELS, EpochSetting, load_frames, measure, ratios, split_indices, table  # noqa: E402
from harness.schnetpack_import import import_schnetpack, schnetpack_note  # noqa: E402
from pyg_schnet.io.files import atomic_write_text  # noqa: E402
from pyg_schnet.io.records import file_record  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_NPZ = ROOT.parent / "shared" / "data" / "md17" / "md17_ethanol.npz"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--npz", type=Path, default=DEFAULT_NPZ, help="an MD17 trajectory (.npz, kcal/mol, Angstrom)")
    p.add_argument("--n-train", type=int, default=None, help="training frames (default 1000; --quick: 96)")
    p.add_argument("--n-val", type=int, default=None, help="validation frames (default 250; --quick: 32)")
    p.add_argument("--repeats", type=int, default=None, help="interleaved rounds (default 3; --quick: 1)")
    p.add_argument("--impls", default=",".join(IMPLS), help="from " + ",".join(IMPLS))
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the initialisation and the shuffling")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_epoch", help="output folder")
    p.add_argument("--work", type=Path, default=None, help="folder for the runs' data and files (default: a temp dir)")
    p.add_argument("--quick", action="store_true", help="smoke test: 96 training, 32 validation frames, one round")
    args = p.parse_args(argv)
    defaults = dict(n_train=96, n_val=32, repeats=1) if args.quick else dict(n_train=1000, n_val=250, repeats=3)
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    bad = [i for i in args.impls if i not in IMPLS]
    if bad:
        p.error(f"unknown implementation(s) {bad}; choose from {list(IMPLS)}")
    if "ours" not in args.impls:
        p.error("--impls must include ours (the reference of the ratios)")
    if min(args.n_train, args.n_val, args.repeats, args.threads) < 1:
        p.error("--n-train, --n-val, --repeats and --threads must be >= 1")
    if not args.npz.is_file():
        p.error(f"--npz {args.npz} is not a file (the MD17 ethanol excerpt lives in ../shared/data/md17)")
    return args


def peer_versions() -> Dict[str, Optional[str]]:
    """Versions of SchNetPack's training stack (``None``: not importable)."""
    out: Dict[str, Optional[str]] = {}
    try:
        out["schnetpack"] = import_schnetpack()[0].__version__
    except ImportError:
        out["schnetpack"] = None
    for name in ("pytorch_lightning", "torchmetrics", "ase", "matscipy"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = None
    return out


def markdown(report: Dict[str, Any]) -> str:
    """The docs block: how it was run, where, on what, and the table."""
    meta, setting = report["meta"], report["setting"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v is not None and k != "python")
    data = meta["data"]
    lines = [
        f"Measured {meta['date_utc']} with `{meta['command']}`",
        f"(Python {meta['versions']['python']} at `{meta['python_executable']}`).",
        f"Machine: {meta['device']}; {meta['threads']} torch thread(s); {environment.allocator_note(meta)}.",
        f"Versions: {versions}.",
        f"Data: `{Path(data['path']).name}` ({report['num_frames']:,} real MD17 ethanol frames, sha256 "
        f"`{(data.get('sha256') or '')[:12]}`); split seed {setting['seed']}: {report['split']['train']:,} training, "
        f"{report['split']['val']:,} validation frames (the split `benchmarks/md17.py` draws for N = "
        f"{setting['n_train']:,}; the same indices for every implementation).",
        f"Model: {PAPER.describe()}; E+F loss of Eq. 5 with rho = {setting['rho']:g}, batch {setting['batch_size']} "
        f"(validation {setting['eval_batch_size']}), Adam lr {setting['lr']:g}, float32, CPU.",
        f"Median of {meta['repeats']} interleaved round(s), seconds; each run from the `.npz` in a fresh folder; "
        f"load average {meta['load_average']['start']:.2f} before, {meta['load_average']['end']:.2f} after.",
        "",
        report["table"],
        "",
        "*Data set processing*: the data set built from the `.npz` (ours: `pyg_schnet.datasets.MD17`; SchNetPack: "
        "an `ASEAtomsData` database written; PyG: a list of `Data`). *Set-up*: split, model, standardisation, "
        "optimiser, loaders and the framework's start-up (SchNetPack: Lightning's, and a pass over the training "
        "set for the mean energy) up to the first batch. *Epoch*: the training epoch and the validation pass, "
        "data loading included (ours: the `epoch_s` the Trainer writes to `log.csv`). *Total*: from the `.npz` "
        "to the end of the run. *Of the epoch: data loading*: one pass over the run's own training and "
        "validation loaders without the model, measured after the run.",
        "",
        "Epoch (training + validation) of each round: "
        + "; ".join(
            f"{name} " + " / ".join(f"{run['epoch_s']:.2f}" for run in runs) + " s"
            for name, runs in report["runs"].items()
        )
        + ".",
    ]
    if report["skipped"]:
        lines += [""] + [f"- {LABELS[name]} skipped: {why}" for name, why in report["skipped"].items()]
    if meta.get("schnetpack_note"):
        lines += ["", f"SchNetPack import: {meta['schnetpack_note']}."]
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    meta = environment.run_metadata("benchmarks/epoch_time.py", argv, device, args.threads)
    meta["versions"].update(peer_versions())
    meta["date_utc"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta["repeats"] = args.repeats
    meta["data"] = file_record(args.npz)
    print(f"# {meta['device']}, {args.threads} thread(s), torch {torch.__version__}", flush=True)
    setting = EpochSetting(
        npz=args.npz.resolve(), n_train=args.n_train, n_val=args.n_val, seed=args.seed, threads=args.threads
    )
    started = time.perf_counter()
    meta["load_average"] = {"start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="epoch_time_") as tmp:
        work = args.work if args.work is not None else Path(tmp)
        result = measure(setting, work, impls=args.impls, repeats=args.repeats)
    meta["wall_seconds"] = time.perf_counter() - started
    meta["load_average"]["end"] = os.getloadavg()[0]
    meta["schnetpack_note"] = schnetpack_note()
    num_frames = len(load_frames(setting.npz)["E"])
    split = split_indices(setting, num_frames)
    report: Dict[str, Any] = {
        "meta": meta,
        "setting": {k: str(v) if isinstance(v, Path) else v for k, v in vars(setting).items()},
        "num_frames": num_frames,
        "split": {k: len(v) for k, v in split.items()},
        **result,
        "ratios": ratios(result["medians"]),
        "table": table(result),
    }
    block = markdown(report)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "epoch_time.json", json.dumps(report, indent=1, default=str))
    atomic_write_text(args.out / "epoch_time.md", block)
    print("\n" + block, flush=True)
    print(f"written: {args.out / 'epoch_time.json'}, {args.out / 'epoch_time.md'}")
    return report


if __name__ == "__main__":
    main()
