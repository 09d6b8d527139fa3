"""Table 3 of the paper: ISO17, one SchNet for 129 C7O2H10 isomers, trained on the ``reference`` fold
and tested on ``test_within`` (known molecules, unseen conformations) and ``test_other`` (unseen
molecules); energies only (``--rho 0``) or energies and forces (``--rho 100``).

Energies and forces (eV, eV/Angstrom in the files) are converted to kcal/mol and kcal/mol/Angstrom
with :data:`ISO17.EV_TO_KCAL_PER_MOL`. Training and validation examples come from the archive's
``train_ids.txt`` / ``validation_ids.txt`` when present
(:meth:`pyg_schnet.datasets.ISO17.train_val_indices`), else from a seeded split with ``--n-val``
(default 1,000) validation examples.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from pyg_schnet.experiments.paper_values import iso17_row
from pyg_schnet.experiments.runner import add_common_arguments, check_arguments, run_experiment, setup_distributed
from pyg_schnet.io.records import file_record
from pyg_schnet.train import distributed

TEST_SPLITS = ("test_within", "test_other")


def _seeded_subset(indices: torch.Tensor, count: Optional[int], seed: int, what: str) -> torch.Tensor:
    if count is None:
        return indices
    if not 1 <= count <= indices.numel():
        raise ValueError(f"{what} must lie in 1..{indices.numel()}, got {count}")
    order = torch.randperm(indices.numel(), generator=torch.Generator().manual_seed(seed))
    return indices[order[:count]].sort().values


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--rho",
        type=float,
        default=100.0,
        help="force weight of Eq. 5: 0 = energies only, 100 = energies and forces (paper)",
    )
    parser.add_argument(
        "--n-train",
        type=int,
        default=None,
        help="use a seeded subset of this many training examples (default: all of them)",
    )
    add_common_arguments(parser, out="runs/iso17", patience=50, n_val=None)
    return parser


def run(args: argparse.Namespace, command: Optional[List[str]] = None) -> Dict[str, Any]:
    """Table 3 (one column) from parsed flags; results for both test folds in ``OUT/results.json``."""
    from pyg_schnet.datasets import ISO17, ScaleUnits, SplitIndices

    check_arguments(args, args.rho)  # before the data folder and the output folder are written
    root = args.root if args.root is not None else Path("runs/data/iso17")
    to_kcal = ScaleUnits(ISO17.EV_TO_KCAL_PER_MOL)
    with distributed.main_process_first(setup_distributed(args)):  # under torchrun rank 0 processes first
        reference = ISO17(root, "reference", transform=to_kcal)
        for name in TEST_SPLITS:
            ISO17(root, name, transform=to_kcal)
    train_idx, val_idx = reference.train_val_indices(seed=args.seed, n_val=args.n_val)
    train_idx = _seeded_subset(train_idx, args.n_train, args.seed, "--n-train")
    tests = {}
    files = [file_record(p) for p in reference.raw_paths]
    files += [file_record(p) for p in reference.id_list_paths if p.exists()]
    for name in TEST_SPLITS:
        fold = ISO17(root, name, transform=to_kcal)
        files += [file_record(p) for p in fold.raw_paths]
        keep = _seeded_subset(torch.arange(len(fold)), args.n_test, args.seed, "--n-test")
        tests[name] = fold if args.n_test is None else fold[keep]
    split = SplitIndices(train=train_idx, val=val_idx, test=torch.empty(0, dtype=torch.long))
    source = {
        "dataset": "ISO17",
        "unit_conversion": f"eV x {ISO17.EV_TO_KCAL_PER_MOL!r} = kcal/mol",
        "root": str(Path(root).resolve()),
        "files": files,
        "train_val_from": "id lists"
        if all(p.exists() for p in reference.id_list_paths)
        else f"seeded split (seed {args.seed})",
        "num_reference": len(reference),
    }
    what = "energies only" if args.rho == 0 else f"energies + forces (rho = {args.rho:g})"
    return run_experiment(
        args,
        benchmark="iso17",
        label=f"ISO17, {what}",
        rho=args.rho,
        train_set=reference[train_idx],
        val_set=reference[val_idx],
        test_sets=tests,
        split=split,
        paper={name: iso17_row(name, args.rho) for name in TEST_SPLITS},
        data_source=source,
        command=command,
    )


@distributed.record
def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Entry point of ``benchmarks/iso17.py``."""
    return run(build_parser(prog="benchmarks/iso17.py").parse_args(argv))
