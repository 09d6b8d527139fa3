"""Table 2 of the paper: one SchNet per MD17 trajectory, N = 1,000 or 50,000 training frames,
trained on energies only (``--rho 0``) or on energies and forces (``--rho 100``).

Split (seeded, :func:`pyg_schnet.datasets.random_split`): ``N`` training frames, 1,000 validation
frames for early stopping, the rest for testing. A file with fewer than ``N + 2,000`` frames (such as
the 1,500-frame ethanol excerpt, or the 1,000-frame xTB demo set) cannot hold 1,000 validation frames
and a test set as large; unless ``--n-val`` is given, the frames beyond ``N`` are then halved between
validation and test (1,500 frames, N = 1,000: 250 validation, 250 test), and the script says so.

rMD17's official splits (``--molecule "revised ethanol" --split K``, K = 1..5): training on the 1,000
frames of ``rmd17/splits/index_train_0K.csv`` and testing on the 1,000 of ``index_test_0K.csv``
(:meth:`pyg_schnet.datasets.MD17.official_split`), as the rMD17 paper does. The published split has no
validation set; early stopping needs one, so ``--n-val`` frames (default 1,000, or all the frames left
when fewer remain) are drawn, seeded, from the frames in neither list: training and test frames are
exactly the published ones, and no validation frame is a test frame. ``results.json`` records K and
both files' sha256 under ``data.official_split``. ``--split`` on plain MD17 is refused (it has no
official splits).

Run ``python benchmarks/md17.py --help``; ``pyg-schnet demo`` runs this same code on the
embedded xTB demo data. :mod:`.md22` runs it on MD22.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Type

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
    from pyg_schnet.datasets.md17 import MD17

    return MD17.raw_file_for(molecule)


def official_split_indices(dataset, k: int, n_val: Optional[int], seed: int):
    """``(SplitIndices, note)`` for rMD17 official split ``k``: the published training and test frames,
    and ``n_val`` validation frames (default 1,000, fewer when fewer remain; ``note`` then says so) drawn
    with ``seed`` from the frames in neither list."""
    import torch

    from pyg_schnet.datasets import SplitIndices

    train_idx, test_idx = dataset.official_split(k)
    rest = torch.ones(len(dataset), dtype=torch.bool)
    rest[train_idx] = False
    rest[test_idx] = False
    rest = rest.nonzero().flatten()
    note = ""
    if n_val is None:
        n_val = min(PAPER_N_VAL, rest.numel())
        if n_val < PAPER_N_VAL:
            note = (
                f"only {rest.numel()} frames lie outside the official split {k}: using {n_val} validation frames "
                f"instead of {PAPER_N_VAL}"
            )
    if not 1 <= n_val <= rest.numel():
        raise ValueError(
            f"--n-val must lie in 1..{rest.numel()} (the frames in neither official list of split {k}), got {n_val}"
        )
    order = torch.randperm(rest.numel(), generator=torch.Generator().manual_seed(seed))
    val_idx = rest[order[:n_val]]
    return SplitIndices(train=train_idx, val=val_idx, test=test_idx), note


def build_parser(
    prog: Optional[str] = None,
    *,
    out: str = "runs/md17",
    root: Optional[str] = DEFAULT_ROOT,
    description: Optional[str] = None,
    molecule: str = "ethanol",
    molecule_help: Optional[str] = None,
    raw_file_help: Optional[str] = None,
    official_splits: bool = True,
) -> argparse.ArgumentParser:
    """The flags of ``benchmarks/md17.py`` (the demo and :mod:`.md22` reuse them with other defaults);
    ``root=None`` leaves ``args.root`` unset for the caller to fill in; ``official_splits=False`` leaves
    out ``--split``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description or __doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--molecule",
        default=molecule,
        help=molecule_help
        or "benzene, toluene, malonaldehyde, salicylic_acid, aspirin, ethanol, uracil, "
        "naphthalene (or 'revised <name>' for rMD17)",
    )
    if official_splits:
        parser.add_argument(
            "--split",
            type=int,
            choices=(1, 2, 3, 4, 5),
            default=None,
            help="rMD17 only: train on the official split K (rmd17/splits/index_train_0K.csv, "
            "tested on index_test_0K.csv; validation drawn from the other frames); default: a seeded random split",
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
        help=raw_file_help
        or "an MD17 npz elsewhere (e.g. ../shared/data/md17/md17_ethanol.npz): linked, "
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
    label_prefix: Optional[str] = None,
    command: Optional[List[str]] = None,
    extra: Optional[Dict[str, Any]] = None,
    dataset_cls: Optional[Type] = None,
) -> Dict[str, Any]:
    """One Table 2 row from parsed flags; returns the results dict (also written to ``OUT/results.json``).

    ``dataset_cls`` is :class:`pyg_schnet.datasets.MD17` (default) or another data set of MD17-style
    trajectories with a ``molecule`` argument and a ``raw_file_for(molecule)`` (:class:`~pyg_schnet.datasets.MD22`);
    ``label_prefix`` defaults to the data set's name (``MD17``, ``rMD17``, ``MD22``).
    """
    import torch

    from pyg_schnet.datasets import MD17
    from pyg_schnet.datasets.md17 import canonical_molecule

    dataset_cls = MD17 if dataset_cls is None else dataset_cls
    official = getattr(args, "split", None)
    check_arguments(args, args.rho)  # before the link, the data folder and the output folder
    name = dataset_cls.raw_file_for(args.molecule)  # an unknown molecule is refused here, before any file
    if official is not None:
        if dataset_cls is not MD17 or not canonical_molecule(args.molecule)[1]:
            raise ValueError(
                f"--split {official}: official splits exist for rMD17 only (--molecule 'revised <name>'); "
                f"{args.molecule!r} has none, leave out --split for a seeded random split"
            )
        if args.unique_frames:
            raise ValueError(f"--unique-frames cannot be combined with --split {official} (the published frames)")
        if args.n_test is not None:
            raise ValueError(
                f"--n-test cannot be combined with --split {official}: the test set is the published index_test file"
            )
    root = args.root if args.root is not None else Path(DEFAULT_ROOT)
    info = setup_distributed(args)
    # under torchrun rank 0 links and processes first; a link to a file that cannot be opened is removed
    with distributed.main_process_first(info), raw_file_link(args.raw_file, root, name):
        dataset = dataset_cls(root, args.molecule)
    kind = "rMD17" if dataset.revised else dataset_cls.__name__
    num_frames = len(dataset)
    official_record = None
    if official is not None:
        split, note = official_split_indices(dataset, official, args.n_val, args.seed)
        if args.n_train != split.train.numel():
            train_file = dataset.official_split_paths(official)[0]
            raise ValueError(
                f"--split {official} trains on the {split.train.numel()} frames of {train_file}; "
                f"--n-train must be {split.train.numel()}, got {args.n_train}"
            )
        n_train = split.train.numel()
        official_record = {
            "k": official,
            "files": [file_record(p) for p in dataset.official_split_paths(official)],
            "validation": f"{split.val.numel()} frames drawn with seed {args.seed} from the frames in neither list",
        }
    else:
        if args.unique_frames:
            num_frames = int((dataset.repeated_frames() == torch.arange(len(dataset))).sum())
        n_train, n_val, n_test, note = md17_split_sizes(num_frames, args.n_train, args.n_val, args.n_test)
        split = dataset.random_split(n_train, n_val=n_val, seed=args.seed, n_test=n_test, unique=args.unique_frames)
    if note and info.is_main:
        print(f"note: {note}")
    paper = md17_row(dataset.molecule, n_train, args.rho) if dataset_cls is MD17 and not dataset.revised else {}
    what = "energies only" if args.rho == 0 else f"energies + forces (rho = {args.rho:g})"
    where = f", official split {official}" if official is not None else ""
    label = f"{label_prefix or kind} {args.molecule}, N = {n_train:,}{where}, {what}"
    raw_path = Path(dataset.raw_paths[0])
    source = {
        "dataset": kind,
        "molecule": dataset.molecule,
        "root": str(Path(root).resolve()),
        "files": [file_record(raw_path)],
        "num_frames": len(dataset),
        "num_distinct_frames": num_frames if args.unique_frames else None,
        "split_note": note,
    }
    if official_record is not None:
        source["official_split"] = official_record
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
