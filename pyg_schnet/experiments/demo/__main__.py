"""``pyg-schnet demo``: train the paper's SchNet on the embedded xTB ethanol data for a fixed number
of optimizer steps, so that every machine trains the same model (CPU, about 5 min).

Same flags as ``benchmarks/md17.py`` (see ``--help``) with demo defaults: the embedded data, 700
training / 100 validation / 200 test frames, energies + forces (rho = 100), :data:`DEMO_STEPS`
optimizer steps (``--steps``; whole epochs of ``ceil(n_train / batch_size)`` steps), one CPU thread,
output in ``./runs/demo``. No time cap: a slower machine takes longer, not fewer steps.

Determinism: the split, the initialisation and the shuffling are seeded (``--seed``), the thread count
is fixed (``--threads``, default 1) and, on the CPU, the run uses
``torch.use_deterministic_algorithms(True)`` (restored afterwards), so two runs with the same flags
give bit-identical weights and test errors (``tests/train/test_demo_deterministic.py``). Each epoch
prints its step, the errors, the minutes so far and an estimate of the minutes left; at the end the
test errors and where the plots are. A new demo replaces the previous one in its ``--out`` (as
``--overwrite``) unless ``--resume`` continues it.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import torch

from pyg_schnet.experiments.demo import DEMO_DATA
from pyg_schnet.experiments.protocols.md17 import build_parser, run
from pyg_schnet.io.devices import resolve_device
from pyg_schnet.validation import check_positive_int

#: Optimizer steps of the demo: 300 epochs of 22 mini-batches (700 frames, batches of 32). On one thread
#: of this project's 2-core machine, the other core busy, 24 steps per second (0.88 s per epoch with its
#: validation, measured 2026-12-03 over 440 steps): about 4.5 minutes (docs/benchmarks.md, "The demo").
DEMO_STEPS = 6600

#: One thread: the model's matrices are small, and on a shared or busy machine a second thread that
#: has to wait for a core makes every step many times slower; one thread is also what makes the run
#: repeatable bit for bit. ``max_minutes=None``: the run is bounded by steps, never by time.
DEMO_DEFAULTS = dict(n_train=700, n_val=100, max_minutes=None, patience=1000, threads=1)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimizer steps of one epoch: every training frame once, the last mini-batch possibly smaller."""
    return math.ceil(n_train / batch_size)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The demo's flags, with ``max_epochs`` set from ``--steps`` (unless ``--max-epochs`` is given)."""
    parser = build_parser(
        prog="pyg-schnet demo",
        out="runs/demo",
        root=None,
        description="Train the paper's SchNet on the embedded GFN2-xTB ethanol demo data "
        "(xTB labels, not DFT) for a fixed number of steps and report test errors and plots.",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=DEMO_STEPS,
        help="optimizer steps, rounded up to whole epochs (ignored when --max-epochs is given)",
    )
    parser.set_defaults(raw_file=DEMO_DATA, **DEMO_DEFAULTS)
    args = parser.parse_args(argv)
    check_positive_int("pyg-schnet demo", "--steps", args.steps)
    check_positive_int("pyg-schnet demo", "--n-train", args.n_train)
    check_positive_int("pyg-schnet demo", "--batch-size", args.batch_size)
    if args.max_epochs is None:
        args.max_epochs = math.ceil(args.steps / steps_per_epoch(args.n_train, args.batch_size))
    if args.root is None:
        args.root = Path(args.out) / "data"
    if not args.resume:
        args.overwrite = True  # the demo is meant to be run again: a new demo replaces the last one
    return args


@contextlib.contextmanager
def deterministic(device: Optional[str]) -> Iterator[bool]:
    """``torch.use_deterministic_algorithms(True)`` for the block on the CPU (where every operation the
    model uses has a deterministic kernel), restored afterwards; yields whether it was switched on.
    On CUDA it is left as it is: ``index_add_`` would raise there."""
    on_cpu = torch.device(resolve_device(device, "--device")).type == "cpu"
    previous = torch.are_deterministic_algorithms_enabled()
    if on_cpu:
        torch.use_deterministic_algorithms(True)
    try:
        yield on_cpu
    finally:
        torch.use_deterministic_algorithms(previous)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    demo_data = Path(args.raw_file).resolve() == DEMO_DATA
    if demo_data:
        print(
            "demo data: ethanol, Langevin MD at 500 K, energies and forces from GFN2-xTB "
            "(semi-empirical, not the DFT of MD17); paper numbers refer to DFT data and N = 1,000"
        )
    per_epoch = steps_per_epoch(args.n_train, args.batch_size)
    print(
        f"training for {args.max_epochs} epochs of {per_epoch} steps = {args.max_epochs * per_epoch:,} optimizer "
        f"steps on {args.threads or torch.get_num_threads()} thread(s), seed {args.seed} (no time cap: every "
        "machine trains the same model; each epoch line estimates the minutes left)"
    )
    argv_used = sys.argv[1:] if argv is None else list(argv)
    extra = {
        "demo": {
            "data": str(args.raw_file),
            "labels": "GFN2-xTB (not DFT)" if demo_data else "user file",
            "steps": args.max_epochs * per_epoch,
        }
    }
    with deterministic(args.device) as exact:
        extra["demo"]["deterministic_algorithms"] = exact
        return run(
            args,
            benchmark="demo",
            label_prefix="demo",
            extra=extra,
            command=["pyg-schnet", "demo", *argv_used],
        )


if __name__ == "__main__":
    main()
