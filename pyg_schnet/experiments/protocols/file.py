"""Train SchNet on your own data: energies (and forces) from any file ASE reads -- extended XYZ, an ASE
database, a trajectory, several files -- with the paper's training (Eq. 5, Adam, EMA, early stopping).

The files are read by :class:`pyg_schnet.datasets.ASEDataset` with the keys and the unit given
(``--energy-key``, ``--forces-key``, ``--stress-key``, ``--units``; every key is looked up in the
calculator's results, ``atoms.info``, ``atoms.arrays``, a database row's key-value pairs and its data)
and converted to kcal/mol (kcal/mol/Angstrom), the unit the model trains in; ``model.pt`` records it and
the ASE calculator converts back to eV. Periodic structures (a cell and ``pbc`` in the file) need
``--cutoff``. A stress (``--stress-key``; every structure then periodic) is trained on with the weight
``--stress-weight`` (Angstrom^6; default :data:`STRESS_WEIGHT_DEFAULT` with ``--stress-key``, 0 without): each
structure's loss adds the weight times the mean over the nine components of the squared stress error in
kcal/mol/Angstrom^3 (:func:`pyg_schnet.train.loss.per_molecule_loss`), and the stress MAE / RMSE join the
metrics; ``--stress-weight 0`` reads the stress without training on it.

Splits, all seeded with ``--seed`` (:func:`pyg_schnet.datasets.random_split`):

* ``--n-train 800 --n-val 100``: counts, or fractions of the frames (``--n-train 0.8 --n-val 0.1``); the
  test set is ``--n-test`` frames (count or fraction) or all the rest;
* ``--val-file`` / ``--test-file``: whole files as the validation / test set; the training frames
  (``--n-train``, default all that remain) and any set not given as a file come from ``PATH``;
* ``--split-file split.npz``: the ``train`` / ``val`` / ``test`` indices into ``PATH``'s frames of an
  earlier run's ``split.npz`` (:class:`pyg_schnet.datasets.SplitIndices`).

Run ``pyg-schnet train file --help``.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from pyg_schnet.experiments.file_flags import add_file_data_arguments
from pyg_schnet.experiments.runner import add_common_arguments, check_arguments, run_experiment, setup_distributed
from pyg_schnet.io.records import file_record
from pyg_schnet.train import distributed
from pyg_schnet.validation import check_finite

#: Folder of the processed files when ``--root`` is not given.
DEFAULT_ROOT = "runs/data/files"
#: The force weight of Eq. 5 with forces (the paper's rho for MD17), and without.
RHO_WITH_FORCES = 100.0
#: The stress weight (Angstrom^6) with ``--stress-key``. The weight is in Angstrom^6 whatever the energy
#: unit (the loss is an energy squared, the stress an energy per Angstrom^3). Its scale is the squared
#: volume of a small cell: ``V * sigma`` is the energy's derivative with respect to strain, so with
#: ``w = V^2`` a stress error counts like an energy error of ``V * delta sigma`` per unit strain; a 4-atom
#: copper cell has V = 47 Angstrom^3 (V^2 = 2,200). EMT copper cells (4 and 8 atoms, lattice 3.6 +- 0.03
#: Angstrom, rattled 0.05 Angstrom; 72 training cells, a tiny model, 40 epochs; stresses about
#: 0.17 kcal/mol/Angstrom^3 = 1.2 GPa): validation stress MAE 0.37 (weight 0), 0.062 (300), 0.031 (1,000),
#: 0.026 (3,000) kcal/mol/Angstrom^3; energy MAE 1.5 -> 0.2 kcal/mol with any of them, force MAE 0.22 ->
#: 0.34 - 0.36 kcal/mol/Angstrom. 1,000 takes most of the stress gain; a larger weight costs forces.
STRESS_WEIGHT_DEFAULT = 1000.0

Count = Union[int, float]


def count_or_fraction(text: str) -> Count:
    """``"800"`` -> 800 (a count), ``"0.8"`` -> 0.8 (a fraction in (0, 1]); anything else is refused."""
    text = text.strip()
    if re.fullmatch(r"\d+", text):
        return int(text)
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a count (800) nor a fraction (0.8)") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: a fraction must lie in (0, 1]; a count is an integer")
    return value


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    """The flags of ``pyg-schnet train file``."""
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files ASE reads (.extxyz, .db, .traj ...)")
    d = parser.add_argument_group("data")
    add_file_data_arguments(d, use="train")  # shared with pyg-schnet evaluate --dataset file
    s = parser.add_argument_group("split (seeded with --seed)")
    s.add_argument(
        "--n-train",
        type=count_or_fraction,
        default=None,
        help="training frames from PATH, a count (800) or a fraction (0.8); default with --val-file and "
        "--test-file: all of them",
    )
    s.add_argument("--val-file", nargs="+", type=Path, default=None, help="files whose frames are the validation set")
    s.add_argument("--test-file", nargs="+", type=Path, default=None, help="files whose frames are the test set")
    s.add_argument(
        "--split-file", type=Path, default=None, help="train/val/test indices into PATH's frames (an earlier split.npz)"
    )
    s.add_argument(
        "--unique-frames",
        action="store_true",
        help="split only the distinct frames (frames repeating an earlier one bit for bit are left out)",
    )
    parser.add_argument(
        "--stress-weight",
        type=float,
        default=None,
        help=f"stress weight in Angstrom^6 (default {STRESS_WEIGHT_DEFAULT:g} with --stress-key, 0 without; 0 reads "
        "the stress without training on it)",
    )
    parser.add_argument(
        "--rho",
        type=float,
        default=None,
        help=f"force weight of Eq. 5 (default {RHO_WITH_FORCES:g} with forces, 0 without)",
    )
    add_common_arguments(parser, out="runs/file", patience=1000, n_val=None)
    for action in parser._actions:  # --n-val / --n-test of the common flags: counts or fractions here
        if action.dest in ("n_val", "n_test"):
            action.type = count_or_fraction
            action.help = f"{action.help}; a count or a fraction of PATH's frames"
    parser.set_defaults(root=None)
    return parser


def _dataset(paths: Sequence[Path], root: Path, args: argparse.Namespace):
    from pyg_schnet.datasets import ASEDataset

    return ASEDataset(
        root,
        [str(p) for p in paths],
        units=args.units,
        energy_key=args.energy_key,
        forces_key=args.forces_key,
        stress_key=args.stress_key,
        forces_unit=args.forces_unit,
        stress_unit=args.stress_unit,
        index=args.index,
        format=args.format,
        log=not getattr(args, "quiet", False),
    )


def check_file_arguments(args: argparse.Namespace) -> None:
    """The flags of this protocol that can be checked before any file is read or written.

    Raises:
        ValueError: naming the flag; FileNotFoundError: naming a missing file.
    """
    if args.split_file is not None:
        clash = [
            flag
            for flag, value in (
                ("--n-train", args.n_train),
                ("--n-val", args.n_val),
                ("--n-test", args.n_test),
                ("--val-file", args.val_file),
                ("--test-file", args.test_file),
            )
            if value is not None
        ]
        if args.unique_frames:
            clash.append("--unique-frames")
        if clash:
            raise ValueError(f"--split-file gives the whole split; leave out {', '.join(clash)}")
        if not args.split_file.is_file():
            raise FileNotFoundError(f"--split-file {args.split_file}: no such file")
    if args.val_file is not None and args.n_val is not None:
        raise ValueError("--n-val and --val-file both give the validation set: pass one of them")
    if args.test_file is not None and args.n_test is not None:
        raise ValueError("--n-test and --test-file both give the test set: pass one of them")
    if args.rho is not None and args.rho > 0 and args.forces_key is None:
        raise ValueError(f"--rho {args.rho:g} weights a force loss, but --forces-key none reads no forces")
    if args.stress_weight is not None:
        check_finite("command line", "--stress-weight", args.stress_weight, low=0.0)
        if args.stress_weight > 0 and args.stress_key is None:
            raise ValueError(
                f"--stress-weight {args.stress_weight:g} weights a stress loss, but no --stress-key says where the "
                "stress is"
            )
    everything = [*args.paths, *(args.val_file or []), *(args.test_file or [])]
    for path in everything:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such file")
    resolved = [os.path.abspath(p) for p in everything]
    if len(set(resolved)) != len(resolved):
        raise ValueError(
            f"a file is named twice among PATH, --val-file and --test-file: {[str(p) for p in everything]}"
        )


def file_split(
    dataset, args: argparse.Namespace, val_separate: bool, test_separate: bool
) -> Tuple[Any, str, Dict[str, str]]:
    """``(SplitIndices into dataset, note, where each set comes from)`` from the split flags (module docstring)."""
    import torch

    from pyg_schnet.datasets import SplitIndices

    frames = f"the {len(dataset):,} frames of PATH"
    if args.split_file is not None:
        split = SplitIndices.load(args.split_file)
        seen: Dict[int, str] = {}
        for name, part in zip(("train", "val", "test"), split):
            for index in part.tolist():
                if not 0 <= index < len(dataset):
                    raise ValueError(
                        f"--split-file {args.split_file}: '{name}' holds index {index}, outside 0..{len(dataset) - 1} "
                        f"({frames})"
                    )
                if index in seen:
                    raise ValueError(
                        f"--split-file {args.split_file}: index {index} is in both '{seen[index]}' and '{name}'"
                    )
                seen[index] = name
        if min(split.sizes()[:2]) < 1 or split.test.numel() < 1:
            raise ValueError(f"--split-file {args.split_file}: train, val and test must each hold a frame")
        return split, "", {k: f"{frames} (--split-file {args.split_file})" for k in ("train", "val", "test")}
    n_val: Count = 0 if val_separate else args.n_val
    n_test: Optional[Count] = 0 if test_separate else args.n_test
    if n_val is None:
        raise ValueError("--n-val is required (a count like 100 or a fraction like 0.1), or give --val-file")
    n_train = args.n_train
    if n_train is None:
        if not test_separate:
            raise ValueError("--n-train is required (a count like 800 or a fraction like 0.8)")
        n_train = 1.0 if val_separate else None
    if n_train is None:  # test from a file, validation from PATH: train on all the other frames
        from pyg_schnet.datasets.split import count_of

        total = len(dataset)
        if args.unique_frames:
            total = int((dataset.repeated_frames() == torch.arange(total)).sum())
        n_train = max(total - count_of("--n-val", n_val, total), 0)
    split = dataset.random_split(n_train, n_val=n_val, seed=args.seed, n_test=n_test, unique=args.unique_frames)
    if not test_separate and split.test.numel() == 0:
        raise ValueError(
            f"--n-train {args.n_train} and --n-val {args.n_val} leave no test frame of {frames}: lower them, "
            "or give --test-file"
        )
    if split.train.numel() == 0 or (not val_separate and split.val.numel() == 0):
        raise ValueError(f"the split of {frames} leaves no training or no validation frame: raise --n-train / --n-val")
    used = split.train.numel() + split.val.numel() + split.test.numel()
    note = ""
    if used < len(dataset):
        note = f"{len(dataset) - used:,} of {frames} are in no set"
        if args.unique_frames:
            note += " (--unique-frames: frames repeating an earlier one are left out)"
    empty = torch.empty(0, dtype=torch.long)
    split = SplitIndices(
        train=split.train, val=empty if val_separate else split.val, test=empty if test_separate else split.test
    )
    sources = {
        "train": frames,
        "val": "--val-file" if val_separate else frames,
        "test": "--test-file" if test_separate else frames,
    }
    return split, note, sources


def run(args: argparse.Namespace, command: Optional[List[str]] = None) -> Dict[str, Any]:
    """One training run on the files from parsed flags; returns the results dict (also in ``OUT/results.json``)."""
    from pyg_schnet.datasets import ASEDataset

    rho = args.rho if args.rho is not None else (RHO_WITH_FORCES if args.forces_key is not None else 0.0)
    if args.stress_weight is None:
        args.stress_weight = STRESS_WEIGHT_DEFAULT if args.stress_key is not None else 0.0
    check_finite("command line", "--stress-weight", args.stress_weight, low=0.0)
    check_arguments(args, rho)  # before the data folder and the output folder are written
    check_file_arguments(args)
    root = args.root if args.root is not None else Path(DEFAULT_ROOT)
    info = setup_distributed(args)
    with distributed.main_process_first(info):  # under torchrun rank 0 processes first
        dataset: ASEDataset = _dataset(args.paths, root, args)
        val_ds = _dataset(args.val_file, root, args) if args.val_file else None
        test_ds = _dataset(args.test_file, root, args) if args.test_file else None
    periodic = [d for d in (dataset, val_ds, test_ds) if d is not None and d.periodic]
    if periodic and args.cutoff is None:
        raise ValueError(
            f"{periodic[0].files[0]} holds periodic structures (a cell and pbc): they need a model with a cutoff; "
            "pass --cutoff (e.g. --cutoff 5)"
        )
    split, note, sources = file_split(dataset, args, val_ds is not None, test_ds is not None)
    if info.is_main:
        if note:
            print(f"note: {note}")
    train_set = dataset[split.train]
    val_set = val_ds if val_ds is not None else dataset[split.val]
    test_set = test_ds if test_ds is not None else dataset[split.test]
    names = [p.name for p in args.paths]
    shown = names[0] + (f" (+{len(names) - 1} files)" if len(names) > 1 else "")
    what = "energies only" if rho == 0 else f"energies + forces (rho = {rho:g})"
    if args.stress_weight > 0:
        what += f" + stress (weight {args.stress_weight:g} A^6)"
    label = f"{shown}, N = {split.train.numel():,}, {what}"
    source = {
        "dataset": "ASEDataset",
        "root": str(Path(root).resolve()),
        "files": [file_record(p) for p in dataset.files],
        "val_files": [file_record(p) for p in val_ds.files] if val_ds is not None else None,
        "test_files": [file_record(p) for p in test_ds.files] if test_ds is not None else None,
        "read": dataset.settings(),
        "file_units": dict(dataset.file_units),
        "units": {
            "energy": dataset.energy_unit,
            "force": dataset.force_unit,
            **({"stress": dataset.stress_unit} if args.stress_key is not None else {}),
        },
        "num_frames": len(dataset),
        "periodic": bool(periodic),
        "sets": sources,
        "split_note": note,
    }
    return run_experiment(
        args,
        benchmark="file",
        label=label,
        rho=rho,
        train_set=train_set,
        val_set=val_set,
        test_sets={"test": test_set},
        split=split,
        paper={"test": {}},  # the user's own data: no published number to compare with
        data_source=source,
        command=command,
    )


@distributed.record
def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """``python -m pyg_schnet.experiments.protocols.file`` (the same as ``pyg-schnet train file``)."""
    return run(build_parser(prog="pyg-schnet train file").parse_args(argv))


if __name__ == "__main__":
    main()
