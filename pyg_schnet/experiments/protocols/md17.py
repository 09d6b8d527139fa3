"""Table 2 of the paper: one SchNet per MD17 trajectory, N = 1,000 or 50,000 training frames,
trained on energies only (``--rho 0``) or on energies and forces (``--rho 100``).

Split (seeded, :func:`pyg_schnet.datasets.random_split`): ``N`` training frames, 1,000 validation
frames for early stopping, the rest for testing. A file with fewer than ``N + 2,000`` frames (such as
the 1,500-frame ethanol excerpt, or the 1,000-frame xTB demo set) cannot hold 1,000 validation frames
and a test set as large; unless ``--n-val`` is given, the frames beyond ``N`` are then halved between
validation and test (1,500 frames, N = 1,000: 250 validation, 250 test), and the script says so.

Run ``python benchmarks/md17.py --help``; ``pyg-schnet demo`` runs this same code on the
embedded xTB demo data.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from pyg_schnet.datasets.raw_files import raw_file_link
from pyg_schnet.experiments.paper_values import md17_row
from pyg_schnet.experiments.runner import add_common_arguments, check_arguments, run_experiment, setup_distributed
from pyg_schnet.io.records import file_record
from pyg_schnet.train import distributed

#: Data set root when ``--root`` is not given.
DEFAULT_ROOT = "runs/data/md17"
#: Validation frames of the paper's protocol.
PAPER_N_VAL = 1000


def md17_split_sizes(
    num_frames: int, n_train: int, n_val: Optional[int] = None, n_test: Optional[int] = None
) -> Tuple[int, int, int, str]:
    """``(n_train, n_val, n_test, note)`` for a trajectory of ``num_frames`` frames.

    ``n_val=None`` means the paper's 1,000 when at least 1,000 frames remain for testing, otherwise
    half of the frames beyond ``n_train`` (``note`` then explains the reduction). ``n_test=None`` means
    all remaining frames.

    Raises:
        ValueError: when the sizes do not fit, or leave no test frame.
    """
    if n_train < 1:
        raise ValueError(f"--n-train must be positive, got {n_train}")
    rest = num_frames - n_train
    note = ""
    if n_val is None:
        if rest >= 2 * PAPER_N_VAL:
            n_val = PAPER_N_VAL
        else:
            n_val = rest // 2
            note = (
                f"the file has {num_frames} frames, fewer than N + 2,000 = {n_train + 2 * PAPER_N_VAL}: "
                f"using {n_val} validation frames instead of the paper's 1,000 and the remaining "
                f"{rest - n_val} for testing"
            )
    if n_val < 1 or n_train + n_val >= num_frames:
        raise ValueError(
            f"cannot take {n_train} training and {n_val} validation frames from {num_frames} frames "
            "and keep any for testing; lower --n-train or --n-val"
        )
    available = num_frames - n_train - n_val
    if n_test is None:
        n_test = available
    elif not 1 <= n_test <= available:
        raise ValueError(f"--n-test must lie in 1..{available} for this file and split, got {n_test}")
    return n_train, n_val, n_test, note


def raw_file_name(molecule: str) -> str:
    """The path under ``ROOT/raw`` that :class:`pyg_schnet.datasets.MD17` reads for ``molecule``."""
    from pyg_schnet.datasets.md17 import MD17_FILES, RMD17_FILES, canonical_molecule

    key, revised = canonical_molecule(molecule)
    if revised:
        return os.path.join("rmd17", "npz_data", RMD17_FILES[key])
    return MD17_FILES[key][0]


def build_parser(
    prog: Optional[str] = None,
    *,
    out: str = "runs/md17",
    root: Optional[str] = DEFAULT_ROOT,
    description: Optional[str] = None,
) -> argparse.ArgumentParser:
    """The flags of ``benchmarks/md17.py`` (the demo reuses them with other defaults); ``root=None``
    leaves ``args.root`` unset for the caller to fill in."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description or __doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--molecule",
        default="ethanol",
        help="benzene, toluene, malonaldehyde, salicylic_acid, aspirin, ethanol, uracil, "
        "naphthalene (or 'revised <name>' for rMD17)",
    )
    parser.add_argument("--n-train", type=int, default=1000, help="training frames N (paper: 1000 or 50000)")
    parser.add_argument(
        "--rho",
        type=float,
        default=100.0,
        help="force weight of Eq. 5: 0 = energies only, 100 = energies and forces (paper)",
    )
    parser.add_argument(
        "--raw-file",
        type=Path,
        default=None,
        help="an MD17 npz elsewhere (e.g. ../shared/data/md17/md17_ethanol.npz): linked, "
        "not copied, into ROOT/raw under the name the data set expects",
    )
    parser.add_argument(
        "--unique-frames",
        action="store_true",
        help="split only the distinct frames: frames that repeat an earlier one bit for bit are left out "
        "(without it, a file with repeats warns, as copies would land in training and test alike)",
    )
    add_common_arguments(parser, out=out, patience=1000, n_val=None)
    parser.set_defaults(root=Path(root) if root is not None else None)
    return parser


def run(
    args: argparse.Namespace,
    *,
    benchmark: str = "md17",
    label_prefix: str = "MD17",
    command: Optional[List[str]] = None,
    extra: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """One Table 2 row from parsed flags; returns the results dict (also written to ``OUT/results.json``)."""
    import torch

    from pyg_schnet.datasets import MD17

    check_arguments(args, args.rho)  # before the link, the data folder and the output folder
    root = args.root if args.root is not None else Path(DEFAULT_ROOT)
    name = raw_file_name(args.molecule)
    info = setup_distributed(args)
    # under torchrun rank 0 links and processes first; a link to a file that cannot be opened is removed
    with distributed.main_process_first(info), raw_file_link(args.raw_file, root, name):
        dataset = MD17(root, args.molecule)
    num_frames = len(dataset)
    if args.unique_frames:
        num_frames = int((dataset.repeated_frames() == torch.arange(len(dataset))).sum())
    n_train, n_val, n_test, note = md17_split_sizes(num_frames, args.n_train, args.n_val, args.n_test)
    if note and info.is_main:
        print(f"note: {note}")
    split = dataset.random_split(n_train, n_val=n_val, seed=args.seed, n_test=n_test, unique=args.unique_frames)
    paper = md17_row(dataset.molecule, n_train, args.rho) if not dataset.revised else {}
    what = "energies only" if args.rho == 0 else f"energies + forces (rho = {args.rho:g})"
    label = f"{label_prefix} {args.molecule}, N = {n_train:,}, {what}"
    raw_path = Path(dataset.raw_paths[0])
    source = {
        "dataset": "rMD17" if dataset.revised else "MD17",
        "molecule": dataset.molecule,
        "root": str(Path(root).resolve()),
        "files": [file_record(raw_path)],
        "num_frames": len(dataset),
        "num_distinct_frames": num_frames if args.unique_frames else None,
        "split_note": note,
    }
    return run_experiment(
        args,
        benchmark=benchmark,
        label=label,
        rho=args.rho,
        train_set=dataset[split.train],
        val_set=dataset[split.val],
        test_sets={"test": dataset[split.test]},
        split=split,
        paper={"test": paper},
        data_source=source,
        command=command,
        extra=extra,
    )


@distributed.record
def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Entry point of ``benchmarks/md17.py``."""
    return run(build_parser(prog="benchmarks/md17.py").parse_args(argv))
