"""MD22 (Chmiela et al., Sci. Adv. 9, eadf0873, 2023) with the Table 2 protocol of MD17: one SchNet per
trajectory, N training frames, trained on energies only (``--rho 0``) or on energies and forces
(``--rho 100``), ``--n-val`` validation frames for early stopping and the rest for testing
(:func:`.md17.md17_split_sizes`, seeded).

The molecules: Ac-Ala3-NHMe, DHA, stachyose, AT-AT, AT-AT-CG-CG, buckyball-catcher,
double-walled_nanotube (:class:`pyg_schnet.datasets.MD22`), in kcal/mol and Angstrom like MD17. The
MD22 paper trains its models on 6,000 (Ac-Ala3-NHMe), 8,000 (DHA, stachyose), 3,000 (AT-AT),
2,000 (AT-AT-CG-CG), 600 (buckyball-catcher) and 800 (nanotube) frames; ``--n-train`` defaults to
1,000 as for MD17. The SchNet paper (2017) predates MD22 and reports no MD22 numbers, so the results
carry no paper value (:data:`pyg_schnet.experiments.paper_values.MD22_PAPER`).

This is :func:`.md17.run` with :class:`~pyg_schnet.datasets.MD22`; run
``pyg-schnet train md22 --help`` or ``python benchmarks/md22.py --help``.
"""

from __future__ import annotations

import argparse
from typing import Any, Dict, List, Optional

from pyg_schnet.experiments.protocols import md17
from pyg_schnet.train import distributed

#: Data set root when ``--root`` is not given.
DEFAULT_ROOT = "runs/data/md22"


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    """The flags of ``benchmarks/md22.py``: those of :func:`.md17.build_parser` without ``--split``."""
    from pyg_schnet.datasets.md22 import MD22_FILES

    return md17.build_parser(
        prog,
        out="runs/md22",
        root=DEFAULT_ROOT,
        description=__doc__.split("\n\n")[0],
        molecule="Ac-Ala3-NHMe",
        molecule_help=", ".join(MD22_FILES),
        raw_file_help="an MD22 npz elsewhere (e.g. a shared copy of md22_Ac-Ala3-NHMe.npz): linked, not copied, "
        "into ROOT/raw under the name the data set expects",
        official_splits=False,
    )


def run(args: argparse.Namespace, command: Optional[List[str]] = None) -> Dict[str, Any]:
    """One MD22 run from parsed flags; returns the results dict (also written to ``OUT/results.json``)."""
    from pyg_schnet.datasets import MD22

    return md17.run(args, benchmark="md22", command=command, dataset_cls=MD22)


@distributed.record
def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Entry point of ``benchmarks/md22.py``."""
    return run(build_parser(prog="benchmarks/md22.py").parse_args(argv))
