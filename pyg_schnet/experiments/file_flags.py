"""The flags that say how files ASE reads are read -- keys, units, frames, format -- shared by
``pyg-schnet train file`` (:mod:`pyg_schnet.experiments.protocols.file`) and ``pyg-schnet evaluate
--dataset file`` (:mod:`pyg_schnet.experiments.evaluate`), so that both read a file from the same flags.

Light on purpose: the parser of ``pyg-schnet evaluate`` loads this module, and a help text loads no data
set and no trainer (tests/test_startup.py). :func:`ase_dataset_options` maps the parsed flags onto the
keyword arguments of :class:`pyg_schnet.datasets.ASEDataset`.
"""

from __future__ import annotations

import argparse
from typing import Any, Dict, Optional

#: What a file's energies, forces and stress are read for, in the words of each command's help.
USES = {
    "train": ("'none' trains on energies only", "trained on"),
    "evaluate": ("'none' evaluates energies only", "its errors reported"),
}


def key_or_none(text: str) -> Optional[str]:
    """A key name; ``none`` (any case) reads nothing."""
    return None if text.strip().lower() == "none" else text


def add_file_data_arguments(group: Any, use: str = "train", units_required: bool = True) -> None:
    """Add ``--units``, ``--energy-key``, ``--forces-key``, ``--stress-key``, ``--forces-unit``,
    ``--stress-unit``, ``--index`` and ``--format`` to ``group`` (a parser or an argument group).

    ``use`` (``"train"`` or ``"evaluate"``) words the help of ``--forces-key none`` and ``--stress-key``;
    ``units_required=False`` leaves ``--units`` to be checked by the caller (``evaluate`` needs it for
    ``--dataset file`` only).
    """
    if use not in USES:
        raise ValueError(f"use must be one of {sorted(USES)}, got {use!r}")
    no_forces, stress_use = USES[use]
    group.add_argument(
        "--units",
        required=units_required,
        default=None,
        help="energy unit of the files, an ase.units name: eV, kcal/mol, Hartree",
    )
    group.add_argument(
        "--energy-key", default="energy", help="where the energies are (info / arrays / results / db key)"
    )
    group.add_argument("--forces-key", type=key_or_none, default="forces", help=f"where the forces are; {no_forces}")
    group.add_argument(
        "--stress-key",
        type=key_or_none,
        default=None,
        help=f"where the stress is (every structure periodic); {stress_use}",
    )
    group.add_argument("--forces-unit", default=None, help="unit of the forces (default: UNITS/Angstrom)")
    group.add_argument("--stress-unit", default=None, help="unit of the stress (default: UNITS/Angstrom^3), e.g. GPa")
    group.add_argument("--index", default=":", help="frames of each file, as for ase.io.read (':', '::10', '-1000:')")
    group.add_argument("--format", default=None, help="ASE format name when the file name does not tell (extxyz, traj)")


def ase_dataset_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The keyword arguments of :class:`~pyg_schnet.datasets.ASEDataset` that the flags of
    :func:`add_file_data_arguments` give (``units``, the keys, their units, ``index``, ``format``)."""
    return {
        "units": args.units,
        "energy_key": args.energy_key,
        "forces_key": args.forces_key,
        "stress_key": args.stress_key,
        "forces_unit": args.forces_unit,
        "stress_unit": args.stress_unit,
        "index": args.index,
        "format": args.format,
    }
