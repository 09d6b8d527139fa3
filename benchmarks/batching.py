"""Sparse vs dense batching of pyg-schnet, against PyG's SchNet and SchNetPack's, on CPU (or GPU).

The harness lives in :mod:`harness` (what is measured: :mod:`harness.batching`;
the four columns: :mod:`harness.adapters`, configuration
:data:`harness.configs.BATCHING`). This script is its command line.

Run ``python benchmarks/batching.py --help``; ``--quick`` is a seconds-long smoke test. Results go to
``--out`` as ``batching.json`` (machine-readable), ``batching.md`` (tables) and ``batching.png``
(throughput against molecule size). docs/benchmarks.md quotes a full run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch

from harness import adapters, environment
from harness.batching import ALL_CASES, IMPLS, LARGE_SIZES, MODES, merge, ratios, run_grid, write_outputs
from harness.configs import BATCHING
from harness.molecules import build_cases
from harness.schnetpack_import import import_schnetpack, schnetpack_note
from pyg_schnet import allocator

ROOT = Path(__file__).resolve().parents[1]
HYPER = dict(BATCHING.ours_kwargs())


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_batching", help="output folder")
    parser.add_argument("--plot", type=Path, default=None, help="plot file (default: OUT/batching.png)")
    parser.add_argument("--cases", default=None, help=f"comma-separated, from {','.join(ALL_CASES)} (default: all)")
    parser.add_argument("--batch-sizes", default=None, help="comma-separated (default: 32,128,512)")
    parser.add_argument("--impls", default=",".join(IMPLS), help="columns to measure")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed steps per measurement, median reported (default 5)"
    )
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed steps before the memory and timed steps (default 1)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: all cores; 1 with --quick)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--max-memory-gib", type=float, default=8.0, help="skip steps estimated to need more")
    parser.add_argument("--max-step-seconds", type=float, default=4.0, help="skip steps estimated to take longer")
    parser.add_argument(
        "--large-batch-sizes",
        default="1,8",
        help="extra batch sizes for the cases of 100 atoms and more, whose smallest --batch-sizes may not fit",
    )
    parser.add_argument("--plot-batch-size", type=int, default=32, help="batch size shown in the plot")
    parser.add_argument(
        "--max-minutes", type=float, default=None, help="skip what is left once the run has taken this long"
    )
    parser.add_argument(
        "--merge-from",
        type=Path,
        default=None,
        help="an earlier batching.json (same settings) whose rows this run keeps where it measured nothing new",
    )
    parser.add_argument(
        "--replot-from", type=Path, default=None, help="measure nothing: redraw the table and plot of a batching.json"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny subset, 1 repeat")
    args = parser.parse_args(argv)
    # --quick: a seconds-long smoke test (ethanol and QM9-like sizes, batches of 4, one timed step)
    defaults = (
        dict(cases="ethanol,qm9", batch_sizes="4", repeats=1, warmup=0, threads=1)
        if args.quick
        else dict(cases=",".join(ALL_CASES), batch_sizes="32,128,512", repeats=5, warmup=1, threads=os.cpu_count() or 1)
    )
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.quick:
        args.plot_batch_size = 4
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    args.large_batch_sizes = [int(b) for b in args.large_batch_sizes.split(",") if b.strip()]
    args.impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for name, given, allowed in (
        ("case", args.cases, ALL_CASES),
        ("impl", args.impls, IMPLS),
        ("mode", args.modes, MODES),
    ):
        bad = [g for g in given if g not in allowed]
        if bad:
            parser.error(f"unknown {name}(s) {bad}; choose from {list(allowed)}")
    if args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--repeats and --threads must be >= 1, --warmup >= 0")
    return args


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    if args.replot_from is not None:
        report = json.loads(args.replot_from.read_text())
        args.out.mkdir(parents=True, exist_ok=True)
        plot_path = args.plot or args.out / "batching.png"
        write_outputs(report, args.out, plot_path, args.plot_batch_size, write_json=False)
        return report
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    plot_path = args.plot or args.out / "batching.png"
    if device.type == "cpu":  # glibc's steady state (mmap threshold 32 MiB), as its tables were measured
        allocator.release_freed_memory()

    cases = build_cases(LARGE_SIZES)
    runners, unavailable = adapters.make_runners(args.impls, BATCHING, device)
    for impl, reason in unavailable.items():
        print(f"[{impl}] not measured: {reason}", flush=True)
    meta = environment.run_metadata("benchmarks/batching.py", argv, device, args.threads)
    if "schnetpack" in runners:
        meta["versions"]["schnetpack"] = import_schnetpack()[0].__version__
        if schnetpack_note():
            print(f"[schnetpack] note: {schnetpack_note()}", flush=True)
    meta.update(
        dtype="float32",
        repeats=args.repeats,
        warmup=args.warmup,
        hyper_parameters=HYPER,
        parameters={k: r.num_parameters() for k, r in runners.items()},
        unavailable=unavailable,
        schnetpack_note=schnetpack_note(),
        cases={name: dict(description=cases[name].description, source=cases[name].source) for name in args.cases},
    )
    print(f"# {meta['device']}, {args.threads} thread(s), torch {torch.__version__}", flush=True)
    started = time.perf_counter()
    results = run_grid(
        runners,
        unavailable,
        cases,
        args.cases,
        args.impls,
        args.modes,
        args.batch_sizes,
        args.large_batch_sizes,
        device,
        args.warmup,
        args.repeats,
        args.max_memory_gib,
        args.max_step_seconds,
        args.max_minutes,
        args.seed,
    )
    meta["wall_seconds"] = time.perf_counter() - started
    meta["runs"] = [dict(command=meta["command"], date=meta["date"], wall_seconds=meta["wall_seconds"])]
    for row in results:
        row["run"] = 0
    if args.merge_from is not None:
        results = merge(json.loads(args.merge_from.read_text()), meta, results)
    report = dict(meta=meta, results=results, ratios=ratios(results))
    write_outputs(report, args.out, plot_path, args.plot_batch_size)
    return report


if __name__ == "__main__":
    main()
