"""Table 1 of the paper: QM9 internal energy at 0 K (U0) in kcal/mol, N = 50,000, 100,000 or 110,462.

Energies: ``U0`` (Hartree in the raw files) times :data:`QM9.HARTREE_TO_KCAL_PER_MOL`; the model
predicts ``sum_i (std * y_i + mean + atomref[Z_i])`` with the per-element U0 reference energies of
``atomref.txt`` (also converted to kcal/mol) and ``mean``/``std`` of the per-atom remainder over the
training split. QM9 holds equilibrium geometries only, so training uses energies (rho = 0).

Split (seeded): ``N`` training molecules, 1,000 validation, the rest (of the 130,831 characterised
molecules) testing.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, List, Optional

from pyg_schnet.experiments.paper_values import qm9_row
from pyg_schnet.experiments.runner import add_common_arguments, check_arguments, run_experiment, setup_distributed
from pyg_schnet.io.records import file_record
from pyg_schnet.train import distributed


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--n-train", type=int, default=110_462, help="training molecules N (paper: 50000, 100000 or 110462)"
    )
    add_common_arguments(parser, out="runs/qm9", patience=50, n_val=1000)
    return parser


def run(args: argparse.Namespace, command: Optional[List[str]] = None) -> Dict[str, Any]:
    """One Table 1 row from parsed flags; returns the results dict (also in ``OUT/results.json``)."""
    from pyg_schnet.datasets import QM9, ScaleUnits, random_split

    check_arguments(args, 0.0)  # before the data folder and the output folder are written
    root = args.root if args.root is not None else Path("runs/data/qm9")
    to_kcal = QM9.HARTREE_TO_KCAL_PER_MOL
    with distributed.main_process_first(setup_distributed(args)):  # under torchrun rank 0 processes first
        dataset = QM9(root, transform=ScaleUnits(to_kcal, target="U0"))
    split = random_split(len(dataset), args.n_train, n_val=args.n_val, seed=args.seed, n_test=args.n_test)
    atomref = QM9.atomref("U0", root) * to_kcal
    source = {
        "dataset": "QM9",
        "target": "U0",
        "unit_conversion": f"Hartree x {to_kcal!r} = kcal/mol",
        "root": str(Path(root).resolve()),
        "files": [file_record(p) for p in dataset.raw_paths],
        "num_molecules": len(dataset),
    }
    label = f"QM9 U0, N = {args.n_train:,}"
    return run_experiment(
        args,
        benchmark="qm9",
        label=label,
        rho=0.0,
        train_set=dataset[split.train],
        val_set=dataset[split.val],
        test_sets={"test": dataset[split.test]},
        split=split,
        paper={"test": qm9_row(args.n_train)},
        data_source=source,
        atomref=atomref,
        command=command,
    )


@distributed.record
def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Entry point of ``benchmarks/qm9.py``."""
    return run(build_parser(prog="benchmarks/qm9.py").parse_args(argv))
