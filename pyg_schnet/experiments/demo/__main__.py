"""``pyg-schnet demo``: train the paper's SchNet on the embedded xTB ethanol data (CPU, ~5 min).

Same flags as ``benchmarks/md17.py`` (see ``--help``) with demo defaults: the embedded data, 700
training / 100 validation / 200 test frames, energies + forces (rho = 100), 4 minutes of training,
one CPU thread, output in ``./runs/demo``. It prints the test errors and where the plots are. A new
demo replaces the previous one in its ``--out`` (as ``--overwrite``) unless ``--resume`` continues it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from pyg_schnet.experiments.demo import DEMO_DATA
from pyg_schnet.experiments.protocols.md17 import build_parser, run

#: One thread: the model's matrices are small, and on a shared or busy machine a second thread that
#: has to wait for a core makes every step many times slower. Raise ``--threads`` on an idle machine.
DEMO_DEFAULTS = dict(n_train=700, n_val=100, max_minutes=4.0, patience=1000, threads=1)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    parser = build_parser(
        prog="pyg-schnet demo",
        out="runs/demo",
        root=None,
        description="Train the paper's SchNet on the embedded GFN2-xTB ethanol demo data "
        "(xTB labels, not DFT) and report test errors and plots.",
    )
    parser.set_defaults(raw_file=DEMO_DATA, **DEMO_DEFAULTS)
    args = parser.parse_args(argv)
    if args.root is None:
        args.root = Path(args.out) / "data"
    if not args.resume:
        args.overwrite = True  # the demo is meant to be run again: a new demo replaces the last one
    demo_data = Path(args.raw_file).resolve() == DEMO_DATA
    if demo_data:
        print(
            "demo data: ethanol, Langevin MD at 500 K, energies and forces from GFN2-xTB "
            "(semi-empirical, not the DFT of MD17); paper numbers refer to DFT data and N = 1,000"
        )
    argv_used = sys.argv[1:] if argv is None else list(argv)
    extra = {"demo": {"data": str(args.raw_file), "labels": "GFN2-xTB (not DFT)" if demo_data else "user file"}}
    return run(
        args,
        benchmark="demo",
        label_prefix="demo",
        extra=extra,
        command=["pyg-schnet", "demo", *argv_used],
    )


if __name__ == "__main__":
    main()
