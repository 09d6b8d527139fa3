"""QM9: any of its 12 targets (``--target``, default U0: Table 1 of the paper) with the head its physics needs.

U0 (the default) is Table 1 of the paper: U0 in kcal/mol, N = 50,000, 100,000 or 110,462. Energies:
``U0`` (Hartree in the raw files) times :data:`QM9.HARTREE_TO_KCAL_PER_MOL`; the model predicts
``sum_i (std * y_i + mean + atomref[Z_i])`` with the per-element U0 reference energies of
``atomref.txt`` (also converted to kcal/mol) and ``mean``/``std`` of the per-atom remainder over the
training split. QM9 holds equilibrium geometries only, so training uses the target alone (rho = 0, no
forces).

Every other target (:data:`pyg_schnet.datasets.qm9.QM9_TARGETS`) trains the same way in its own unit
with the model output its kind asks for (``SchNetConfig.output``):

* ``extensive`` (alpha, r2, zpve, U0, U, H, G, Cv): a sum of atom contributions, with the per-element
  references of ``atomref.txt`` where QM9 publishes them (zpve, U0, U, H, G, Cv);
* ``intensive`` (homo, lumo, gap): their mean, no atom references;
* ``dipole_moment`` (mu): ``|sum_i q_i r_i|`` of latent atomic charges that sum to zero, in e*Angstrom.

``results.json`` records the target (its column, units, conversion factors, kind, atom references), the
test MAE in the training unit and in the unit the literature uses (eV for energies, Debye, Bohr^3,
Bohr^2, cal/(mol K)) and SchNet's published number for the target with its source
(:func:`pyg_schnet.experiments.paper_values.qm9_target_row`; ``null`` where it could not be checked).

Split (seeded): ``N`` training molecules, 1,000 validation, the rest (of the 130,831 characterised
molecules) testing.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, Dict, List, Optional

from pyg_schnet.datasets.qm9 import QM9_TARGETS, Qm9Target, qm9_target
from pyg_schnet.experiments.paper_values import qm9_row, qm9_target_row
from pyg_schnet.experiments.runner import add_common_arguments, check_arguments, run_experiment, setup_distributed
from pyg_schnet.io.files import write_json
from pyg_schnet.io.records import file_record
from pyg_schnet.train import distributed


def _target_name(value: str) -> str:
    """``--target``: one of the 12 names (:func:`qm9_target`'s message, listing them, otherwise)."""
    try:
        return qm9_target(value).name
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--target",
        type=_target_name,
        default="U0",
        metavar="NAME",
        help=f"the QM9 property to train: one of {', '.join(QM9_TARGETS)} (U0: the paper's Table 1)",
    )
    parser.add_argument(
        "--n-train", type=int, default=110_462, help="training molecules N (paper: 50000, 100000 or 110462)"
    )
    add_common_arguments(parser, out="runs/qm9", patience=50, n_val=1000)
    return parser


def literature_mae(target: Qm9Target, mae: Optional[float]) -> Optional[float]:
    """A test MAE in the training unit (:attr:`Qm9Target.unit`) in the literature's unit, or ``None``."""
    if mae is None or not math.isfinite(mae):
        return None
    return float(mae) * target.literature_factor


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.4g}"


def run(args: argparse.Namespace, command: Optional[List[str]] = None) -> Dict[str, Any]:
    """One QM9 run from parsed flags; returns the results dict (also in ``OUT/results.json``)."""
    from pyg_schnet.datasets import QM9, random_split

    target = qm9_target(args.target)  # a Namespace built by hand is checked too
    check_arguments(args, 0.0)  # before the data folder and the output folder are written
    root = args.root if args.root is not None else Path("runs/data/qm9")
    info = setup_distributed(args)
    with distributed.main_process_first(info):  # under torchrun rank 0 processes first
        dataset = QM9(root, target=target.name)
    split = random_split(len(dataset), args.n_train, n_val=args.n_val, seed=args.seed, n_test=args.n_test)
    atomref = dataset.target_atomref()
    source = {
        "dataset": "QM9",
        "target": target.name,
        "unit_conversion": f"{target.raw_unit} x {target.factor!r} = {target.unit}",
        "root": str(Path(root).resolve()),
        "files": [file_record(p) for p in dataset.raw_paths],
        "num_molecules": len(dataset),
    }
    published = qm9_target_row(target.name)
    record: Dict[str, Any] = {**target.as_dict(), "atomref_used": atomref is not None, "published": published}
    label = f"QM9 {target.name}, N = {args.n_train:,}"
    results = run_experiment(
        args,
        benchmark="qm9",
        label=label,
        rho=0.0,
        train_set=dataset[split.train],
        val_set=dataset[split.val],
        test_sets={"test": dataset[split.test]},
        split=split,
        paper={"test": qm9_row(args.n_train) if target.name == "U0" else {}},
        data_source=source,
        atomref=atomref,
        units=target.unit,
        model_options={"output": target.kind},
        extra={"target": record},
        command=command,
    )
    mae = results["test"].get("energy_mae")
    record["test_mae"] = mae
    record["test_mae_literature"] = literature_mae(target, mae)
    results["target"] = record
    if not info.is_main:
        return results
    write_json(results, Path(args.out) / "results.json")
    trained = "" if target.unit == target.literature_unit else f" ({_fmt(mae)} {target.unit})"
    print(
        f"{label}: test MAE {_fmt(record['test_mae_literature'])} {target.literature_unit}{trained}; "
        f"published SchNet, N = 110k: {_fmt(published['value'])} {published['unit']} ({published['source']})"
    )
    return results


@distributed.record
def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Entry point of ``benchmarks/qm9.py``."""
    return run(build_parser(prog="benchmarks/qm9.py").parse_args(argv))
