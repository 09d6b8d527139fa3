"""Test errors of a saved model on a benchmark data set or your own files (``pyg-schnet evaluate``).

The data set is read as the training scripts read it (MD17 in kcal/mol, ISO17 in eV, QM9 U0 in
Hartree) and its energies and forces are converted into the model's own energy unit
(``model.units["energy"]``; a file that records none needs ``--energy-unit``) with :mod:`ase.units`, so the errors
come out in the unit the model predicts. A ``split.npz`` of the training run selects a subset.
``--energy-unit`` says the unit of a model file that records none (format /1); it never overrides a
recorded unit (a different one is refused, naming both).

QM9 targets other than U0 (``--target homo``, :data:`pyg_schnet.datasets.qm9.QM9_TARGETS`) are read in
the unit the model trains in; an energy target is converted into the model's unit, any other target
(mu in e*Angstrom, alpha in Bohr^3, ...) must be in the unit the model records. Models with extra heads
(``SchNetConfig.extra_heads``) also report ``<name>_mae`` and ``<name>_rmse`` (``<name>_norm_mae``
for a dipole) for every head whose target ``data.<name>`` the data set holds; dipoles are in e*Angstrom.

Your own files (``--dataset file --files PATH [PATH ...]``): any file ASE reads, read by
:class:`pyg_schnet.datasets.ASEDataset` from the flags of ``pyg-schnet train file``
(:mod:`pyg_schnet.experiments.file_flags`: ``--units`` (required), ``--energy-key``, ``--forces-key``,
``--stress-key``, ``--forces-unit``, ``--stress-unit``, ``--index``, ``--format``) with the model's unit as
``train_unit``, so that ``E' = E u_E / u_M``, ``F' = F u_F / (u_M / Angstrom)`` and
``sigma' = sigma u_S / (u_M / Angstrom^3)`` (``u``: a unit's value in ASE's units, ``u_M`` the model's
energy unit). With ``--stress-key`` the stress MAE and RMSE (``stress_mae``, ``stress_rmse``, over the nine
components of every structure's 3 x 3 stress, ASE's sign) join the errors, in ``unit``/Angstrom^3.
Periodic structures need a model with a finite cutoff (refused otherwise, naming the file and frame).
``--root`` caches the processed file there (default: a temporary folder, nothing cached); a
``split.npz`` of ``pyg-schnet train file`` on the same files selects its ``--subset``.

Structures holding an element outside the model's training set (``model.training_domain``, recorded
in model files of format /3) are an extrapolation: ``--unseen-elements`` warns (default), refuses
(``error``) or ignores them; the message names the first such example, atom and element.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

from pyg_schnet.experiments.file_flags import add_file_data_arguments, ase_dataset_options

#: Benchmark data sets and the energy unit of their files.
DATASETS: Dict[str, str] = {"md17": "kcal/mol", "md22": "kcal/mol", "iso17": "eV", "qm9": "Hartree"}
#: ``--dataset file``: the user's own files, in the unit ``--units`` declares.
FILE = "file"
#: Every ``--dataset``.
KINDS = (*sorted(DATASETS), FILE)
SUBSETS = ("all", "train", "val", "test")


def load_dataset(
    kind: str,
    root: os.PathLike | str,
    energy_unit: str,
    *,
    molecule: str = "ethanol",
    raw_file: Optional[os.PathLike | str] = None,
    fold: str = "test_within",
    target: Optional[str] = None,
    files: Optional[Sequence[os.PathLike | str]] = None,
    file_options: Optional[Mapping[str, Any]] = None,
):
    """The data set ``kind`` under ``root`` with energies and forces in ``energy_unit``.

    ``raw_file`` (MD17 and MD22) links an npz elsewhere into ``root/raw`` as the training script does;
    ``fold`` picks the ISO17 fold; ``target`` a QM9 target (default U0 in Hartree, converted): an
    energy target is converted into ``energy_unit``, another target stays in its training unit, which
    must be ``energy_unit`` (the unit the model records for its primary output).

    ``kind="file"``: the ``files`` read by :class:`~pyg_schnet.datasets.ASEDataset` with ``file_options``
    (its keyword arguments ``units`` (required), ``energy_key``, ``forces_key``, ``stress_key``,
    ``forces_unit``, ``stress_unit``, ``index``, ``format``) and ``train_unit=energy_unit``; ``root``
    ``None`` reads them into a temporary folder (nothing cached).
    """
    from pyg_schnet.datasets import ISO17, MD17, MD22, QM9, ScaleUnits
    from pyg_schnet.io.units import unit_value

    if kind not in KINDS:
        raise ValueError(f"--dataset must be one of {list(KINDS)}, got {kind!r}")
    if kind == FILE:
        return _file_dataset(root, energy_unit, files, file_options, raw_file, target)
    if files is not None:
        raise ValueError(f"--files applies to --dataset file only, not {kind}")
    if root is None:
        raise ValueError(f"--dataset {kind} needs --root, the data set folder (raw files in ROOT/raw)")
    if target is not None:
        if kind != "qm9":
            raise ValueError(f"--target applies to --dataset qm9 only, not {kind}")
        return _qm9_target(root, target, energy_unit)
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


def _file_dataset(
    root: Optional[os.PathLike | str],
    energy_unit: str,
    files: Optional[Sequence[os.PathLike | str]],
    options: Optional[Mapping[str, Any]],
    raw_file: Optional[os.PathLike | str],
    target: Optional[str],
):
    """``files`` as an :class:`~pyg_schnet.datasets.ASEDataset` in ``energy_unit`` (:func:`load_dataset`)."""
    from pyg_schnet.datasets import ASEDataset

    for flag, value in (("--raw-file", raw_file), ("--target", target)):
        if value is not None:
            raise ValueError(f"{flag} does not apply to --dataset file")
    if not files:
        raise ValueError("--dataset file needs --files PATH [PATH ...], the files to evaluate on")
    options = dict(options or {})
    if options.get("units") is None:
        raise ValueError(
            "--dataset file needs --units, the energy unit of the files (e.g. eV, kcal/mol): units are never guessed"
        )
    return ASEDataset(root, [os.fspath(p) for p in files], train_unit=energy_unit, **options)


def check_periodic_cutoff(model, dataset, model_path: os.PathLike | str) -> None:
    """A data set of periodic structures needs a model with a finite cutoff: :class:`ValueError` naming the
    file and frame of the first periodic structure (an :class:`~pyg_schnet.datasets.ASEDataset`) when
    ``model`` has ``cutoff=None`` (all pairs)."""
    if not getattr(dataset, "periodic", False) or model.representation.cutoff is not None:
        return
    data = dataset._data
    g = int(data.pbc.any(dim=1).nonzero()[0])
    path = dataset.files[int(data.file_index[g])] if dataset.files else "the structures"
    what = "row id" if str(path).lower().endswith(".db") else "frame"
    raise ValueError(
        f"{path}: {what} {int(data.frame_index[g])} is periodic (a cell and pbc {data.pbc[g].tolist()}), but the "
        f"model {model_path} has cutoff=None (all pairs): a periodic structure needs a model with a finite cutoff "
        "(train one with --cutoff, e.g. --cutoff 5)"
    )


def _qm9_target(root: os.PathLike | str, target: str, energy_unit: str):
    """QM9 with ``target`` in ``energy_unit`` (an energy, converted) or in its own training unit, which
    must then be ``energy_unit``."""
    from pyg_schnet.datasets import QM9, ScaleUnits
    from pyg_schnet.io.units import unit_value

    dataset = QM9(root, target=target)
    unit = dataset.target_unit
    if dataset.energy_unit:  # an energy: converted into the model's unit
        scale = unit_value(unit) / unit_value(energy_unit)
        return dataset if scale == 1.0 else QM9(root, target=target, transform=ScaleUnits(scale))
    if unit != energy_unit:
        raise ValueError(
            f"QM9 target {target!r} is in {unit}, but the model's primary output is in {energy_unit!r}: "
            "was the model trained on this target?"
        )
    return dataset


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
    target: Optional[str] = None,
    files: Optional[Sequence[os.PathLike | str]] = None,
    file_options: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """Errors of the model at ``model_path`` on a data set: ``energy_mae``, ``energy_rmse``,
    ``force_mae``, ``force_rmse`` (model's unit, per Angstrom for forces), ``num_molecules``, ``unit``;
    for every extra head whose target the data hold ``<name>_mae``, ``<name>_rmse`` (and
    ``<name>_norm_mae`` for a dipole), with ``heads`` (name -> kind) and ``head_units`` (dipoles:
    e*Angstrom; other heads: their data's unit). ``target``: a QM9 target (:func:`load_dataset`).
    ``kind="file"``: ``files`` read with ``file_options`` (:func:`load_dataset`); with a ``stress_key``
    also ``stress_mae``, ``stress_rmse`` (``unit``/Angstrom^3), and ``files``, ``read``, ``file_units``
    say what was read.

    ``forces=None`` evaluates forces when the data carry them (not QM9; a file: unless ``forces_key`` is
    ``None``); ``forces=False`` reads no forces from a file. ``unseen_elements``
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
    recorded = (getattr(model, "units", None) or {}).get("energy")
    if target is not None and kind == "qm9" and recorded is not None and energy_unit is None:
        unit = str(recorded)  # a QM9 target that is no energy (e*Angstrom, Bohr^3) is no ase.units name
    else:
        unit = resolve_units(
            model,
            energy_unit,
            hint="pass --energy-unit, the unit of its training energies (e.g. kcal/mol)",
            option="--energy-unit",
        )["energy"]
    if kind == FILE and forces is not None:
        file_options = dict(file_options or {})
        if not forces:
            file_options["forces_key"] = None  # energies only: the files need hold no forces
        elif file_options.get("forces_key", "forces") is None:
            raise ValueError("forces are to be evaluated, but --forces-key none reads no forces")
    dataset = load_dataset(
        kind,
        root,
        unit,
        molecule=molecule,
        raw_file=raw_file,
        fold=fold,
        target=target,
        files=files,
        file_options=file_options,
    )
    check_periodic_cutoff(model, dataset, model_path)
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
    if kind == FILE:
        with_forces = dataset.forces_key is not None
        with_stress = dataset.stress_key is not None
    else:
        with_forces = (kind != "qm9") if forces is None else forces
        with_stress = False
    if with_forces and kind == "qm9":
        raise ValueError("QM9 holds equilibrium geometries without forces: evaluate energies only")
    check_dataset_elements(model, dataset, unseen_elements, f"{model_path} on {kind}", indices)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    first = dataset[0] if len(dataset) else None
    heads = {
        name: head_kind
        for name, head_kind in model.settings.extra_heads
        if first is not None and getattr(first, name, None) is not None
    }
    errors = evaluate(
        model, loader, with_forces=with_forces, device=torch.device(dev), heads=heads, with_stress=with_stress
    ).compute()
    errors.pop("loss", None)
    result = {**errors, "unit": unit, "dataset": kind, "subset": used, "model": str(model_path)}
    if kind == FILE:
        result["files"] = list(dataset.files)
        result["read"] = dataset.settings()
        result["file_units"] = dict(dataset.file_units)
    if target is not None:
        result["target"] = target
    result["output"] = model.settings.output
    if heads:
        result["heads"] = heads
        result["head_units"] = {
            name: "e*Angstrom" if head_kind.startswith("dipole") else "data unit" for name, head_kind in heads.items()
        }
    return result


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
    parser.add_argument(
        "--dataset", required=True, choices=KINDS, help="benchmark data set, or 'file': your own files (--files)"
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="data set folder (raw files in ROOT/raw); --dataset file: where the processed file is cached (without "
        "it nothing is kept)",
    )
    parser.add_argument("--molecule", default="ethanol", help="MD17 or MD22 molecule")
    parser.add_argument("--raw-file", type=Path, default=None, help="MD17 / MD22: an npz elsewhere, linked in")
    parser.add_argument("--fold", default="test_within", help="ISO17 fold")
    parser.add_argument("--target", default=None, help="QM9 target (default U0), e.g. homo, mu")
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
    f = parser.add_argument_group("--dataset file (the flags of pyg-schnet train file)")
    f.add_argument("--files", nargs="+", type=Path, default=None, metavar="PATH", help="files ASE reads")
    add_file_data_arguments(f, use="evaluate", units_required=False)
    return parser


def _file_options(args: argparse.Namespace) -> Optional[Dict[str, Any]]:
    """The ASEDataset options of ``--dataset file``; any file flag given with another data set is refused."""
    if args.dataset == FILE:
        return ase_dataset_options(args)
    given = [flag for flag, value in (("--files", args.files), ("--units", args.units)) if value is not None]
    if given:
        raise ValueError(f"{' and '.join(given)} apply to --dataset file only, not {args.dataset}")
    return None


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
        target=args.target,
        files=args.files,
        file_options=_file_options(args),
    )
    line = (
        f"{args.model} on {args.dataset} ({res['subset']}, {res['num_molecules']} molecules): "
        f"energy MAE {res['energy_mae']:.4f} {res['unit']} (RMSE {res['energy_rmse']:.4f})"
    )
    if res["force_mae"] == res["force_mae"]:  # not NaN
        line += f", force MAE {res['force_mae']:.4f} {res['unit']}/Å (RMSE {res['force_rmse']:.4f})"
    if "stress_mae" in res:
        line += f", stress MAE {res['stress_mae']:.4f} {res['unit']}/Å³ (RMSE {res['stress_rmse']:.4f})"
    for name, unit in res.get("head_units", {}).items():
        line += f", {name} MAE {res[f'{name}_mae']:.4f} {unit} (RMSE {res[f'{name}_rmse']:.4f})"
    print(line)
    if args.out is not None:
        write_json(res, args.out)
    return res
