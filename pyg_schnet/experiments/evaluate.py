"""Test errors of a saved model on a benchmark data set (``pyg-schnet evaluate``).

The data set is read as the training scripts read it (MD17 in kcal/mol, ISO17 in eV, QM9 U0 in
Hartree) and its energies and forces are converted into the model's own energy unit
(``model.units["energy"]``; a file that records none needs ``--energy-unit``) with :mod:`ase.units`, so the errors
come out in the unit the model predicts. A ``split.npz`` of the training run selects a subset.
``--energy-unit`` says the unit of a model file that records none (format /1); it never overrides a
recorded unit (a different one is refused, naming both).

Structures holding an element outside the model's training set (``model.training_domain``, recorded
in model files of format /3) are an extrapolation: ``--unseen-elements`` warns (default), refuses
(``error``) or ignores them; the message names the first such example, atom and element.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

#: Benchmark data sets and the energy unit of their files.
DATASETS: Dict[str, str] = {"md17": "kcal/mol", "md22": "kcal/mol", "iso17": "eV", "qm9": "Hartree"}
SUBSETS = ("all", "train", "val", "test")


def load_dataset(
    kind: str,
    root: os.PathLike | str,
    energy_unit: str,
    *,
    molecule: str = "ethanol",
    raw_file: Optional[os.PathLike | str] = None,
    fold: str = "test_within",
):
    """The data set ``kind`` under ``root`` with energies and forces in ``energy_unit``.

    ``raw_file`` (MD17 and MD22) links an npz elsewhere into ``root/raw`` as the training script does;
    ``fold`` picks the ISO17 fold.
    """
    from pyg_schnet.datasets import ISO17, MD17, MD22, QM9, ScaleUnits
    from pyg_schnet.io.units import unit_value

    if kind not in DATASETS:
        raise ValueError(f"--dataset must be one of {sorted(DATASETS)}, got {kind!r}")
    factor = unit_value(DATASETS[kind]) / unit_value(energy_unit)
    if kind == "md17":
        from pyg_schnet.datasets.raw_files import link_raw_file
        from pyg_schnet.experiments.protocols.md17 import raw_file_name

        if raw_file is not None:
            link_raw_file(raw_file, root, raw_file_name(molecule))
        return MD17(root, molecule, transform=ScaleUnits(factor) if factor != 1.0 else None)
    if kind == "md22":
        from pyg_schnet.datasets.raw_files import link_raw_file

        if raw_file is not None:
            link_raw_file(raw_file, root, MD22.raw_file_for(molecule))
        return MD22(root, molecule, transform=ScaleUnits(factor) if factor != 1.0 else None)
    if raw_file is not None:
        raise ValueError("--raw-file applies to --dataset md17 and md22 only")
    if kind == "iso17":
        return ISO17(root, fold, transform=ScaleUnits(factor))
    return QM9(root, transform=ScaleUnits(factor, target="U0"))


def evaluate_model(
    model_path: os.PathLike | str,
    kind: str,
    root: os.PathLike | str,
    *,
    molecule: str = "ethanol",
    raw_file: Optional[os.PathLike | str] = None,
    fold: str = "test_within",
    split: Optional[os.PathLike | str] = None,
    subset: str = "test",
    forces: Optional[bool] = None,
    batch_size: int = 100,
    device: Optional[str] = None,
    energy_unit: Optional[str] = None,
    unseen_elements: str = "warn",
) -> Dict[str, Any]:
    """Errors of the model at ``model_path`` on a data set: ``energy_mae``, ``energy_rmse``,
    ``force_mae``, ``force_rmse`` (model's unit, per Angstrom for forces), ``num_molecules``, ``unit``.

    ``forces=None`` evaluates forces when the data carry them (not QM9). ``unseen_elements``
    (``"warn"``, ``"error"``, ``"ignore"``): what examples with an element outside the model's training
    set get (:func:`check_dataset_elements`).
    """
    import torch
    from torch_geometric.loader import DataLoader

    from pyg_schnet.io.devices import resolve_device
    from pyg_schnet.io.model_file import load_model
    from pyg_schnet.io.units import resolve_units
    from pyg_schnet.train.metrics import evaluate

    dev = resolve_device(device, "pyg-schnet evaluate --device")
    model = load_model(model_path, map_location=dev)
    unit = resolve_units(
        model,
        energy_unit,
        hint="pass --energy-unit, the unit of its training energies (e.g. kcal/mol)",
        option="--energy-unit",
    )["energy"]
    dataset = load_dataset(kind, root, unit, molecule=molecule, raw_file=raw_file, fold=fold)
    if subset not in SUBSETS:
        raise ValueError(f"--subset must be one of {SUBSETS}, got {subset!r}")
    if split is not None:
        from pyg_schnet.datasets.split import SplitIndices

        if subset == "all":
            raise ValueError("--split needs --subset train, val or test")
        indices = getattr(SplitIndices.load(split), subset)
        if indices.numel() and int(indices.max()) >= len(dataset):
            raise ValueError(
                f"{split}: index {int(indices.max())} is beyond the {len(dataset)} examples of the data set"
            )
        dataset = dataset[indices]
        used = subset
    else:
        indices = None
        used = "all"
    with_forces = (kind != "qm9") if forces is None else forces
    if with_forces and kind == "qm9":
        raise ValueError("QM9 holds equilibrium geometries without forces: evaluate energies only")
    check_dataset_elements(model, dataset, unseen_elements, f"{model_path} on {kind}", indices)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    errors = evaluate(model, loader, with_forces=with_forces, device=torch.device(dev)).compute()
    errors.pop("loss", None)
    return {**errors, "unit": unit, "dataset": kind, "subset": used, "model": str(model_path)}


def check_dataset_elements(model, dataset, policy: str = "warn", where: str = "", indices=None) -> None:
    """Compare the elements of ``dataset``'s examples with ``model.training_domain``
    (:func:`pyg_schnet.models.domain.check_elements`): warn about, refuse or ignore (``policy``) the first
    example holding an element outside it, named by its index in the data set (``indices[i]`` for the
    ``i``-th example of a subset) and the atom's index in it. A model without a domain is not checked.

    Cheap when nothing is outside: the atomic numbers of an in-memory data set are compared all at once
    (those of the whole data set, a superset of any subset); only then are examples read one by one.
    """
    from pyg_schnet.models.domain import UNSEEN_ELEMENT_POLICIES, check_elements

    if policy not in UNSEEN_ELEMENT_POLICIES:
        raise ValueError(f"--unseen-elements must be one of {UNSEEN_ELEMENT_POLICIES}, got {policy!r}")
    domain = getattr(model, "training_domain", None)
    if domain is None or policy == "ignore":
        return
    stored = getattr(getattr(dataset, "_data", None), "z", None)
    if stored is not None and domain.unseen(stored).numel() == 0:
        return
    for i in range(len(dataset)):
        z = dataset[i].z
        if domain.unseen(z).numel():
            index = int(indices[i]) if indices is not None else i
            check_elements(domain, z, policy, f"{where}, example {index}")
            return


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("model", type=Path, help="a model.pt")
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS), help="benchmark data set")
    parser.add_argument("--root", type=Path, required=True, help="data set folder (raw files in ROOT/raw)")
    parser.add_argument("--molecule", default="ethanol", help="MD17 or MD22 molecule")
    parser.add_argument("--raw-file", type=Path, default=None, help="MD17 / MD22: an npz elsewhere, linked in")
    parser.add_argument("--fold", default="test_within", help="ISO17 fold")
    parser.add_argument("--split", type=Path, default=None, help="split.npz of the training run")
    parser.add_argument("--subset", default="test", choices=SUBSETS, help="which part of --split")
    parser.add_argument("--energies-only", action="store_true", help="skip forces")
    parser.add_argument("--batch-size", type=int, default=100, help="molecules per batch")
    parser.add_argument(
        "--energy-unit", default=None, help="the model's energy unit if not recorded in MODEL (never overrides it)"
    )
    parser.add_argument(
        "--unseen-elements",
        default="warn",
        choices=("warn", "error", "ignore"),
        help="examples with an element the model was not trained on: warn, refuse or ignore",
    )
    parser.add_argument("--device", default=None, help="torch device (None: cuda if available, else cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=None, help="also write the errors to this JSON file")
    return parser


def main(argv: Optional[Sequence[str]] = None, prog: str = "pyg-schnet evaluate") -> Dict[str, Any]:
    import torch

    from pyg_schnet.io.files import write_json

    args = build_parser(prog).parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    res = evaluate_model(
        args.model,
        args.dataset,
        args.root,
        molecule=args.molecule,
        raw_file=args.raw_file,
        fold=args.fold,
        split=args.split,
        subset=args.subset,
        forces=False if args.energies_only else None,
        batch_size=args.batch_size,
        device=args.device,
        energy_unit=args.energy_unit,
        unseen_elements=args.unseen_elements,
    )
    line = (
        f"{args.model} on {args.dataset} ({res['subset']}, {res['num_molecules']} molecules): "
        f"energy MAE {res['energy_mae']:.4f} {res['unit']} (RMSE {res['energy_rmse']:.4f})"
    )
    if res["force_mae"] == res["force_mae"]:  # not NaN
        line += f", force MAE {res['force_mae']:.4f} {res['unit']}/Å (RMSE {res['force_rmse']:.4f})"
    print(line)
    if args.out is not None:
        write_json(res, args.out)
    return res
