"""``pyg-schnet convert IN OUT``: a SchNet trained with PyG or SchNetPack -> our ``model.pt``.

IN is one of: the ``state_dict`` of a ``torch_geometric.nn.models.SchNet`` (``torch.save(model.state_dict())``;
its constructor arguments that a state_dict does not hold come from the flags: ``--cutoff``,
``--max-num-neighbors``, ``--readout``, ``--mean``, ``--std``, PyG's defaults otherwise), a pickled PyG
SchNet module (``torch.save(model)``) or a SchNetPack 2 model file (``best_model``, a pickled
``NeuralNetworkPotential``). Pickled modules run code when they are loaded, so they are loaded only with
``--trust-pickle``; a SchNetPack file also needs ``schnetpack`` importable in this Python. The
conversion is exact or refused (:mod:`pyg_schnet.models.convert`); OUT is written atomically with
:func:`pyg_schnet.save_model` and works wherever a trained ``model.pt`` does (``SchNetCalculator``,
``pyg-schnet md``). Neither library records units: ``--energy-unit`` is required.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

SOURCES = ("pyg", "schnetpack")


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("input", type=Path, help="a PyG SchNet state_dict or module file, or a SchNetPack model file")
    parser.add_argument("output", type=Path, help="the model.pt to write")
    parser.add_argument(
        "--from",
        dest="source",
        choices=SOURCES,
        default=None,
        help="the library IN comes from (default: read from the file: a pickled schnetpack or torch_geometric "
        "module says so; a plain state_dict is PyG's)",
    )
    parser.add_argument(
        "--energy-unit",
        required=True,
        help="the unit of the model's energies, a name of ase.units (e.g. eV, kcal/mol, Hartree); neither "
        "library records it",
    )
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="load IN although it is a pickled module (unpickling runs code from the file: only for files you trust)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument(
        "--no-neighbor-guard",
        action="store_true",
        help="PyG: no max_num_neighbors guard (every neighbour counts; differs from PyG wherever PyG drops "
        "neighbours). Default: a structure with more neighbours than PyG keeps raises",
    )
    pyg = parser.add_argument_group("a PyG state_dict's constructor arguments (PyG's defaults when not given)")
    pyg.add_argument("--cutoff", type=float, default=None, help="Angstrom (PyG default 10.0)")
    pyg.add_argument("--max-num-neighbors", type=int, default=None, help="PyG default 32")
    pyg.add_argument("--readout", default=None, help="add or mean (PyG default add; mean is refused)")
    pyg.add_argument("--mean", type=float, default=None, help="the model's mean (set with --std)")
    pyg.add_argument("--std", type=float, default=None, help="the model's std (set with --mean)")
    return parser


def _hyper(args: argparse.Namespace) -> Dict[str, Any]:
    names = ("cutoff", "max_num_neighbors", "readout", "mean", "std")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def detect_source(path: Path) -> str:
    """``"pyg"`` or ``"schnetpack"`` from the first global of ``path``'s pickle (read, never run)."""
    from pyg_schnet.io.model_file import pickled_globals

    names = pickled_globals(path)
    top = names[0] if names else ""
    if top.startswith("schnetpack."):
        return "schnetpack"
    if (
        top.startswith("torch_geometric.")
        or top.startswith("collections.OrderedDict")
        or top.startswith("torch._utils")
    ):
        return "pyg"
    raise ValueError(
        f"{path}: cannot tell which library this file comes from (its pickle starts with {top or 'nothing'!r}); "
        "pass --from pyg or --from schnetpack"
    )


def load_source(path: Path, source: str, trust_pickle: bool) -> Any:
    """The object of ``path``: a state_dict (weights-only load) or, with ``trust_pickle``, a pickled module."""
    import torch

    from pyg_schnet.io.model_file import pickled_globals

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    names = pickled_globals(path)
    pickled_module = bool(names) and not names[0].startswith(("collections.OrderedDict", "torch._utils"))
    if not pickled_module:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"{path}: cannot be read as a torch state_dict ({type(exc).__name__}: {exc})") from exc
    if not trust_pickle:
        raise ValueError(
            f"{path}: holds a pickled module ({names[0]}); unpickling it runs code from the file, so it is loaded "
            "only with --trust-pickle (for a file you trust). A PyG model can instead be saved as "
            "torch.save(model.state_dict(), path), which loads without unpickling code"
        )
    if source == "schnetpack":
        from pyg_schnet.models.convert import import_schnetpack

        import_schnetpack()  # the classes the pickle names; a clear error when schnetpack is missing
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except ModuleNotFoundError as exc:
        raise ImportError(f"{path}: the pickled module needs {exc.name!r}, which this Python cannot import") from exc


def convert(args: argparse.Namespace) -> Any:
    """The converted :class:`~pyg_schnet.SchNet` of ``args.input`` (flags as :func:`build_parser`)."""
    from pyg_schnet.models.convert import from_pyg, from_schnetpack

    source = args.source or detect_source(args.input)
    obj = load_source(args.input, source, args.trust_pickle)
    hyper = _hyper(args)
    if source == "schnetpack":
        if hyper or args.no_neighbor_guard:
            raise ValueError(
                "--cutoff, --max-num-neighbors, --readout, --mean, --std, --no-neighbor-guard are PyG flags"
            )
        return from_schnetpack(obj, energy_unit=args.energy_unit)
    if not isinstance(obj, dict) and hyper:
        raise ValueError(
            f"{args.input} holds a PyG module, whose constructor arguments it carries; {sorted(hyper)} apply to a "
            "state_dict only"
        )
    return from_pyg(obj, energy_unit=args.energy_unit, neighbor_guard=not args.no_neighbor_guard, **hyper)


def run(args: argparse.Namespace, command: Optional[List[str]] = None) -> Dict[str, Any]:
    """Convert and write; prints and returns ``{"input", "output", "source", "units", "config", "command"}``."""
    from pyg_schnet.io.model_file import save_model
    from pyg_schnet.io.units import unit_value

    unit_value(args.energy_unit)  # an unknown name fails before anything is read
    if args.output.exists() and not args.overwrite:
        raise FileExistsError(f"{args.output} exists; pass --overwrite to replace it")
    if args.output.exists() and args.output.is_dir():
        raise IsADirectoryError(f"{args.output} is a folder; give the path of the model.pt to write")
    model = convert(args)
    save_model(model, args.output)
    source = args.source or detect_source(args.input)
    print(
        f"converted {args.input} ({source}) -> {args.output}: energies in {model.units['energy']}, "
        + ", ".join(f"{k}={v}" for k, v in model.config.items())
    )
    return {
        "input": str(args.input),
        "output": str(args.output),
        "source": source,
        "units": dict(model.units),
        "config": dict(model.config),
        "command": command if command is not None else [sys.executable, *sys.argv],
    }


def main(argv: Optional[List[str]] = None, prog: str = "pyg-schnet convert") -> Dict[str, Any]:
    args = build_parser(prog).parse_args(argv)
    argv_used = sys.argv[1:] if argv is None else list(argv)
    return run(args, command=[*shlex.split(prog), *argv_used])
