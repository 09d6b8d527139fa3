"""``pyg-schnet export MODEL OUT``: write a trained model's energy and forces as a file plain PyTorch runs.

Reads MODEL (a ``model.pt`` of the training scripts), writes OUT with
:func:`pyg_schnet.io.export.export_model` (atomically, after loading the written artefact back and
comparing it with the model on a test molecule) and prints what was written and how to load it:
``torch.export.load(OUT).module()`` for ``--format pt2`` (default), ``torch.jit.load(OUT)`` for
``--format torchscript``; either is called as ``energy, forces = f(z, pos)`` (``z`` [N] int64, ``pos``
[N, 3] Angstrom in the artefact's dtype; energy in the model's unit, forces in that unit per Angstrom).
Molecules only (no periodic cell).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

DTYPES = ("float64", "float32")


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    from pyg_schnet.io.export import EXPORT_KINDS

    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("model", type=Path, help="a model.pt written by the training scripts")
    parser.add_argument("out", type=Path, help="the file to write (e.g. model.pt2; the folder is created)")
    parser.add_argument(
        "--format",
        choices=EXPORT_KINDS,
        default="pt2",
        help="pt2: torch.export program (load with torch.export.load); "
        "torchscript: torch.jit.script module (load with torch.jit.load; deprecated by torch 2.13, "
        "but what libtorch-based engines such as metatomic read)",
    )
    parser.add_argument(
        "--dtype", choices=DTYPES, default="float64", help="the artefact's weights, computation and positions"
    )
    parser.add_argument(
        "--energy-unit",
        default=None,
        help="the energy unit of a MODEL that records none (format /1); never overrides a recorded unit",
    )
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="skip loading the written artefact back and comparing it with the model on a test molecule",
    )
    return parser


def run(args: argparse.Namespace, command: Optional[List[str]] = None) -> Dict[str, Any]:
    """Exports what the flags say; prints a summary and returns the artefact's metadata (with the
    export's ``export_s``, ``verified`` and ``command``)."""
    import torch

    from pyg_schnet.io.export import export_model

    result = export_model(
        args.model,
        args.out,
        kind=args.format,
        dtype=getattr(torch, args.dtype),
        energy_unit=args.energy_unit,
        verify=not args.no_verify,
    )
    meta = result.metadata
    cutoff = "no cutoff (all pairs)" if meta["cutoff"] is None else f"cutoff {meta['cutoff']:g} Angstrom"
    load = "torch.export.load(path).module()" if meta["kind"] == "pt2" else "torch.jit.load(path)"
    check = "not verified" if result.verified is None else f"equals the model to {result.verified:.1e} (relative)"
    size_mb = result.path.stat().st_size / 1e6
    print(
        f"exported {args.model} ({meta['units']['energy']}, {cutoff}, {meta['dtype']}) to {result.path} "
        f"({meta['kind']}, {size_mb:.2f} MB) in {result.export_s:.2f} s; {check}"
    )
    print(
        f"load it with plain torch: f = {load}; energy, forces = f(z, pos) with z [N] int64, pos [N, 3] "
        f"{meta['dtype']} in Angstrom; energy in {meta['units']['energy']}, forces in {meta['units']['forces']}"
    )
    return {
        **meta,
        "export_s": result.export_s,
        "verified": result.verified,
        "command": command if command is not None else [sys.executable, *sys.argv],
    }


def main(argv: Optional[List[str]] = None, prog: str = "pyg-schnet export") -> Dict[str, Any]:
    args = build_parser(prog).parse_args(argv)
    argv_used = sys.argv[1:] if argv is None else list(argv)
    return run(args, command=[*shlex.split(prog), *argv_used])
