"""The ``pyg-schnet`` console command: training, evaluation and MD without the repository's scripts.

.. code-block:: text

    pyg-schnet train md17|qm9|iso17 [flags]   # the paper's protocols (= benchmarks/{md17,qm9,iso17}.py)
    pyg-schnet train md22 [flags]             # MD22 with the MD17 protocol (= benchmarks/md22.py)
    pyg-schnet train file PATH... [flags]     # your own extxyz / ASE db / traj files (docs/own_data.md)
    pyg-schnet evaluate MODEL --dataset md17|qm9|iso17|md22 --root DIR [flags]
    pyg-schnet evaluate MODEL --dataset file --files PATH... --units U [flags]  # your own files
    pyg-schnet md MODEL START --steps N [flags]  # MD through ASE (pyg_schnet.experiments.md_command)
    pyg-schnet convert IN OUT [flags]            # a PyG or SchNetPack SchNet -> model.pt
    pyg-schnet export MODEL OUT [flags]          # model.pt -> an artefact that needs only torch
    pyg-schnet demo [flags]                      # the embedded demo (= make demo)

Each subcommand parses its own flags (``pyg-schnet train md17 --help``) and runs the same library
function as the script it stands for.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

PROG = "pyg-schnet"
TRAIN_PROTOCOLS = ("md17", "qm9", "iso17", "md22", "file")


def _train(argv: List[str]) -> Any:
    import importlib

    parser = argparse.ArgumentParser(prog=f"{PROG} train", description="Train SchNet with a paper protocol.")
    parser.add_argument(
        "protocol",
        choices=TRAIN_PROTOCOLS,
        help=(
            "md17 (Table 2; rMD17 too), qm9 (Table 1), iso17 (Table 3), md22 (MD22 with the MD17 protocol), "
            "file (your own files that ASE reads)"
        ),
    )
    parser.add_argument("flags", nargs=argparse.REMAINDER, help="the protocol's flags (see its --help)")
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return None
    args = parser.parse_args(argv[:1])
    module = importlib.import_module(f"pyg_schnet.experiments.protocols.{args.protocol}")
    prog = f"{PROG} train {args.protocol}"
    parsed = module.build_parser(prog=prog).parse_args(argv[1:])
    return module.run(parsed, command=[PROG, "train", *argv])


def _evaluate(argv: List[str]) -> Any:
    from pyg_schnet.experiments.evaluate import main

    return main(argv, prog=f"{PROG} evaluate")


def _md(argv: List[str]) -> Any:
    from pyg_schnet.experiments.md_command import main

    return main(argv, prog=f"{PROG} md")


def _convert(argv: List[str]) -> Any:
    from pyg_schnet.experiments.convert_command import main

    return main(argv, prog=f"{PROG} convert")


def _export(argv: List[str]) -> Any:
    from pyg_schnet.experiments.export_command import main

    return main(argv, prog=f"{PROG} export")


def _demo(argv: List[str]) -> Any:
    from pyg_schnet.experiments.demo.__main__ import main

    return main(argv)


COMMANDS: Dict[str, Callable[[List[str]], Any]] = {
    "train": _train,
    "evaluate": _evaluate,
    "md": _md,
    "convert": _convert,
    "export": _export,
    "demo": _demo,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split(".. code-block:: text")[1].split("\n\n")[1],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("command", choices=sorted(COMMANDS), help="what to do")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the subcommand's flags (COMMAND --help)")
    return parser


def _version() -> str:
    from pyg_schnet import __version__

    return __version__


def main(argv: Optional[Sequence[str]] = None) -> Any:
    """Entry point of ``pyg-schnet`` (``[project.scripts]``); returns what the subcommand returns."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](list(args.args))


def console() -> int:
    """The installed script: runs :func:`main` and exits 0 (argparse exits 2 on bad flags)."""
    main()
    return 0


if __name__ == "__main__":
    sys.exit(console())
